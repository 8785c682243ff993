import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidLabelNameError, InvalidLabelValueError, promqlString } from './escape.ts';
import { namesToMatcher, requirementToMatcher, selectorToMatchers, UnsupportedOperatorError } from './matchers.ts';
import { parseSelector, type Requirement } from './selector.ts';
import { intendedMatcher, readDoubleQuoted, readLiteralAlternation, readMatchers, type MatchOp, type ReadMatcher } from '../../test/harness/promql-reader.ts';

const FC_PARAMS = { seed: 424242, numRuns: 1000 } as const;

// ---------------------------------------------------------------------------------------------------------

describe('test reader sanity', () => {
  it('reads the escapes PromQL defines', () => {
    assert.deepEqual(readMatchers(String.raw`a="\a\b\f\n\r\t\v\\\"",b!~"\x41\101\u00e9\U0001F600"`), [
      { name: 'a', op: '=', value: '\x07\b\f\n\r\t\v\\"' },
      { name: 'b', op: '!~', value: 'AAé😀' },
    ]);
  });

  it('rejects what Prometheus rejects', () => {
    for (const bad of [String.raw`a="\'"`, String.raw`a="\q"`, 'a="x\ny"', 'a="\ufffd"', String.raw`a="\uD800"`, 'a="x', 'a=x', String.raw`a="\xff"`]) {
      assert.throws(() => readMatchers(bad), Error, bad);
    }
    assert.throws(() => readLiteralAlternation('a.b'));
    assert.throws(() => readLiteralAlternation(String.raw`\d`));
  });
});

describe('requirementToMatcher', () => {
  // The reference's label-selector → PromQL table, with values escaped.
  const cases: Array<[string, string]> = [
    ['k=v', 'k="v"'],
    ['k==v', 'k="v"'],
    ['k!=v', 'k!="v"'],
    ['k in (a)', 'k=~"a"'],
    ['k in (b,a)', 'k=~"a|b"'],
    ['k notin (a,b)', 'k!~"a|b"'],
    ['k', 'k!=""'],
    ['!k', 'k=""'],
    ['k=', 'k=""'],
    ['k!=', 'k!=""'],
    ['k in ()', 'k=~""'],
    ['k in (,a)', 'k=~"|a"'],
    ['k in (web.v1)', String.raw`k=~"web\\.v1"`],
    // Sorted by the parser: '-' sorts before '.'.
    ['k in (web.v1,web-v2)', String.raw`k=~"web-v2|web\\.v1"`],
    ['k notin (a.b)', String.raw`k!~"a\\.b"`],
    // Equality needs no regex escaping.
    ['k=web.v1', 'k="web.v1"'],
    ['in in (in)', 'in=~"in"'],
    ['K_9=x', 'K_9="x"'],
  ];
  for (const [selector, expected] of cases) {
    it(`${selector} → ${expected}`, () => {
      const [req] = parseSelector(selector);
      assert.equal(requirementToMatcher(req!), expected);
    });
  }

  it('escapes hand-built values that the selector grammar would never allow', () => {
    assert.equal(requirementToMatcher({ key: 'k', operator: 'Equals', values: ['a"b\\c\n'] }), String.raw`k="a\"b\\c\n"`);
    assert.equal(requirementToMatcher({ key: 'k', operator: 'In', values: ['a|b', 'C:\\temp'] }), String.raw`k=~"a\\|b|C:\\\\temp"`);
    assert.equal(requirementToMatcher({ key: 'k', operator: 'NotIn', values: ['x', 'x', 'f(x)'] }), String.raw`k!~"x|f\\(x\\)"`);
  });

  it('refuses gt and lt', () => {
    const cases: Array<[string, 'gt' | 'lt']> = [
      ['k>1', 'gt'],
      ['k<1', 'lt'],
    ];
    for (const [selector, operator] of cases) {
      assert.throws(
        () => requirementToMatcher(parseSelector(selector)[0]!),
        (error: unknown) =>
          error instanceof UnsupportedOperatorError &&
          error.message === `operator ${operator} is not supported by Prometheus label matching` &&
          error.key === 'k' &&
          error.operator === operator,
      );
    }
  });

  it('refuses keys that are not legacy Prometheus label names, naming the key and the reason', () => {
    for (const [selector, key, reason] of [
      ['app.kubernetes.io/name=web', 'app.kubernetes.io/name', /it contains "\.", "\/"/],
      ['app-name in (a)', 'app-name', /it contains "-"/],
      ['9lives', '9lives', /starts with a digit/],
    ] as const) {
      assert.throws(
        () => requirementToMatcher(parseSelector(selector)[0]!),
        (error: unknown) =>
          error instanceof InvalidLabelNameError &&
          error.labelName === key &&
          error.message.startsWith(`label selector key ${JSON.stringify(key)} cannot be matched in Prometheus`) &&
          reason.test(error.message),
      );
    }
  });

  it('refuses reserved and hostile keys in hand-built requirements', () => {
    assert.throws(() => requirementToMatcher({ key: '__name__', operator: 'Equals', values: ['up'] }), /"__name__".*reserved/);
    assert.throws(() => requirementToMatcher({ key: 'a="x"} or vector(1) or {b', operator: 'Exists', values: [] }), InvalidLabelNameError);
    assert.throws(() => requirementToMatcher({ key: '', operator: 'Exists', values: [] }), /it is empty/);
  });

  it('refuses an empty value set instead of emitting =~"" (which would mean the opposite)', () => {
    for (const operator of ['In', 'NotIn'] as const) {
      assert.throws(() => requirementToMatcher({ key: 'k', operator, values: [] }), InvalidLabelValueError);
    }
  });

  it('refuses values that are not well-formed Unicode', () => {
    assert.throws(() => requirementToMatcher({ key: 'k', operator: 'Equals', values: ['\ud800'] }), InvalidLabelValueError);
  });
});

