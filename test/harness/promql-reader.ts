import assert from 'node:assert/strict';
import type { Requirement } from '../../src/rules/selector.ts';

// Test-only reader of `name op "string"` lists, written from the PromQL lexer rules (not from the module), so
// the round-trip properties below check the escaping against an independent implementation.

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface ReadMatcher {
  name: string;
  op: MatchOp;
  value: string;
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };

function isSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdfff;
}

/** Reads a double-quoted PromQL string starting at `start`; the value is decoded as the lexer does, via bytes. */
export function readDoubleQuoted(text: string, start: number): { value: string; end: number } {
  assert.equal(text[start], '"', `string must start with a double quote at ${start}`);
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  let i = start + 1;
  const hex = (count: number): number => {
    const digits = text.slice(i, i + count);
    assert.match(digits, new RegExp(`^[0-9a-fA-F]{${count}}$`), `bad hex escape at ${i}`);
    i += count;
    return parseInt(digits, 16);
  };
  for (;;) {
    assert.ok(i < text.length, 'unterminated string');
    const code = text.codePointAt(i)!;
    const ch = String.fromCodePoint(code);
    if (ch === '"') return { value: new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)), end: i + 1 };
    assert.notEqual(ch, '\n', 'raw LF ends a PromQL string with "unterminated quoted string"');
    assert.notEqual(ch, '\ufffd', 'raw U+FFFD is rejected by the PromQL lexer as "invalid UTF-8 rune"');
    assert.ok(!isSurrogate(code), 'lone surrogate cannot be sent as UTF-8');
    if (ch !== '\\') {
      bytes.push(...encoder.encode(ch));
      i += ch.length;
      continue;
    }
    const escape = text[i + 1] ?? '';
    i += 2;
    const simple = SIMPLE_ESCAPES[escape];
    if (simple !== undefined) bytes.push(simple);
    else if (escape === 'x') bytes.push(hex(2));
    else if (escape === 'u' || escape === 'U') {
      const cp = hex(escape === 'u' ? 4 : 8);
      assert.ok(cp <= 0x10ffff && !isSurrogate(cp), 'escape sequence is an invalid Unicode code point');
      bytes.push(...encoder.encode(String.fromCodePoint(cp)));
    } else if (/[0-7]/.test(escape)) {
      const digits = escape + text.slice(i, i + 2);
      assert.match(digits, /^[0-7]{3}$/, 'octal escapes take exactly 3 digits');
      const byte = parseInt(digits, 8);
      assert.ok(byte <= 255, 'octal escape above 255');
      bytes.push(byte);
      i += 2;
    } else assert.fail(`unknown escape sequence ${JSON.stringify(escape)}`);
  }
}

/** Reads a whole comma-separated matcher list, such as the `.LabelMatchers` a query template receives. */
export function readMatchers(text: string): ReadMatcher[] {
  if (text === '') return [];
  const matchers: ReadMatcher[] = [];
  let i = 0;
  for (;;) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))?.[0];
    assert.ok(name, `expected a label name at ${i} in ${JSON.stringify(text)}`);
    i += name.length;
    const op = (['=~', '!~', '!=', '='] as const).find((candidate) => text.startsWith(candidate, i));
    assert.ok(op, `expected an operator at ${i} in ${JSON.stringify(text)}`);
    i += op.length;
    const { value, end } = readDoubleQuoted(text, i);
    matchers.push({ name, op, value });
    i = end;
    if (i === text.length) return matchers;
    assert.equal(text[i], ',', `expected ',' or the end at ${i} in ${JSON.stringify(text)}`);
    i++;
  }
}

/**
 * Splits an RE2 pattern that must be an alternation of literals into those literals. Anything that is not a
 * literal (an unescaped metacharacter, an escaped letter or digit, a trailing backslash) fails the test.
 */
export function readLiteralAlternation(pattern: string): string[] {
  const alternatives: string[] = [];
  let current = '';
  for (let i = 0; i < pattern.length; ) {
    const ch = String.fromCodePoint(pattern.codePointAt(i)!);
    if (ch === '\\') {
      const next = pattern[i + 1];
      assert.ok(next !== undefined, 'trailing backslash');
      assert.match(next, /^[!-/:-@[-`{-~]$/, `\\${next} is not a literal in RE2`);
      current += next;
      i += 2;
    } else if (ch === '|') {
      alternatives.push(current);
      current = '';
      i += 1;
    } else {
      assert.ok(!'.+*?()[]{}^$'.includes(ch), `unescaped regex metacharacter ${JSON.stringify(ch)} in ${JSON.stringify(pattern)}`);
      current += ch;
      i += ch.length;
    }
  }
  alternatives.push(current);
  return alternatives;
}


/** The matcher a selector requirement must read back as: name, operator and the literal values it denotes. */
export function intendedMatcher(req: Requirement): { name: string; op: MatchOp; values: string[] } {
  switch (req.operator) {
    case 'Equals':
      return { name: req.key, op: '=', values: [req.values[0]!] };
    case 'NotEquals':
      return { name: req.key, op: '!=', values: [req.values[0]!] };
    case 'In':
      return { name: req.key, op: '=~', values: [...new Set(req.values)] };
    case 'NotIn':
      return { name: req.key, op: '!~', values: [...new Set(req.values)] };
    case 'Exists':
      return { name: req.key, op: '!=', values: [''] };
    case 'DoesNotExist':
      return { name: req.key, op: '=', values: [''] };
    default:
      throw new Error(`Prometheus cannot express ${req.operator}`);
  }
}
