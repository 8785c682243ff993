import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  matchesLabels,
  parseSelector,
  selectorToString,
  SelectorParseError,
  toLabelSelectorObject,
  type Requirement,
  type Selector,
} from './selector.ts';

const FC_PARAMS = { seed: 424242, numRuns: 500 } as const;

// Kubernetes' texts, written out in full here (not imported) so a typo in the module cannot also be in the test.
const NAME_REGEX_MSG =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_REGEX_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_REGEX_MSG =
  "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const MULTI_SLASH_MSG =
  "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const INT_MSG = "for 'Gt', 'Lt' operators, the value must be an integer";
const REQ = 'unable to parse requirement: ';

function r(key: string, operator: Requirement['operator'], values: string[] = []): Requirement {
  return { key, operator, values };
}

function parseError(text: string, options?: Parameters<typeof parseSelector>[1]): string {
  try {
    parseSelector(text, options);
  } catch (error) {
    assert.ok(error instanceof SelectorParseError, `not a SelectorParseError: ${String(error)}`);
    assert.equal(error.name, 'SelectorParseError');
    return error.message;
  }
  assert.fail(`parsed without error: ${JSON.stringify(text)}`);
}

describe('parseSelector: accepted forms', () => {
  const cases: Array<[string, Requirement[], string]> = [
    // [input, requirements, canonical string]
    ['app=web', [r('app', 'Equals', ['web'])], 'app=web'],
    ['app==web', [r('app', 'Equals', ['web'])], 'app=web'],
    ['app!=web', [r('app', 'NotEquals', ['web'])], 'app!=web'],
    ['app in (b,a)', [r('app', 'In', ['a', 'b'])], 'app in (a,b)'],
    ['app notin (b,a,b)', [r('app', 'NotIn', ['a', 'b'])], 'app notin (a,b)'],
    ['app', [r('app', 'Exists')], 'app'],
    ['!app', [r('app', 'DoesNotExist')], '!app'],
    ['! app', [r('app', 'DoesNotExist')], '!app'],
    ['replicas>1', [r('replicas', 'GreaterThan', ['1'])], 'replicas>1'],
    ['replicas<10', [r('replicas', 'LessThan', ['10'])], 'replicas<10'],
    ['k>9223372036854775807', [r('k', 'GreaterThan', ['9223372036854775807'])], 'k>9223372036854775807'],
    ['k>007', [r('k', 'GreaterThan', ['007'])], 'k>007'],
    // Empty values.
    ['k=', [r('k', 'Equals', [''])], 'k='],
    ['k==', [r('k', 'Equals', [''])], 'k='],
    ['k!=', [r('k', 'NotEquals', [''])], 'k!='],
    ['k=,j=x', [r('j', 'Equals', ['x']), r('k', 'Equals', [''])], 'j=x,k='],
    ['k in ()', [r('k', 'In', [''])], 'k in ()'],
    ['k notin ()', [r('k', 'NotIn', [''])], 'k notin ()'],
    ['k in (a,)', [r('k', 'In', ['', 'a'])], 'k in (,a)'],
    ['k in (,a)', [r('k', 'In', ['', 'a'])], 'k in (,a)'],
    ['k in (a,,b)', [r('k', 'In', ['', 'a', 'b'])], 'k in (,a,b)'],
    ['k in (a,,)', [r('k', 'In', ['', 'a'])], 'k in (,a)'],
    ['k in (,)', [r('k', 'In', [''])], 'k in ()'],
    ['k in (,,)', [r('k', 'In', [''])], 'k in ()'],
    ['x in (foo,,baz),y,z notin ()', [r('x', 'In', ['', 'baz', 'foo']), r('y', 'Exists'), r('z', 'NotIn', [''])], 'x in (,baz,foo),y,z notin ()'],
    // Keywords are identifiers wherever no operator is expected.
    ['in in (in)', [r('in', 'In', ['in'])], 'in in (in)'],
    ['notin=in', [r('notin', 'Equals', ['in'])], 'notin=in'],
    ['notin notin (notin,in)', [r('notin', 'NotIn', ['in', 'notin'])], 'notin notin (in,notin)'],
    ['in', [r('in', 'Exists')], 'in'],
    ['!notin', [r('notin', 'DoesNotExist')], '!notin'],
    ['k=in,j!=notin', [r('j', 'NotEquals', ['notin']), r('k', 'Equals', ['in'])], 'j!=notin,k=in'],
    ['In=x', [r('In', 'Equals', ['x'])], 'In=x'],
    // Keys: prefix, upper case, all the legal characters.
    ['app.kubernetes.io/name=web', [r('app.kubernetes.io/name', 'Equals', ['web'])], 'app.kubernetes.io/name=web'],
    ['example.com/My_Key-1.x=V_a-l.1', [r('example.com/My_Key-1.x', 'Equals', ['V_a-l.1'])], 'example.com/My_Key-1.x=V_a-l.1'],
    ['9=9', [r('9', 'Equals', ['9'])], '9=9'],
    // Sorting by key, stable for repeated keys, and the same key may appear twice.
    ['b=1,a=2,c,!d', [r('a', 'Equals', ['2']), r('b', 'Equals', ['1']), r('c', 'Exists'), r('d', 'DoesNotExist')], 'a=2,b=1,c,!d'],
    ['a=x,a=y', [r('a', 'Equals', ['x']), r('a', 'Equals', ['y'])], 'a=x,a=y'],
    ['b=1,a=y,a in (x),a', [r('a', 'Equals', ['y']), r('a', 'In', ['x']), r('a', 'Exists'), r('b', 'Equals', ['1'])], 'a=y,a in (x),a,b=1'],
    // Uppercase sorts before lowercase (byte order).
    ['a=1,B=2', [r('B', 'Equals', ['2']), r('a', 'Equals', ['1'])], 'B=2,a=1'],
    ['k in (b,B,a,A,1)', [r('k', 'In', ['1', 'A', 'B', 'a', 'b'])], 'k in (1,A,B,a,b)'],
  ];
  for (const [input, expected, canonical] of cases) {
    it(JSON.stringify(input), () => {
      const sel = parseSelector(input);
      assert.deepEqual(sel, expected);
      assert.equal(selectorToString(sel), canonical);
      assert.deepEqual(parseSelector(canonical), expected, 'canonical form reads back the same');
    });
  }

  it('treats missing, empty and blank input as "everything"', () => {
    for (const input of [undefined, '', ' ', '\t\r\n ']) assert.deepEqual(parseSelector(input), []);
    assert.equal(selectorToString(parseSelector(undefined)), '');
  });

  it('skips exactly space, tab, CR and LF around every token', () => {
    const expected = [r('a', 'In', ['x', 'y']), r('b', 'Equals', ['1']), r('c', 'DoesNotExist'), r('d', 'NotEquals', ['2']), r('e', 'Exists')];
    for (const ws of [' ', '\t', '\r', '\n', ' \t\r\n ']) {
      const text = ['', 'a', 'in', '(', 'x', ',', 'y', ')', ',', 'b', '=', '1', ',', '!', 'c', ',', 'd', '!=', '2', ',', 'e', ''].join(ws);
      assert.deepEqual(parseSelector(text), expected, JSON.stringify(text));
    }
  });

  it('keeps operators tight against keys and values', () => {
    assert.deepEqual(parseSelector('a in(x,y),b notin(z)'), [r('a', 'In', ['x', 'y']), r('b', 'NotIn', ['z'])]);
    assert.deepEqual(parseSelector('a=b,c!=d,e==f'), [r('a', 'Equals', ['b']), r('c', 'NotEquals', ['d']), r('e', 'Equals', ['f'])]);
  });

  it('reads URL-decoded query parameters (URLSearchParams semantics)', () => {
    for (const query of ['labelSelector=app+in+%28a%2Cb%29', 'labelSelector=app%20in%20(a%2Cb)', 'labelSelector=app%20in%20%28a,b%29']) {
      const text = new URLSearchParams(query).get('labelSelector') ?? undefined;
      assert.equal(text, 'app in (a,b)');
      assert.deepEqual(parseSelector(text), [r('app', 'In', ['a', 'b'])]);
    }
    assert.deepEqual(parseSelector(new URLSearchParams('labelSelector=').get('labelSelector') ?? undefined), []);
    // decodeURIComponent would keep the '+', which is never legal in a key.
    assert.match(parseError('app+in+(a,b)'), /^unable to parse requirement: <nil>: Invalid value: "app\+in\+"/);
  });

  it('returns frozen results', () => {
    const sel = parseSelector('a in (x,y),b');
    assert.ok(Object.isFrozen(sel));
    assert.ok(sel.every((req) => Object.isFrozen(req) && Object.isFrozen(req.values)));
  });

  it('accepts the length limits exactly', () => {
    const name63 = 'n'.repeat(63);
    const prefix253 = `${'p'.repeat(63)}.${'p'.repeat(63)}.${'p'.repeat(63)}.${'p'.repeat(61)}`;
    assert.equal(prefix253.length, 253);
    assert.deepEqual(parseSelector(`${prefix253}/${name63}=${'v'.repeat(63)}`), [r(`${prefix253}/${name63}`, 'Equals', ['v'.repeat(63)])]);
  });
});

