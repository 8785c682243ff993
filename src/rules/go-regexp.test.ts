import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGoRegexp, expandGoTemplate, goNumSubexp, goSubexpNames, GoRegexpError, unresolvedReferences } from './go-regexp.ts';

const matches = (pattern: string, text: string): boolean => compileGoRegexp(pattern).test(text);
const rejects = (pattern: string, message: RegExp): void => {
  assert.throws(() => compileGoRegexp(pattern), (err: unknown) => err instanceof GoRegexpError && message.test(err.message), pattern);
};

test('matching is unanchored, like Go MatchString; anchors and \\A \\z anchor', () => {
  assert.ok(matches('_total', 'http_requests_total'));
  assert.ok(matches('container_', 'kube_container_info'));
  assert.ok(!matches('^container_', 'kube_container_info'));
  assert.ok(matches('\\Acontainer_.*\\z', 'container_cpu'));
  assert.ok(!matches('\\Acpu', 'container_cpu'));
});

test('named groups: (?P<name>) and (?<name>), names JS would refuse (duplicates, leading digits) still work', () => {
  const re = compileGoRegexp('^(?P<base>.*)_(?<unit>seconds|bytes)_total$');
  assert.deepEqual(goSubexpNames(re), ['', 'base', 'unit']);
  assert.equal(expandGoTemplate(re, '${base}_in_${unit}', re.exec('io_bytes_total')!), 'io_in_bytes');
  const dup = compileGoRegexp('(?P<x>a)?(?P<x>b)');
  // Go takes the leftmost group of that name that took part in the match.
  assert.equal(expandGoTemplate(dup, '$x', dup.exec('b')!), 'b');
  assert.equal(expandGoTemplate(dup, '$x', dup.exec('ab')!), 'a');
  const digit = compileGoRegexp('(?P<1x>y)');
  assert.equal(expandGoTemplate(digit, '${1x}', digit.exec('y')!), 'y');
});

test('regexp.Expand: $1, ${1}, $name, ${name}, $$, and $1_per_second naming a group "1_per_second"', () => {
  const re = compileGoRegexp('^(.*)_total');
  const m = re.exec('http_requests_total')!;
  const expand = (t: string): string => expandGoTemplate(re, t, m);
  assert.equal(expand('${1}_per_second'), 'http_requests_per_second');
  assert.equal(expand('$1_per_second'), '');
  assert.equal(expand('$1'), 'http_requests');
  assert.equal(expand('$0'), 'http_requests_total');
  assert.equal(expand('$$1'), '$1');
  assert.equal(expand('rate_$1'), 'rate_http_requests');
  assert.equal(expand('$2'), '');
  assert.equal(expand('$01'), '', 'a leading zero makes it a name');
  assert.equal(expand('${1'), '${1', 'no closing brace: the $ is text');
  assert.equal(expand('a$-b$'), 'a$-b$');
  assert.deepEqual(unresolvedReferences(re, '$1_per_second'), ['$1_per_second']);
  assert.deepEqual(unresolvedReferences(re, '${1}_per_second'), []);
  assert.deepEqual(unresolvedReferences(re, '$2'), ['$2']);
});

test('inline flags: a leading (?i) becomes the i flag, a later one covers the rest of its group, across |', () => {
  assert.equal(compileGoRegexp('(?i)^http_').flags, 'iu');
  assert.ok(matches('(?i)^http_', 'HTTP_requests'));
  assert.ok(matches('^a(?i)b|c$', 'C'), 'the flag also covers the next alternative');
  assert.ok(!matches('^a(?i)b$', 'AB'));
  assert.ok(matches('^a(?i)b$', 'aB'));
  assert.ok(matches('^(?i:a)b$', 'Ab'));
  assert.ok(!matches('^(?i:a)b$', 'AB'));
  assert.ok(matches('(?i)^a(?-i)b$', 'Ab'));
  assert.ok(!matches('(?i)^a(?-i)b$', 'AB'));
  // s, m and U are translated rather than passed on.
  assert.ok(!matches('^a.b$', 'a\nb'));
  assert.ok(matches('(?s)^a.b$', 'a\nb'));
  assert.ok(matches('^a.b$', 'a\rb'), 'Go . matches \\r; only \\n is excluded');
  assert.ok(matches('(?m)^b$', 'a\nb\nc'));
  assert.ok(!matches('^b$', 'a\nb\nc'));
  assert.equal(compileGoRegexp('(?U)^(a+)').exec('aaa')![1], 'a');
  assert.equal(compileGoRegexp('(?U)^(a+?)').exec('aaa')![1], 'aaa');
});

test('RE2 syntax JS spells differently: \\Q..\\E, POSIX classes, \\s, literal braces, octal and hex', () => {
  assert.ok(matches('^\\Qa.b\\E$', 'a.b'));
  assert.ok(!matches('^\\Qa.b\\E$', 'axb'));
  assert.ok(matches('^[[:alpha:]_]+$', 'abc_D'));
  assert.ok(!matches('^[[:^digit:]]+$', 'a1'));
  assert.ok(!matches('\\s', '\v'), 'RE2 \\s has no vertical tab');
  assert.ok(matches('^a{,2}$', 'a{,2}'), 'not a repeat: literal');
  assert.ok(matches('^a{2}$', 'aa'));
  assert.ok(matches('^[]a]+$', ']a]'), 'a leading ] is literal');
  assert.ok(matches('^\\x41\\x{42}\\103$', 'ABC'));
  assert.ok(matches('^\\pL+\\p{Greek}$', 'abα'));
  assert.ok(matches('^a\\-b\\_c$', 'a-b_c'), 'escaped punctuation is literal');
});

test('what Go refuses is refused, with its reason', () => {
  rejects('(?=x)', /unsupported Perl syntax: `\(\?=`/);
  rejects('(?<!x)', /unsupported Perl syntax/);
  rejects('(a)\\1', /invalid escape sequence: `\\1`/);
  rejects('\\Z', /invalid escape sequence: `\\Z`/);
  rejects('(abc', /missing closing \)/);
  rejects('abc)', /unexpected \)/);
  rejects('[abc', /missing closing \]/);
  rejects('[z-a]', /invalid character class range: `z-a`/);
  rejects('[[:foo:]]', /invalid character class range: `\[:foo:\]`/);
  rejects('a{1001}', /invalid repeat count/);
  rejects('(?i-)a', /invalid or unsupported Perl syntax/);
  rejects('(?P<a-b>x)', /invalid named capture/);
  rejects('*a', /Nothing to repeat/);
  rejects('a\\', /trailing backslash/);
});

test('capture groups are counted as Go counts them', () => {
  assert.equal(goNumSubexp(compileGoRegexp('.*')), 0);
  assert.equal(goNumSubexp(compileGoRegexp('^(.*)_(?:total|count)$')), 1);
  assert.equal(goNumSubexp(compileGoRegexp('(?i)^(a)(?P<b>b)[(]')), 2);
  assert.equal(goNumSubexp(/^(x)(y)$/), 2, 'a RegExp built elsewhere');
});