describe('selectorToMatchers', () => {
  it('keeps selector order, one matcher per requirement', () => {
    assert.deepEqual(selectorToMatchers(parseSelector('zone in (b,a),app=web,!canary,tier,env!=prod,x notin (y)')), [
      'app="web"',
      'canary=""',
      'env!="prod"',
      'tier!=""',
      'x!~"y"',
      'zone=~"a|b"',
    ]);
  });

  it('returns [] for the empty selector, and a fresh array the caller may extend', () => {
    assert.deepEqual(selectorToMatchers(parseSelector('')), []);
    const sel = parseSelector('a=b');
    const first = selectorToMatchers(sel);
    first.push('namespace="x"');
    assert.deepEqual(selectorToMatchers(sel), ['a="b"']);
  });

  it('fails whole when any requirement cannot be expressed', () => {
    assert.throws(() => selectorToMatchers(parseSelector('a=b,c>1')), UnsupportedOperatorError);
  });
});

describe('namesToMatcher', () => {
  it('one name → equality', () => assert.equal(namesToMatcher('pod', ['web-1']), 'pod="web-1"'));
  it('duplicates of one name → equality', () => assert.equal(namesToMatcher('pod', ['a', 'a']), 'pod="a"'));
  it('several → alternation in first-seen order, duplicates dropped', () => {
    assert.equal(namesToMatcher('pod', ['b', 'a', 'b', 'c']), 'pod=~"b|a|c"');
  });
  it('none → null (the caller must not query)', () => assert.equal(namesToMatcher('pod', []), null));

  it('reproduces the reference query checked against a real Prometheus', () => {
    assert.equal(
      namesToMatcher('pod', ['web.v1', 'a|b', 'C:\\temp', 'say "hi"', 'f(x)']),
      String.raw`pod=~"web\\.v1|a\\|b|C:\\\\temp|say \"hi\"|f\\(x\\)"`,
    );
    assert.equal(namesToMatcher('pod', ['line\nbreak']), String.raw`pod="line\nbreak"`);
    assert.equal(namesToMatcher('pod', ['line\nbreak', 'x']), String.raw`pod=~"line\nbreak|x"`);
  });

  it('refuses an empty name, which would select series without the label', () => {
    assert.throws(() => namesToMatcher('pod', ['']), InvalidLabelValueError);
    assert.throws(() => namesToMatcher('pod', ['a', '']), InvalidLabelValueError);
  });

  it('refuses label names that are not legacy Prometheus names', () => {
    assert.throws(() => namesToMatcher('pod.name', ['a']), InvalidLabelNameError);
    assert.throws(() => namesToMatcher('', []), InvalidLabelNameError);
  });

  it('refuses names that are not well-formed Unicode', () => {
    assert.throws(() => namesToMatcher('pod', ['a', 'b\udc00']), InvalidLabelValueError);
  });
});

// ---------------------------------------------------------------------------------------------------------

const HOSTILE_PIECES = [
  '"',
  '\\',
  '\\\\',
  '\\"',
  '}',
  '{',
  '|',
  ',',
  '\n',
  '\r',
  '\t',
  '\0',
  '\x1b',
  '\x7f',
  '\ufffd',
  '.',
  '*',
  '+',
  '?',
  '(',
  ')',
  '[',
  ']',
  '^',
  '$',
  "'",
  '`',
  '=',
  '=~',
  '!',
  ' ',
  'é',
  '東京',
  '😀',
  '\u2028',
  '\u0085',
  '\\E',
  '\\Q',
  '\\x41',
  '\\u0041',
  '"}) or vector(1) or foo{x="',
  '"} or up{x="',
  '",__name__="up',
];