describe('parseSelector: Kubernetes error texts', () => {
  const cases: Array<[string, string]> = [
    // Reference table.
    ['app=web x', "found 'x', expected: ',' or 'end of string'"],
    ['a=b,', "found '', expected: identifier after ','"],
    [',a', "found ',', expected: !, identifier, or 'end of string'"],
    ['app web', `${REQ}found 'web', expected: in, notin, =, ==, !=, gt, lt`],
    ['k in a', `${REQ}found 'a' expected: '('`],
    ['k in (a b)', `${REQ}found 'b', expected: ',' or ')'`],
    ['k in (a', `${REQ}found '', expected: ',' or ')'`],
    ['app:web', `${REQ}<nil>: Invalid value: "app:web": ${NAME_REGEX_MSG}`],
    ['app=-x', `${REQ}values[0][app]: Invalid value: "-x": ${VALUE_REGEX_MSG}`],
    ['k<a', `${REQ}values[0]: Invalid value: "a": ${INT_MSG}`],
    // Top level.
    ['a=b,,c', "found ',', expected: identifier after ','"],
    ['a=b,=', "found '=', expected: identifier after ','"],
    ['=a', "found '=', expected: !, identifier, or 'end of string'"],
    ['(', "found '(', expected: !, identifier, or 'end of string'"],
    [')', "found ')', expected: !, identifier, or 'end of string'"],
    ['a b=c', `${REQ}found 'b', expected: in, notin, =, ==, !=, gt, lt`],
    ['a=b c=d', "found 'c', expected: ',' or 'end of string'"],
    ['a in (b) c', "found 'c', expected: ',' or 'end of string'"],
    ['a=(b)', `${REQ}found '(', expected: identifier`],
    // `!key` is complete on its own; what follows is misplaced.
    ['!a=b', "found '=', expected: ',' or 'end of string'"],
    ['!a in (b)', "found 'in', expected: ',' or 'end of string'"],
    ['!', `${REQ}found '', expected: identifier`],
    ['!!a', `${REQ}found '!', expected: identifier`],
    ['!,a', `${REQ}found ',', expected: identifier`],
    // Operators: no >=, <=, =!, ===; `!` is not binary.
    ['k>=1', `${REQ}found '=', expected: identifier`],
    ['k<=1', `${REQ}found '=', expected: identifier`],
    ['k=!v', `${REQ}found '!', expected: identifier`],
    ['k===v', `${REQ}found '=', expected: identifier`],
    ['k!==v', `${REQ}found '=', expected: identifier`],
    ['k!v', `${REQ}found '!', expected: in, notin, =, ==, !=, gt, lt`],
    ['k (a)', `${REQ}found '(', expected: in, notin, =, ==, !=, gt, lt`],
    ['k )', `${REQ}found ')', expected: in, notin, =, ==, !=, gt, lt`],
    ['k In (a)', `${REQ}found 'In', expected: in, notin, =, ==, !=, gt, lt`],
    ['k gt 1', `${REQ}found 'gt', expected: in, notin, =, ==, !=, gt, lt`],
    ['k=a=b', "found '=', expected: ',' or 'end of string'"],
    // Sets.
    ['k in', `${REQ}found '' expected: '('`],
    ['k notin x', `${REQ}found 'x' expected: '('`],
    ['k in (', `${REQ}found '', expected: ',', ')' or identifier`],
    ['k in (!)', `${REQ}found '!', expected: ',', ')' or identifier`],
    ['k in ((a))', `${REQ}found '(', expected: ',', ')' or identifier`],
    ['k in (a,', `${REQ}found '', expected: ',', or identifier`],
    ['k in (,', `${REQ}found '', expected: ',', or identifier`],
    ['k in (a,!)', `${REQ}found '!', expected: ',', or identifier`],
    ['k in (a,=)', `${REQ}found '=', expected: ',', or identifier`],
    ['k in (a=b)', `${REQ}found '=', expected: ',' or ')'`],
    ['k in (a)(b)', "found '(', expected: ',' or 'end of string'"],
    // Keys.
    ['a/b/c', `${REQ}<nil>: Invalid value: "a/b/c": ${MULTI_SLASH_MSG}`],
    ['/a', `${REQ}<nil>: Invalid value: "/a": prefix part must be non-empty`],
    ['a/', `${REQ}<nil>: Invalid value: "a/": name part must be non-empty; ${NAME_REGEX_MSG}`],
    ['/', `${REQ}<nil>: Invalid value: "/": prefix part must be non-empty; name part must be non-empty; ${NAME_REGEX_MSG}`],
    ['Example.com/a', `${REQ}<nil>: Invalid value: "Example.com/a": ${PREFIX_REGEX_MSG}`],
    ['a..b/c', `${REQ}<nil>: Invalid value: "a..b/c": ${PREFIX_REGEX_MSG}`],
    ['-a/b', `${REQ}<nil>: Invalid value: "-a/b": ${PREFIX_REGEX_MSG}`],
    ['a_b/c', `${REQ}<nil>: Invalid value: "a_b/c": ${PREFIX_REGEX_MSG}`],
    ['Bad_/x', `${REQ}<nil>: Invalid value: "Bad_/x": ${PREFIX_REGEX_MSG}`],
    ['x/-a', `${REQ}<nil>: Invalid value: "x/-a": ${NAME_REGEX_MSG}`],
    ['_a', `${REQ}<nil>: Invalid value: "_a": ${NAME_REGEX_MSG}`],
    ['a.', `${REQ}<nil>: Invalid value: "a.": ${NAME_REGEX_MSG}`],
    ['a|b=c', `${REQ}<nil>: Invalid value: "a|b": ${NAME_REGEX_MSG}`],
    ['"a"=b', `${REQ}<nil>: Invalid value: "\\"a\\"": ${NAME_REGEX_MSG}`],
    ['ü', `${REQ}<nil>: Invalid value: "ü": ${NAME_REGEX_MSG}`],
    ['!a:b', `${REQ}<nil>: Invalid value: "a:b": ${NAME_REGEX_MSG}`],
    ['a:b in (x', `${REQ}<nil>: Invalid value: "a:b": ${NAME_REGEX_MSG}`],
    // Values.
    ['a=b|c', `${REQ}values[0][a]: Invalid value: "b|c": ${VALUE_REGEX_MSG}`],
    ['a=x.', `${REQ}values[0][a]: Invalid value: "x.": ${VALUE_REGEX_MSG}`],
    ['a!="x"', `${REQ}values[0][a]: Invalid value: "\\"x\\"": ${VALUE_REGEX_MSG}`],
    ['a in (ok,-x)', `${REQ}values[0][a]: Invalid value: "-x": ${VALUE_REGEX_MSG}`],
    ['a in (ok,z-)', `${REQ}values[1][a]: Invalid value: "z-": ${VALUE_REGEX_MSG}`],
    // Several failing values: one aggregate, bracketed, indexes into the sorted set.
    ['a in (z-,-x,ok)', `${REQ}[values[0][a]: Invalid value: "-x": ${VALUE_REGEX_MSG}, values[2][a]: Invalid value: "z-": ${VALUE_REGEX_MSG}]`],
    ['a notin (-x,-x)', `${REQ}values[0][a]: Invalid value: "-x": ${VALUE_REGEX_MSG}`],
    // Gt/Lt.
    ['k>', `${REQ}values[0]: Invalid value: "": ${INT_MSG}`],
    ['k>1.5', `${REQ}values[0]: Invalid value: "1.5": ${INT_MSG}`],
    ['k>9223372036854775808', `${REQ}values[0]: Invalid value: "9223372036854775808": ${INT_MSG}`],
    ['k<1e3', `${REQ}values[0]: Invalid value: "1e3": ${INT_MSG}`],
    ['k>-1', `${REQ}values[0][k]: Invalid value: "-1": ${VALUE_REGEX_MSG}`],
    ['k>+1', `${REQ}values[0][k]: Invalid value: "+1": ${VALUE_REGEX_MSG}`],
    ['k>-x', `${REQ}[values[0]: Invalid value: "-x": ${INT_MSG}, values[0][k]: Invalid value: "-x": ${VALUE_REGEX_MSG}]`],
    ['k<(1)', `${REQ}found '(', expected: identifier`],
    // Only ASCII space, tab, CR and LF separate tokens; other Unicode spaces are part of the identifier.
    ['a=b\u00a0c', `${REQ}values[0][a]: Invalid value: "b\\u00a0c": ${VALUE_REGEX_MSG}`],
    ['a\u2003in (x)', `${REQ}<nil>: Invalid value: "a\\u2003in": ${NAME_REGEX_MSG}`],
    ['a\v=b', `${REQ}<nil>: Invalid value: "a\\v": ${NAME_REGEX_MSG}`],
    ['a=\x01', `${REQ}values[0][a]: Invalid value: "\\x01": ${VALUE_REGEX_MSG}`],
    ['a=\x7f', `${REQ}values[0][a]: Invalid value: "\\x7f": ${VALUE_REGEX_MSG}`],
    ['a=\\', `${REQ}values[0][a]: Invalid value: "\\\\": ${VALUE_REGEX_MSG}`],
    ['a=😀', `${REQ}values[0][a]: Invalid value: "😀": ${VALUE_REGEX_MSG}`],
    ['a=\ufeff', `${REQ}values[0][a]: Invalid value: "\\ufeff": ${VALUE_REGEX_MSG}`],
    // The first failing requirement wins, in written order (sorting happens after parsing).
    ['z=-1,a=-2', `${REQ}values[0][z]: Invalid value: "-1": ${VALUE_REGEX_MSG}`],
  ];
  for (const [input, expected] of cases) {
    it(JSON.stringify(input), () => assert.equal(parseError(input), expected));
  }

  it('counts lengths in UTF-8 bytes, with 63 for names and values and 253 for prefixes', () => {
    assert.equal(parseError(`${'n'.repeat(64)}=x`), `${REQ}<nil>: Invalid value: "${'n'.repeat(64)}": name part must be no more than 63 bytes`);
    assert.equal(
      parseError(`a=${'v'.repeat(64)}`),
      `${REQ}values[0][a]: Invalid value: "${'v'.repeat(64)}": must be no more than 63 bytes`,
    );
    const prefix254 = `${'p'.repeat(125)}.${'p'.repeat(128)}`;
    assert.equal(parseError(`${prefix254}/a`), `${REQ}<nil>: Invalid value: "${prefix254}/a": prefix part must be no more than 253 bytes`);
    // 32 × "é" is 32 UTF-16 units but 64 bytes: both the length and the character rule fail.
    const accented = 'é'.repeat(32);
    assert.equal(parseError(`${accented}`), `${REQ}<nil>: Invalid value: "${accented}": name part must be no more than 63 bytes; ${NAME_REGEX_MSG}`);
    assert.equal(
      parseError(`a=${accented}`),
      `${REQ}values[0][a]: Invalid value: "${accented}": must be no more than 63 bytes; ${VALUE_REGEX_MSG}`,
    );
    const longBadPrefix = `${'P'.repeat(254)}/a`;
    assert.equal(
      parseError(longBadPrefix),
      `${REQ}<nil>: Invalid value: "${longBadPrefix}": prefix part must be no more than 253 bytes; ${PREFIX_REGEX_MSG}`,
    );
  });

  it('rejects NUL instead of truncating at it as Go does', () => {
    assert.equal(parseError('a=b\0,c=d'), 'label selector must not contain a NUL character');
  });
});

