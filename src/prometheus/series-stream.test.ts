import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { InternalError, ServiceUnavailableError, TimeoutError } from '../errors.ts';
import { PrometheusHttpClient } from './http-client.ts';
import { MalformedJsonError, SeriesAnswerParser, type SeriesAnswer } from './series-stream.ts';

const encoder = new TextEncoder();

/** Feeds `text` cut at the given byte offsets. */
function parse(text: string | Uint8Array, cuts: readonly number[] = []): SeriesAnswer {
  const bytes = typeof text === 'string' ? encoder.encode(text) : text;
  const parser = new SeriesAnswerParser();
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    parser.write(bytes.subarray(at, cut));
    at = cut;
  }
  parser.write(bytes.subarray(at));
  return parser.end();
}

function malformed(text: string): MalformedJsonError {
  let caught: unknown;
  try {
    parse(text);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MalformedJsonError, `expected MalformedJsonError for ${JSON.stringify(text)}, got ${String(caught)}`);
  return caught;
}

/** What the series answer means, computed the obvious way from the whole text. */
function reference(text: string): { status: unknown; series: { name: string; labels: string[] }[] | null } {
  const envelope = JSON.parse(text) as { status?: unknown; data?: unknown };
  const data = envelope.data;
  if (!Array.isArray(data)) return { status: envelope.status, series: null };
  const series: { name: string; labels: string[] }[] = [];
  for (const entry of data) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue;
    const name = (entry as Record<string, unknown>)['__name__'];
    if (typeof name !== 'string' || name === '') continue;
    series.push({ name, labels: Object.keys(entry).filter((k) => k !== '__name__').sort() });
  }
  return { status: envelope.status, series };
}