const hostileValue: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      fc.constantFrom(...HOSTILE_PIECES),
      fc.string({ unit: 'binary', maxLength: 3 }).filter((s) => s.isWellFormed()),
      fc.string({ maxLength: 4 }),
    ),
    { maxLength: 6 },
  )
  .map((pieces) => pieces.join(''));

const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/).filter((name) => !name.startsWith('__'));

const requirement: fc.Arbitrary<Requirement> = fc.oneof(
  fc.record({ key: labelName, operator: fc.constantFrom('Equals' as const, 'NotEquals' as const), values: hostileValue.map((v) => [v]) }),
  fc.record({
    key: labelName,
    operator: fc.constantFrom('In' as const, 'NotIn' as const),
    values: fc.array(hostileValue, { minLength: 1, maxLength: 5 }),
  }),
  fc.record({ key: labelName, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const), values: fc.constant<string[]>([]) }),
);

const expected = intendedMatcher;

/** The values a read matcher denotes: the string itself, or the literals of its regex alternation. */
function denoted(m: ReadMatcher): string[] {
  if (m.op === '=' || m.op === '!=') return [m.value];
  const literals = readLiteralAlternation(m.value);
  // Cross-check with a real regex engine, anchored the way Prometheus anchors (`^(?s:re)$` in 3.x).
  const re = new RegExp(`^(?:${m.value})$`, 'su');
  for (const literal of literals) assert.ok(re.test(literal), `${m.value} must match ${JSON.stringify(literal)}`);
  for (const literal of literals) {
    for (const decoy of [`${literal}x`, `x${literal}`, literal.slice(1)]) {
      assert.equal(re.test(decoy), literals.includes(decoy), `${m.value} vs decoy ${JSON.stringify(decoy)}`);
    }
  }
  return literals;
}

describe('round trips through an independent PromQL reader', () => {
  it('promqlString denotes exactly its input', () => {
    fc.assert(
      fc.property(hostileValue, (value) => {
        assert.deepEqual(readMatchers(`x=${promqlString(value)}`), [{ name: 'x', op: '=', value }]);
      }),
      FC_PARAMS,
    );
  });

  it('selectorToMatchers: each requirement reads back as exactly one matcher with its name, operator and values', () => {
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 6 }), (sel) => {
        const text = selectorToMatchers(sel).join(',');
        const read = readMatchers(text);
        assert.equal(read.length, sel.length, `matcher count in ${text}`);
        read.forEach((m, i) => {
          const want = expected(sel[i]!);
          assert.deepEqual({ name: m.name, op: m.op, values: denoted(m) }, want);
        });
      }),
      FC_PARAMS,
    );
  });

  it('namesToMatcher: one matcher, denoting exactly the distinct names', () => {
    fc.assert(
      fc.property(labelName, fc.array(hostileValue.filter((v) => v !== ''), { minLength: 1, maxLength: 6 }), (label, names) => {
        const matcher = namesToMatcher(label, names);
        assert.ok(matcher !== null);
        const read = readMatchers(matcher);
        assert.equal(read.length, 1);
        const unique = [...new Set(names)];
        assert.equal(read[0]!.name, label);
        assert.equal(read[0]!.op, unique.length === 1 ? '=' : '=~');
        assert.deepEqual(denoted(read[0]!), unique);
      }),
      FC_PARAMS,
    );
  });

  it('a full selector embedded in a query keeps its matchers inside the braces', () => {
    fc.assert(
      fc.property(fc.array(requirement, { minLength: 1, maxLength: 4 }), (sel) => {
        const query = `sum(rate(http_requests_total{${selectorToMatchers(sel).join(',')}}[5m]))`;
        const prefix = 'sum(rate(http_requests_total{';
        // Walk the matcher list with the reader; what follows it must be exactly the template's own text.
        const body = query.slice(prefix.length);
        let end = 0;
        for (let i = 0; i < sel.length; i++) {
          const name = /^[a-zA-Z_][a-zA-Z0-9_]*(=~|!~|!=|=)/.exec(body.slice(end))![0];
          end = readDoubleQuoted(body, end + name.length).end + (i < sel.length - 1 ? 1 : 0);
        }
        assert.equal(body.slice(end), '}[5m]))');
      }),
      FC_PARAMS,
    );
  });
});