describe('parseSelector: size limits', () => {
  it('limits the overall length (default 4096 bytes)', () => {
    assert.equal(parseError('a='.padEnd(4097, 'x')), 'label selector is 4097 bytes long; the limit is 4096 bytes');
    assert.equal(parseError('a=ééé', { maxLength: 7 }), 'label selector is 8 bytes long; the limit is 7 bytes');
    assert.deepEqual(parseSelector('a=bcde', { maxLength: 6 }), [r('a', 'Equals', ['bcde'])]);
    assert.doesNotThrow(() => parseSelector(`k=${'v'.repeat(63)}`.padEnd(4096, ' ')));
  });

  it('limits the number of requirements (default 64)', () => {
    const keys = (n: number): string => Array.from({ length: n }, (_, i) => `k${i}`).join(',');
    assert.equal(parseSelector(keys(64)).length, 64);
    assert.equal(parseError(keys(65)), 'label selector has more than 64 requirements');
    assert.equal(parseSelector(keys(3), { maxRequirements: 3 }).length, 3);
    assert.equal(parseError(keys(4), { maxRequirements: 3 }), 'label selector has more than 3 requirements');
  });

  it('limits the values in one set (default 256), counting them as written', () => {
    const set = (n: number): string => `k in (${Array.from({ length: n }, (_, i) => `v${i}`).join(',')})`;
    assert.equal(parseSelector(set(256))[0]?.values.length, 256);
    assert.equal(parseError(set(257)), 'label selector set for key "k" has more than 256 values');
    assert.deepEqual(parseSelector('k in (a,a,a)', { maxValues: 3 }), [r('k', 'In', ['a'])]);
    assert.equal(parseError('k in (a,a,a,a)', { maxValues: 3 }), 'label selector set for key "k" has more than 3 values');
    assert.equal(parseError('k in (a,,,)', { maxValues: 3 }), 'label selector set for key "k" has more than 3 values');
    // Per set, not per selector.
    assert.equal(parseSelector('a in (x,y),b in (x,y)', { maxValues: 2 }).length, 2);
  });
});

