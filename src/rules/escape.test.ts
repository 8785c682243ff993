import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  assertLabelName,
  InvalidLabelNameError,
  InvalidLabelValueError,
  isLegacyLabelName,
  promqlString,
  regexQuote,
} from './escape.ts';

const FC_PARAMS = { seed: 424242, numRuns: 500 } as const;

describe('promqlString', () => {
  // Rows from the reference's "exact rule for embedding an arbitrary string", plus one per escape class.
  const cases: Array<[string, string, string]> = [
    ['plain', 'web-1', '"web-1"'],
    ['empty', '', '""'],
    ['double quote', 'a"b', '"a\\"b"'],
    ['backslash', 'C:\\temp', '"C:\\\\temp"'],
    ['single quote stays raw', "it's", '"it\'s"'],
    ['newline', 'two\nlines', '"two\\nlines"'],
    ['carriage return', 'a\rb', '"a\\rb"'],
    ['tab', 'a\tb', '"a\\tb"'],
    ['replacement character', 'x\ufffd', '"x\\uFFFD"'],
    ['NUL', 'a\0b', '"a\\x00b"'],
    ['other C0 control', '\x01\x1b\x1f', '"\\x01\\x1b\\x1f"'],
    ['DEL', 'a\x7fb', '"a\\x7fb"'],
    ['C1 control passes through', '\u0085', '"\u0085"'],
    ['backtick and slash pass through', '`/`', '"`/`"'],
    ['non-ASCII passes through', 'zürich-東京', '"zürich-東京"'],
    ['astral code point passes through', 'a😀b', '"a😀b"'],
    ['line separator passes through', '\u2028', '"\u2028"'],
    ['injection attempt stays inside the literal', '"}) or vector(1) or foo{x="', '"\\"}) or vector(1) or foo{x=\\""'],
    ['backslash before quote', '\\"', '"\\\\\\""'],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.equal(promqlString(input), expected));
  }

  it('never uses \\\' or \\/ (PromQL rejects \\\' inside double quotes)', () => {
    assert.equal(promqlString("'/'"), '"\'/\'"');
  });

  for (const [name, input] of [
    ['lone high surrogate', 'a\ud800b'],
    ['lone low surrogate', '\udc00'],
    ['reversed pair', '\udc00\ud800'],
    ['high surrogate at the end', 'abc\udbff'],
  ] as const) {
    it(`rejects ${name}`, () => {
      assert.throws(() => promqlString(input), InvalidLabelValueError);
    });
  }

  it('names the position of the lone surrogate', () => {
    assert.throws(() => promqlString('ab\ud800'), /UTF-16 index 2/);
  });

  it('output never holds a raw control character, raw U+FFFD, or an unescaped quote', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (value) => {
        fc.pre(value.isWellFormed());
        const out = promqlString(value);
        assert.ok(out.startsWith('"') && out.endsWith('"') && out.length >= 2);
        const body = out.slice(1, -1);
        assert.doesNotMatch(body, /[\u0000-\u001f\u007f\ufffd]/);
        // Every quote in the body is escaped: strip escape pairs, then no quote or backslash may remain.
        assert.doesNotMatch(body.replace(/\\(?:x[0-9a-f]{2}|uFFFD|[\\"nrt])/g, ''), /["\\]/);
      }),
      FC_PARAMS,
    );
  });
});

describe('regexQuote', () => {
  // The reference's table of values checked against a real Prometheus (step 1, the RE2 pattern).
  const cases: Array<[string, string]> = [
    ['web.v1', 'web\\.v1'],
    ['a|b', 'a\\|b'],
    ['C:\\temp', 'C:\\\\temp'],
    ['say "hi"', 'say "hi"'],
    ['f(x)', 'f\\(x\\)'],
    ['\\.+*?()|[]{}^$', '\\\\\\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$'],
    ['-/#" é\n', '-/#" é\n'],
    ['', ''],
    ['\\E\\Q', '\\\\E\\\\Q'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => assert.equal(regexQuote(input), expected));
  }

  it('the pattern, anchored as Prometheus anchors it, matches exactly the value', () => {
    const chars = fc.constantFrom(...'\\.+*?()|[]{}^$-/"\'ab\n'.split(''), 'é', '😀');
    const value = fc.array(chars, { maxLength: 12 }).map((c) => c.join(''));
    fc.assert(
      fc.property(value, value, (a, b) => {
        // The `u` flag only accepts escapes of syntax characters, so it also proves no stray escape is emitted.
        const re = new RegExp(`^(?:${regexQuote(a)})$`, 'su');
        assert.ok(re.test(a));
        assert.equal(re.test(b), a === b);
      }),
      FC_PARAMS,
    );
  });
});

describe('isLegacyLabelName / assertLabelName', () => {
  const valid = ['a', 'A', '_', 'pod', 'kube_pod_info', '__name__', 'a1', 'on', 'by', 'Z_9'];
  const invalid = ['', '1a', 'a.b', 'a-b', 'a:b', 'app.kubernetes.io/name', 'a b', 'é', 'a\n', 'a"', 'a}'];
  for (const name of valid) {
    it(`accepts ${JSON.stringify(name)}`, () => {
      assert.equal(isLegacyLabelName(name), true);
      assert.doesNotThrow(() => assertLabelName(name));
    });
  }
  for (const name of invalid) {
    it(`rejects ${JSON.stringify(name)}`, () => {
      assert.equal(isLegacyLabelName(name), false);
      assert.throws(
        () => assertLabelName(name),
        (error: unknown) =>
          error instanceof InvalidLabelNameError &&
          error.labelName === name &&
          error.message.includes(JSON.stringify(name)) &&
          error.message.includes('[a-zA-Z_][a-zA-Z0-9_]*'),
      );
    });
  }

  it('says why', () => {
    assert.throws(() => assertLabelName(''), /it is empty/);
    assert.throws(() => assertLabelName('9lives'), /it starts with a digit/);
    assert.throws(() => assertLabelName('app.kubernetes.io/name'), /it contains "\.", "\/"/);
  });
});