describe('SeriesAnswerParser', () => {
  it('keeps name and sorted label names, and shares one entry among series of the same shape', () => {
    const answer = parse(
      JSON.stringify({
        status: 'success',
        data: [
          { __name__: 'up', pod: 'a', namespace: 'x', job: 'j' },
          { __name__: 'up', job: 'k', namespace: 'y', pod: 'b' },
          { __name__: 'up', namespace: 'z' },
          { __name__: 'cpu', namespace: 'x', pod: 'a' },
          { job: 'j', __name__: 'up', namespace: 'x', pod: 'c' },
        ],
      }),
    );
    assert.equal(answer.status, 'success');
    assert.deepEqual(answer.series, [
      { name: 'up', labels: ['job', 'namespace', 'pod'] },
      { name: 'up', labels: ['job', 'namespace', 'pod'] },
      { name: 'up', labels: ['namespace'] },
      { name: 'cpu', labels: ['namespace', 'pod'] },
      { name: 'up', labels: ['job', 'namespace', 'pod'] },
    ]);
    const [first, second, , , last] = answer.series!;
    assert.equal(first, second, 'same shape, same object');
    assert.equal(first, last);
    assert.equal(answer.distinct, 3);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first!.labels), 'a shared entry cannot be changed through one series');
    assert.ok(!JSON.stringify(answer.series).includes('"x"'), 'label values are dropped');
  });

  it('drops unnamed series and elements that are not series', () => {
    const answer = parse(
      JSON.stringify({
        status: 'success',
        data: [{ namespace: 'default' }, { __name__: '', pod: 'x' }, { __name__: 5, pod: 'x' }, { __name__: null }, 'not a series', 7, null, ['up'], { __name__: 'up' }],
      }),
    );
    assert.deepEqual(answer.series, [{ name: 'up', labels: [] }]);
    assert.equal(answer.distinct, 1);
  });

  it('counts a label whose value is not a string, and reads a repeated key once', () => {
    const answer = parse('{"status":"success","data":[{"__name__":"m","a":{"__name__":"inner","b":[1,{"c":2}]},"n":1,"t":true,"z":null,"a":"again"}]}');
    assert.deepEqual(answer.series, [{ name: 'm', labels: ['a', 'n', 't', 'z'] }]);
  });

  it('decodes escapes in names and values, split anywhere', () => {
    const text = '{"status":"success","data":[{"__name__":"a\\"b\\u00e9","we\\\\ird":"x\\ny\\u00e9\\ud83d\\ude00\\"","ok":"\u00fc\u{1F600}"}]}';
    const bytes = encoder.encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const answer = parse(bytes, [cut]);
      assert.deepEqual(answer.series, [{ name: 'a"bé', labels: ['ok', 'we\\ird'] }], `cut at byte ${cut}`);
    }
  });

  it('reads the envelope fields in any order, and the last of a repeated key', () => {
    const answer = parse(
      '{"data":[{"__name__":"old"}],"warnings":["w0"],"error":"boom","warnings":["w1",3,"w2"],"errorType":"execution","status":"error","data":[{"__name__":"new"}]}',
    );
    assert.equal(answer.status, 'error');
    assert.equal(answer.errorType, 'execution');
    assert.equal(answer.error, 'boom');
    assert.deepEqual(answer.warnings, ['w1', 'w2']);
    assert.deepEqual(answer.series, [{ name: 'new', labels: [] }]);
  });

  it('reports an error envelope as it is', () => {
    const answer = parse('{"status":"error","errorType":"bad_data","error":"1:11: parse error: unexpected end of input"}');
    assert.equal(answer.status, 'error');
    assert.equal(answer.errorType, 'bad_data');
    assert.equal(answer.error, '1:11: parse error: unexpected end of input');
    assert.equal(answer.series, null);
  });

  it('gives no series list when data is missing or not an array', () => {
    assert.equal(parse('{"status":"success"}').series, null);
    assert.equal(parse('{"status":"success","data":{"resultType":"vector","result":[]}}').series, null);
    assert.equal(parse('{"status":"success","data":"x"}').series, null);
    assert.equal(parse('{"status":"success","data":null}').series, null);
    assert.deepEqual(parse('{"status":"success","data":[]}').series, []);
  });

  it('skips a byte order mark and surrounding whitespace', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...encoder.encode(' \n{"status":"success","data":[{"__name__":"up"}]}\n')]);
    assert.deepEqual(parse(bom).series, [{ name: 'up', labels: [] }]);
    assert.deepEqual(parse(bom, [1, 2]).series, [{ name: 'up', labels: [] }]);
  });

  it('rejects truncated, malformed and non-object bodies, keeping the head of the body', () => {
    const truncated = '{"status":"success","data":[{"__name__":"up","pod":"a"},{"__name__":"up"';
    for (let end = 0; end < truncated.length; end++) malformed(truncated.slice(0, end));
    malformed('{"status":"success","data":[{"__name__":"up","pod":"a"}]');
    malformed('{"status" "success"}');
    malformed('{"status":"success",}');
    malformed('{"status":"success","data":[1,]}');
    malformed('{"status":"success","data":[1 2]}');
    malformed('{"status":"success"]');
    malformed('{"status":"success"} x');
    malformed('{"status":"success"} {"status":"success"}');
    malformed('{status:"success"}');
    malformed('{"a":tru}');
    malformed('');
    malformed('   ');
    assert.match(malformed('null').message, /not a JSON object/);
    malformed('[]');
    malformed('42');
    malformed('"success"');
    const html = `<html><body>${'bad gateway '.repeat(40)}</body></html>`;
    const err = malformed(html);
    assert.equal(err.head, html.slice(0, 200));
  });

  it('gives the same answer as JSON.parse of the whole body, however it is cut into chunks', () => {
    const labelName = fc.constantFrom('namespace', 'pod', 'container', 'job', 'instance', 'we"ird', 'ünï', '__name__');
    const labelValue = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('a\\b', '"q"', '\n\t\u2028', '\u{1F600}'));
    const series = fc.oneof(
      { weight: 8, arbitrary: fc.dictionary(labelName, labelValue, { maxKeys: 5 }) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 3, 'x', [], { __name__: 1 }, { __name__: { nested: ['x'] }, a: 'b' }) },
    );
    const envelope = fc.record(
      {
        status: fc.constantFrom('success', 'error'),
        data: fc.oneof({ weight: 9, arbitrary: fc.array(series, { maxLength: 12 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(null, {}, 'x') }),
        warnings: fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }),
        errorType: fc.constantFrom('bad_data', 'timeout'),
      },
      { requiredKeys: ['status'] },
    );
    fc.assert(
      fc.property(
        envelope,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        (value, rawCuts, pretty) => {
          const text = JSON.stringify(value, null, pretty ? 2 : undefined);
          const bytes = encoder.encode(text);
          const cuts = rawCuts.map((c) => c % (bytes.length + 1));
          const answer = parse(bytes, cuts);
          const expected = reference(text);
          assert.equal(answer.status, expected.status);
          assert.deepEqual(answer.series === null ? null : answer.series.map((s) => ({ name: s.name, labels: [...s.labels] })), expected.series);
          if (answer.series !== null) assert.equal(answer.distinct, new Set(answer.series).size);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('fails on any strict prefix of an answer, wherever it is cut', () => {
    const text = JSON.stringify({ status: 'success', data: [{ __name__: 'up', pod: 'p\u00e9' }, { __name__: 'x' }] });
    const bytes = encoder.encode(text);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.array(fc.nat(), { maxLength: 3 }), (end, rawCuts) => {
        const prefix = bytes.subarray(0, end);
        assert.throws(() => parse(prefix, rawCuts.map((c) => c % (end + 1))), MalformedJsonError);
      }),
    );
  });
});