describe('parseSelector: properties', () => {
  const alnum = fc.constantFrom(...'abcXYZ019'.split(''));
  const inner = fc.constantFrom(...'abZ9-_.'.split(''));
  const labelName = fc
    .tuple(alnum, fc.array(inner, { maxLength: 6 }), alnum)
    .map(([a, mid, b]) => a + mid.join('') + b)
    .filter((s) => !/[-_.]$/.test(s));
  const prefix = fc.constantFrom('', 'example.com/', 'app.kubernetes.io/', 'a-b.c/');
  const key = fc.tuple(prefix, fc.oneof(labelName, fc.constantFrom('in', 'notin'))).map(([p, n]) => p + n);
  const value = fc.oneof(fc.constant(''), labelName, fc.constantFrom('in', 'notin'));
  // fc.record builds null-prototype objects; copy them into plain ones to compare with the parser's output.
  const requirement: fc.Arbitrary<Requirement> = fc.oneof(
    fc.record({ key, operator: fc.constantFrom('Equals' as const, 'NotEquals' as const), values: value.map((v) => [v]) }),
    fc.record({
      key,
      operator: fc.constantFrom('In' as const, 'NotIn' as const),
      values: fc.uniqueArray(value, { minLength: 1, maxLength: 5 }).map((vs) => vs.sort()),
    }),
    fc.record({ key, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const), values: fc.constant([]) }),
    fc.record({
      key,
      operator: fc.constantFrom('GreaterThan' as const, 'LessThan' as const),
      values: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map((n) => [String(n)]),
    }),
  ).map((q) => ({ key: q.key, operator: q.operator, values: [...q.values] }));

  it('selectorToString reads back to the same selector, and is a fixed point', () => {
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 6 }), (reqs) => {
        const sorted = [...reqs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        const text = selectorToString(sorted);
        const parsed = parseSelector(text);
        assert.deepEqual(parsed, sorted);
        assert.equal(selectorToString(parsed), text);
      }),
      FC_PARAMS,
    );
  });

  it('throws nothing but SelectorParseError on arbitrary input', () => {
    const piece = fc.oneof(
      fc.constantFrom('=', '==', '!=', '!', '(', ')', ',', '<', '>', ' ', '\t', 'in', 'notin', 'a', 'b/c', '-', '1', 'é', '"', '\\'),
      fc.string({ unit: 'binary', maxLength: 3 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 20 }), (pieces) => {
        const text = pieces.join('');
        try {
          const sel = parseSelector(text);
          assert.deepEqual(parseSelector(selectorToString(sel)), sel);
        } catch (error) {
          assert.ok(error instanceof SelectorParseError, String(error));
        }
      }),
      { ...FC_PARAMS, numRuns: 2000 },
    );
  });
});

