import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readVectorAnswer } from './vector-answer.ts';
import { sampleFromJson, type Sample } from './sample.ts';

const FC_PARAMS = { seed: 20261125, numRuns: 400 } as const;

/** What the general path makes of an answer: JSON.parse, then the envelope's fields. Undefined where it refuses. */
function general(text: string): { samples: Sample[]; warnings: string[] } | undefined {
  let envelope: { status?: unknown; data?: { resultType?: unknown; result?: unknown }; warnings?: unknown };
  try {
    envelope = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof envelope !== 'object' || envelope === null || envelope.status !== 'success') return undefined;
  if (envelope.data?.resultType !== 'vector' || !Array.isArray(envelope.data.result)) return undefined;
  const warnings = Array.isArray(envelope.warnings) ? envelope.warnings.filter((w): w is string => typeof w === 'string') : [];
  return { samples: envelope.data.result.map(sampleFromJson), warnings };
}

/** Same answer: NaN equal to NaN, labels compared with their own properties (a "__proto__" label included). */
function assertSameAnswer(actual: ReturnType<typeof readVectorAnswer>, expected: ReturnType<typeof general>): void {
  assert.ok(actual !== undefined && expected !== undefined);
  assert.deepEqual(actual.warnings, expected.warnings);
  assert.equal(actual.samples.length, expected.samples.length);
  actual.samples.forEach((s, i) => {
    const e = expected.samples[i]!;
    assert.deepEqual(Object.entries(s.labels), Object.entries(e.labels));
    assert.ok(Object.is(s.value, e.value), `value ${s.value} vs ${e.value}`);
    assert.ok(Object.is(s.timestamp, e.timestamp), `timestamp ${s.timestamp} vs ${e.timestamp}`);
  });
}

const plainLabelName = fc.constantFrom('pod', 'namespace', 'container', 'job', 'instance', '__name__', 'le');
const anyLabelName = fc.oneof(plainLabelName, fc.constantFrom('__proto__', 'constructor', 'we"ird', 'back\\slash', 'ünï', ''), fc.string({ unit: 'binary', maxLength: 6 }));
const plainLabelValue = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/);
const anyLabelValue = fc.oneof(plainLabelValue, fc.string({ unit: 'binary', maxLength: 10 }));
const sampleValue = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.constantFrom('NaN', '+Inf', '-Inf', 'Inf', '0', '1e-9', '12abc', ''),
  fc.string({ maxLength: 4 }),
);
const timestamp = fc.oneof(fc.constant(1_764_078_699.123), fc.integer({ min: 0, max: 4_000_000_000_000 }).map((ms) => ms / 1000));

function answer(result: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ status: 'success', data: { resultType: 'vector', result }, ...extra });
}

const plainAnswer = fc
  .tuple(
    fc.uniqueArray(plainLabelName, { maxLength: 3 }),
    fc.array(fc.tuple(fc.array(plainLabelValue, { minLength: 3, maxLength: 3 }), sampleValue), { maxLength: 20 }),
    timestamp,
    fc.option(fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }), { nil: undefined }),
  )
  .map(([names, rows, t, warnings]) =>
    answer(
      rows.map(([values, v]) => ({ metric: Object.fromEntries(names.map((n, i) => [n, values[i]])), value: [t, v] })),
      warnings === undefined ? {} : { warnings },
    ),
  );

const anyAnswer = fc
  .tuple(
    fc.array(fc.tuple(fc.dictionary(anyLabelName, anyLabelValue, { maxKeys: 4 }), timestamp, sampleValue), { maxLength: 8 }),
    fc.option(fc.record({ warnings: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 2 }), infos: fc.array(fc.string(), { maxLength: 1 }) }, { requiredKeys: [] }), { nil: undefined }),
  )
  .map(([rows, extra]) => answer(rows.map(([metric, t, v]) => ({ metric, value: [t, v] })), extra ?? {}));

describe('readVectorAnswer', () => {
  it('reads every answer in Prometheus layout exactly as JSON.parse and the general mapping do', () => {
    fc.assert(
      fc.property(plainAnswer, (text) => {
        // Plain names and values are the everyday case: the fast path must take them, not hand them on.
        assertSameAnswer(readVectorAnswer(text), general(text));
      }),
      FC_PARAMS,
    );
  });

  it('gives the same answer or none for any labels: escapes, "__proto__", non-ASCII, empty names', () => {
    fc.assert(
      fc.property(anyAnswer, (text) => {
        const fast = readVectorAnswer(text);
        if (fast !== undefined) assertSameAnswer(fast, general(text));
      }),
      FC_PARAMS,
    );
  });

  it('never answers for text JSON.parse refuses, and agrees with it where the text is still an answer', () => {
    const edit = fc.tuple(fc.nat(), fc.constantFrom('delete', 'insert', 'replace'), fc.constantFrom('"', '\\', ',', ':', '[', ']', '{', '}', ' ', '0', 'e', '-', '.', 'x', '\n'));
    fc.assert(
      fc.property(plainAnswer, fc.array(edit, { minLength: 1, maxLength: 3 }), (valid, edits) => {
        let text = valid;
        for (const [at, kind, c] of edits) {
          const i = at % (text.length + 1);
          text = kind === 'delete' ? text.slice(0, i) + text.slice(i + 1) : kind === 'insert' ? text.slice(0, i) + c + text.slice(i) : text.slice(0, i) + c + text.slice(i + 1);
        }
        const fast = readVectorAnswer(text);
        const expected = general(text);
        if (expected === undefined) assert.equal(fast, undefined, `answered for ${JSON.stringify(text)}`);
        else if (fast !== undefined) assertSameAnswer(fast, expected);
      }),
      { ...FC_PARAMS, numRuns: 2000 },
    );
  });

  it('reads warnings and leaves the rest of the envelope alone', () => {
    const text = answer([{ metric: { pod: 'a' }, value: [10.5, '2'] }], { warnings: ['partial', 3, 'slow'], infos: ['i'] });
    assert.deepEqual(readVectorAnswer(text), { samples: [{ labels: { pod: 'a' }, value: 2, timestamp: 10.5 }], warnings: ['partial', 'slow'] });
    assert.deepEqual(readVectorAnswer(answer([])), { samples: [], warnings: [] });
  });

  it('decodes escaped names and values, and keeps "__proto__" for the general path', () => {
    const escaped = answer([{ metric: { 'a"b': 'x\\y\u00e9\n' }, value: [1, '3'] }]);
    assertSameAnswer(readVectorAnswer(escaped), general(escaped));
    assert.equal(readVectorAnswer(escaped)?.samples[0]?.labels['a"b'], 'x\\y\u00e9\n');
    assert.equal(readVectorAnswer('{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__proto__":"x"},"value":[1,"2"]}]}}'), undefined);
  });

  it('hands on what is not its layout: whitespace, histograms, other result types, overriding duplicate keys', () => {
    for (const text of [
      '{"status": "success","data":{"resultType":"vector","result":[]}}',
      '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"2"}]}]}}',
      '{"status":"success","data":{"resultType":"matrix","result":[]}}',
      '{"status":"success","data":{"resultType":"vector","result":[]},"status":"error"}',
      '{"status":"success","data":{"resultType":"vector","result":[]},"data":{"resultType":"scalar","result":[1,"2"]}}',
      '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]}]},"data":0}',
      '{"status":"success","data":{"resultType":"vector","result":[],"resultType":"matrix"}}',
      '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0x10,"2"]}]}}',
      '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"],"value":[2,"3"]}]}}',
    ]) {
      assert.equal(readVectorAnswer(text), undefined, text);
    }
  });
});