describe('SeriesAnswerParser on answers in Prometheus\'s own layout (the compact reader)', () => {
  // A leading space sends the same document through the general tokenizer: the two readers must agree on everything.
  const general = (text: string, cuts: readonly number[] = []): SeriesAnswer => parse(` ${text}`, cuts.map((c) => c + 1));
  const plain = (a: SeriesAnswer): unknown => ({ ...a, series: a.series === null ? null : a.series.map((s) => ({ name: s.name, labels: [...s.labels] })) });

  // Label values that look like the structure around them, and escapes that a chunk may cut in half.
  const tricky = fc.constantFrom('"', '\\', '\\"', '"}', '},{', ']', '[', ',', '{"__name__":"x"}', '\\\\"', '\u00e9', '\u{1F600}', '\n', '');
  const labelValue = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 8 }), tricky, fc.array(tricky, { maxLength: 4 }).map((p) => p.join('')));
  const labelName = fc.oneof(fc.constantFrom('namespace', 'pod', 'container', 'job', '__name__', 'a"b', 'x\\y', '}'), fc.string({ maxLength: 4 }));
  const seriesList = fc.array(
    fc.oneof(
      { weight: 10, arbitrary: fc.dictionary(labelName, labelValue, { maxKeys: 6 }) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 3, 'x', [], [{ __name__: 'in' }], { __name__: 1 }, { __name__: '' }, { __name__: 'n', a: { b: ['}', ']'] } }) },
    ),
    { maxLength: 20 },
  );
  const compactAnswer = fc
    .record({ data: seriesList, warnings: fc.option(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), { nil: undefined }) })
    .map(({ data, warnings }) => JSON.stringify({ status: 'success', data, ...(warnings === undefined ? {} : { warnings }) }));

  it('reads the same as JSON.parse and the general reader, however the body is cut', () => {
    fc.assert(
      fc.property(compactAnswer, fc.array(fc.nat(), { maxLength: 8 }), (text, rawCuts) => {
        assert.ok(text.startsWith('{"status":"success","data":['));
        const bytes = encoder.encode(text);
        const cuts = rawCuts.map((c) => c % (bytes.length + 1));
        const answer = parse(bytes, cuts);
        const expected = reference(text);
        assert.deepEqual(answer.series === null ? null : answer.series.map((s) => ({ name: s.name, labels: [...s.labels] })), expected.series);
        assert.deepEqual(plain(answer), plain(general(text, cuts)));
        if (answer.series !== null) assert.equal(answer.distinct, new Set(answer.series).size);
      }),
      { numRuns: 1000 },
    );
  });

  it('reads a body that arrives one byte at a time', () => {
    const text = JSON.stringify({ status: 'success', data: [{ __name__: 'a"]},{', 'p\\': '\\"}],' }, { __name__: 'b\u00e9', q: '\u{1F600}' }], warnings: ['w'] });
    const bytes = encoder.encode(text);
    const answer = parse(bytes, Array.from({ length: bytes.length }, (_, i) => i));
    assert.deepEqual(plain(answer), plain(parse(text)));
    assert.deepEqual(answer.series, [{ name: 'a"]},{', labels: ['p\\'] }, { name: 'b\u00e9', labels: ['q'] }]);
    assert.deepEqual(answer.warnings, ['w']);
  });

  it('refuses exactly what JSON.parse refuses, after random edits of a valid answer', () => {
    const edit = fc.record({ at: fc.nat(), op: fc.constantFrom('insert', 'delete', 'replace'), char: fc.constantFrom('"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'x', '1', '\u0001', '\u00e9') });
    fc.assert(
      fc.property(compactAnswer, fc.array(edit, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 4 }), (text, edits, rawCuts) => {
        let edited = text;
        // Edits after the head: the head itself decides which reader runs, and a changed head is the general reader's.
        for (const { at, op, char } of edits) {
          const i = 28 + (at % Math.max(1, edited.length - 28));
          edited = op === 'insert' ? edited.slice(0, i) + char + edited.slice(i) : op === 'delete' ? edited.slice(0, i) + edited.slice(i + 1) : edited.slice(0, i) + char + edited.slice(i + 1);
        }
        const bytes = encoder.encode(edited);
        const cuts = rawCuts.map((c) => c % (bytes.length + 1));
        let valid = true;
        try {
          JSON.parse(edited);
        } catch {
          valid = false;
        }
        if (!valid) {
          assert.throws(() => parse(bytes, cuts), MalformedJsonError);
          return;
        }
        let answer: SeriesAnswer;
        try {
          answer = parse(bytes, cuts);
        } catch (err) {
          // Valid JSON that is no object envelope: refused by both readers.
          assert.ok(err instanceof MalformedJsonError);
          assert.throws(() => general(edited), MalformedJsonError);
          return;
        }
        assert.deepEqual(plain(answer), plain(general(edited)));
      }),
      { numRuns: 2000 },
    );
  });

  it('lets a later data key replace the list, and reads the envelope after the list in any order', () => {
    const replaced = parse('{"status":"success","data":[{"__name__":"a"}],"warnings":["w"],"data":[{"__name__":"b","x":"1"}]}');
    assert.deepEqual(replaced.series, [{ name: 'b', labels: ['x'] }]);
    assert.deepEqual(replaced.warnings, ['w']);
    assert.equal(parse('{"status":"success","data":[{"__name__":"a"}],"data":null}').series, null);
    const after = parse('{"status":"success","data":[{"__name__":"a"}],"status":"error","errorType":"timeout","error":"late"}');
    assert.equal(after.status, 'error');
    assert.equal(after.errorType, 'timeout');
    assert.deepEqual(after.series, [{ name: 'a', labels: [] }]);
  });

  it('refuses a truncated list, an empty element, a trailing comma and anything after the envelope, wherever the body is cut', () => {
    const refusedAnywhere = (text: string): void => {
      const bytes = encoder.encode(text);
      for (let cut = 0; cut <= bytes.length; cut++) assert.throws(() => parse(bytes, [cut]), MalformedJsonError, `${text} cut at ${cut}`);
    };
    const body = '{"status":"success","data":[{"__name__":"up","pod":"a\\"]"},{"__name__":"up"}]}';
    for (let end = 28; end < body.length; end++) malformed(body.slice(0, end));
    refusedAnywhere('{"status":"success","data":[,{"__name__":"up"}]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up"},,{"__name__":"up"}]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up"},]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up"}, ]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up"}}]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up"]]}');
    refusedAnywhere('{"status":"success","data":[{"__name__":"up\u0001"}]}');
    refusedAnywhere('{"status":"success","data":[]} x');
    refusedAnywhere('{"status":"success","data":[]]');
    assert.deepEqual(parse('{"status":"success","data":[ ]}').series, []);
  });
});