describe('matchesLabels', () => {
  const cases: Array<[string, Record<string, string>, boolean]> = [
    ['', {}, true],
    ['', { a: 'b' }, true],
    ['a=b', { a: 'b' }, true],
    ['a=b', { a: 'c' }, false],
    ['a=b', {}, false],
    ['a=', { a: '' }, true],
    ['a=', {}, false],
    ['a!=b', { a: 'c' }, true],
    ['a!=b', { a: 'b' }, false],
    ['a!=b', {}, true],
    ['a!=', {}, true],
    ['a!=', { a: '' }, false],
    ['a in (x,y)', { a: 'y' }, true],
    ['a in (x,y)', { a: 'z' }, false],
    ['a in (x,y)', {}, false],
    ['a in ()', { a: '' }, true],
    ['a in ()', {}, false],
    ['a notin (x,y)', { a: 'z' }, true],
    ['a notin (x,y)', { a: 'x' }, false],
    ['a notin (x,y)', {}, true],
    ['a', { a: '' }, true],
    ['a', { b: 'a' }, false],
    ['!a', {}, true],
    ['!a', { a: '' }, false],
    ['a>5', { a: '6' }, true],
    ['a>5', { a: '5' }, false],
    ['a>5', {}, false],
    ['a>5', { a: 'six' }, false],
    ['a>5', { a: '+6' }, true],
    ['a>5', { a: '0010' }, true],
    ['a>5', { a: ' 6' }, false],
    ['a>5', { a: '6.0' }, false],
    ['a>5', { a: '' }, false],
    ['a<5', { a: '-100' }, true],
    ['a<5', { a: '5' }, false],
    ['a<5', {}, false],
    ['a>9223372036854775806', { a: '9223372036854775807' }, true],
    ['a>9223372036854775806', { a: '9223372036854775808' }, false],
    ['a<0', { a: '-9223372036854775808' }, true],
    ['a<0', { a: '-9223372036854775809' }, false],
    ['a=b,c', { a: 'b', c: 'd' }, true],
    ['a=b,c', { a: 'b' }, false],
    ['a=x,a=y', { a: 'x' }, false],
    ['a=x,a in (x,y),a', { a: 'x' }, true],
    ['app.kubernetes.io/name=web', { 'app.kubernetes.io/name': 'web' }, true],
  ];
  for (const [selector, labels, expected] of cases) {
    it(`${JSON.stringify(selector)} on ${JSON.stringify(labels)} → ${expected}`, () => {
      assert.equal(matchesLabels(parseSelector(selector), labels), expected);
      assert.equal(matchesLabels(parseSelector(selector), new Map(Object.entries(labels))), expected, 'as a Map');
    });
  }

  it('looks only at own properties of a record', () => {
    assert.equal(matchesLabels(parseSelector('constructor'), {}), false);
    assert.equal(matchesLabels(parseSelector('!toString'), {}), true);
    assert.equal(matchesLabels(parseSelector('hasOwnProperty notin (x)'), {}), true);
    assert.equal(matchesLabels(parseSelector('constructor'), { constructor: 'x' }), true);
  });

  it('agrees with a literal reading of the operator definitions', () => {
    const val = fc.constantFrom('', 'x', 'y', '1', '7', '-3');
    const keyArb = fc.constantFrom('a', 'b');
    const labels = fc.dictionary(keyArb, val, { maxKeys: 2 });
    const req: fc.Arbitrary<Requirement> = fc.record({
      key: keyArb,
      operator: fc.constantFrom('Equals', 'NotEquals', 'In', 'NotIn', 'Exists', 'DoesNotExist', 'GreaterThan', 'LessThan') as fc.Arbitrary<Requirement['operator']>,
      values: fc.uniqueArray(fc.constantFrom('', 'x', '1', '5'), { minLength: 1, maxLength: 2 }),
    }).map((q) =>
      q.operator === 'Exists' || q.operator === 'DoesNotExist'
        ? { ...q, values: [] }
        : q.operator === 'In' || q.operator === 'NotIn'
          ? q
          : { ...q, values: [q.values[0]!] },
    );
    fc.assert(
      fc.property(fc.array(req, { maxLength: 3 }), labels, (sel, ls) => {
        const holds = (q: Requirement): boolean => {
          const present = Object.hasOwn(ls, q.key);
          const v = ls[q.key];
          if (q.operator === 'Exists') return present;
          if (q.operator === 'DoesNotExist') return !present;
          if (q.operator === 'Equals' || q.operator === 'In') return present && q.values.includes(v!);
          if (q.operator === 'NotEquals' || q.operator === 'NotIn') return !present || !q.values.includes(v!);
          if (!present || !/^-?\d+$/.test(v!) || !/^\d+$/.test(q.values[0]!)) return false;
          return q.operator === 'GreaterThan' ? Number(v) > Number(q.values[0]) : Number(v) < Number(q.values[0]);
        };
        assert.equal(matchesLabels(sel, ls), sel.every(holds));
      }),
      FC_PARAMS,
    );
  });
});