describe('PrometheusHttpClient.series reads the answer as a stream', () => {
  // A FAKE Prometheus on loopback: each test says how the body arrives.
  let respond: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end();
  const server = http.createServer((req, res) => respond(req, res));
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const client = (timeoutMs = 5000): PrometheusHttpClient => new PrometheusHttpClient({ url, timeoutMs, verb: 'GET' });
  const many = (n: number): string =>
    JSON.stringify({ status: 'success', data: Array.from({ length: n }, (_, i) => ({ __name__: i % 2 ? 'a' : 'b', namespace: `ns-${i}`, pod: `p-${i}` })) });

  it('decompresses a gzip answer that arrives in small pieces', async () => {
    const body = gzipSync(many(5000));
    respond = (req, res) => {
      assert.match(String(req.headers['accept-encoding']), /gzip/);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' });
      let at = 0;
      const next = (): void => {
        if (at >= body.length) return void res.end();
        res.write(body.subarray(at, (at += 977)), next);
      };
      next();
    };
    const series = await client().series(['{namespace!=""}'], 1, 2);
    assert.equal(series.length, 5000);
    assert.equal(new Set(series).size, 2);
    assert.deepEqual(series[0], { name: 'b', labels: ['namespace', 'pod'] });
  });

  it('times out an answer that stops half-way, with the budget counted from the request', async () => {
    respond = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"status":"success","data":[{"__name__":"up"},');
    };
    const started = performance.now();
    await assert.rejects(client(300).series(['up'], 1, 2), (err: unknown) => {
      assert.ok(err instanceof TimeoutError, String(err));
      assert.match(err.message, /did not answer within 300 ms \(--prometheus-timeout\)/);
      return true;
    });
    assert.ok(performance.now() - started < 2000);
  });

  it('stops reading when the caller aborts', async () => {
    respond = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"status":"success","data":[');
    };
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(client().series(['up'], 1, 2, abort.signal), TimeoutError);
  });

  it('maps a connection reset mid-answer to ServiceUnavailableError', async () => {
    respond = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"status":"success","data":[', () => res.socket?.resetAndDestroy());
    };
    await assert.rejects(client().series(['up'], 1, 2), ServiceUnavailableError);
  });

  it('maps a truncated or non-JSON success body like a query does', async () => {
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":[{"__name__":"up"}');
    await assert.rejects(client().series(['up'], 1, 2), (err: unknown) => {
      assert.ok(err instanceof ServiceUnavailableError, String(err));
      assert.equal(err.message, `Prometheus at ${url} answered HTTP 200 with a body that is not a JSON API response: ${JSON.stringify('{"status":"success","data":[{"__name__":"up"}')}`);
      return true;
    });
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<html>${'x'.repeat(500)}</html>`);
    await assert.rejects(client().series(['up'], 1, 2), /not a JSON API response: "<html>x+"$/);
  });

  it('maps error envelopes and error statuses like a query does', async () => {
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"error","errorType":"bad_data","error":"parse error"}');
    await assert.rejects(client().series(['up'], 1, 2), (err: unknown) => {
      assert.ok(err instanceof InternalError, String(err));
      assert.equal(err.message, `Prometheus at ${url} rejected the query (bad_data: parse error)`);
      return true;
    });
    respond = (_req, res) => res.writeHead(422, { 'Content-Type': 'application/json' }).end('{"status":"error","errorType":"execution","error":"too many"}');
    await assert.rejects(client().series(['up'], 1, 2), /rejected the query \(execution: too many\)/);
    respond = (_req, res) => res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"status":"error","errorType":"timeout","error":"query timed out"}');
    await assert.rejects(client().series(['up'], 1, 2), TimeoutError);
    respond = (_req, res) => res.writeHead(502, { 'Content-Type': 'text/plain' }).end('bad gateway');
    await assert.rejects(client().series(['up'], 1, 2), (err: unknown) => {
      assert.ok(err instanceof ServiceUnavailableError, String(err));
      assert.equal(err.message, `Prometheus at ${url} answered HTTP 502 with a body that is not a JSON API response: "bad gateway"`);
      return true;
    });
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":{"resultType":"vector","result":[]}}');
    await assert.rejects(client().series(['up'], 1, 2), /answered a series request with a malformed result/);
  });

  it('keeps the connection usable after an answer it gave up on', async () => {
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":[}');
    const c = client();
    await assert.rejects(c.series(['up'], 1, 2), ServiceUnavailableError);
    respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(many(3));
    assert.equal((await c.series(['up'], 1, 2)).length, 3);
  });
});