describe('toLabelSelectorObject', () => {
  const cases: Array<[string, ReturnType<typeof toLabelSelectorObject>]> = [
    ['', null],
    ['b=2,a=1', { matchLabels: { a: '1', b: '2' } }],
    ['a=', { matchLabels: { a: '' } }],
    ['a in (y,x)', { matchExpressions: [{ key: 'a', operator: 'In', values: ['x', 'y'] }] }],
    ['a notin ()', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: [''] }] }],
    ['a', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }],
    ['!a', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }],
    ['a!=x', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] }],
    [
      'z=1,!y,x!=2,w in (3),v',
      {
        matchLabels: { z: '1' },
        matchExpressions: [
          { key: 'v', operator: 'Exists' },
          { key: 'w', operator: 'In', values: ['3'] },
          { key: 'x', operator: 'NotIn', values: ['2'] },
          { key: 'y', operator: 'DoesNotExist' },
        ],
      },
    ],
    // A repeated Equals key must not overwrite (which would widen the selector).
    ['a=x,a=y', { matchLabels: { a: 'x' }, matchExpressions: [{ key: 'a', operator: 'In', values: ['y'] }] }],
  ];
  for (const [selector, expected] of cases) {
    it(JSON.stringify(selector), () => assert.deepEqual(toLabelSelectorObject(parseSelector(selector)), expected));
  }

  it('writes matchLabels keys in sorted order', () => {
    const obj = toLabelSelectorObject(parseSelector('c=3,a=1,B=0,b=2'));
    assert.deepEqual(Object.keys(obj?.matchLabels ?? {}), ['B', 'a', 'b', 'c']);
    assert.equal(JSON.stringify(obj), '{"matchLabels":{"B":"0","a":"1","b":"2","c":"3"}}');
  });

  it('omits values for Exists and DoesNotExist in JSON', () => {
    assert.equal(JSON.stringify(toLabelSelectorObject(parseSelector('a,!b'))), '{"matchExpressions":[{"key":"a","operator":"Exists"},{"key":"b","operator":"DoesNotExist"}]}');
  });

  it('means the same as the selector it came from', () => {
    // An independent evaluation of metav1.LabelSelector semantics.
    const evaluate = (obj: NonNullable<ReturnType<typeof toLabelSelectorObject>>, ls: Record<string, string>): boolean =>
      Object.entries(obj.matchLabels ?? {}).every(([k, v]) => Object.hasOwn(ls, k) && ls[k] === v) &&
      (obj.matchExpressions ?? []).every((e) => {
        const present = Object.hasOwn(ls, e.key);
        switch (e.operator) {
          case 'In':
            return present && e.values!.includes(ls[e.key]!);
          case 'NotIn':
            return !present || !e.values!.includes(ls[e.key]!);
          case 'Exists':
            return present;
          case 'DoesNotExist':
            return !present;
        }
      });
    const sel = fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom('=', '!=', ' in ', ' notin ', '', '!'), fc.constantFrom('', 'x', 'y')), { minLength: 1, maxLength: 4 }).map((parts) =>
      parts
        .map(([k, op, v]) => {
          if (op === '') return k;
          if (op === '!') return `!${k}`;
          return op === ' in ' || op === ' notin ' ? `${k}${op}(${v})` : `${k}${op}${v}`;
        })
        .join(','),
    );
    const labels = fc.dictionary(fc.constantFrom('a', 'b'), fc.constantFrom('', 'x', 'y'), { maxKeys: 2 });
    fc.assert(
      fc.property(sel, labels, (text, ls) => {
        const parsed: Selector = parseSelector(text);
        assert.equal(evaluate(toLabelSelectorObject(parsed)!, ls), matchesLabels(parsed, ls), text);
      }),
      FC_PARAMS,
    );
  });

  it('refuses gt and lt, which matchExpressions cannot hold', () => {
    assert.throws(() => toLabelSelectorObject(parseSelector('a>1')), /"a>1".*operator gt/);
    assert.throws(() => toLabelSelectorObject(parseSelector('b=x,a<1')), /"a<1".*operator lt/);
  });
});
