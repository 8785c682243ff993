/**
 * Escaping for text that is spliced into PromQL. Every value that reaches a query from a request, the
 * Kubernetes API or a config file goes through here, so these functions are the injection boundary.
 */

/** A value that no PromQL string literal can denote (it is not well-formed Unicode). */
export class InvalidLabelValueError extends Error {
  override name = 'InvalidLabelValueError';
}

/** A label name that cannot be written bare in a PromQL matcher. */
export class InvalidLabelNameError extends Error {
  override name = 'InvalidLabelNameError';
  readonly labelName: string;

  constructor(labelName: string, message: string) {
    super(message);
    this.labelName = labelName;
  }
}

// Characters that promqlString must rewrite; anything else is copied through as-is.
const NEEDS_STRING_ESCAPE = /[\\"\u0000-\u001f\u007f\ufffd]/;

function hex2(code: number): string {
  return code.toString(16).padStart(2, '0');
}

/**
 * A double-quoted PromQL string literal that denotes exactly `value`.
 * Not JSON.stringify: that leaves U+FFFD raw (Prometheus' lexer then reports "invalid UTF-8 rune") and writes
 * lone surrogates as `\udXXX`, which Prometheus rejects.
 */
export function promqlString(value: string): string {
  if (!value.isWellFormed()) {
    let index = 0;
    for (const ch of value) {
      const code = ch.codePointAt(0)!;
      if (code >= 0xd800 && code <= 0xdfff) break;
      index += ch.length;
    }
    throw new InvalidLabelValueError(
      `label value is not well-formed Unicode (lone surrogate at UTF-16 index ${index}); no PromQL string can match it`,
    );
  }
  if (!NEEDS_STRING_ESCAPE.test(value)) return `"${value}"`;
  let out = '"';
  for (const ch of value) {
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '"':
        out += '\\"';
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      case '\ufffd':
        // A raw U+FFFD is mistaken for a decode error by the PromQL lexer, even though it is valid UTF-8.
        out += '\\uFFFD';
        break;
      default: {
        const code = ch.codePointAt(0)!;
        // \xHH is a raw byte, which is the same as the code point only below 0x80; that holds for C0 and DEL.
        out += code < 0x20 || code === 0x7f ? `\\x${hex2(code)}` : ch;
      }
    }
  }
  return out + '"';
}

const RE2_META = /[\\.+*?()|[\]{}^$]/g;

/**
 * An RE2 pattern that matches exactly `value` (Go's QuoteMeta set). Prometheus anchors regex matchers itself,
 * so the result can be joined with `|` and must not be wrapped in `^…$`. The result is a pattern, not a
 * PromQL literal: pass it through promqlString afterwards.
 */
export function regexQuote(value: string): string {
  return value.replace(RE2_META, '\\$&');
}

const LEGACY_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** True for names that every Prometheus version accepts bare inside `{…}`. */
export function isLegacyLabelName(name: string): boolean {
  return LEGACY_LABEL_NAME.test(name);
}

function describeInvalidName(name: string): string {
  if (name === '') return 'it is empty';
  if (/^[0-9]/.test(name)) return 'it starts with a digit';
  const bad = [...new Set([...name].filter((ch) => !/[a-zA-Z0-9_]/.test(ch)))];
  const shown = bad.slice(0, 5).map((ch) => JSON.stringify(ch));
  return `it contains ${shown.join(', ')}${bad.length > 5 ? ', …' : ''}`;
}

/**
 * Throws unless `name` can be written bare as a PromQL label name. Quoted UTF-8 names (`{"a.b"="x"}`) are
 * deliberately not offered: Prometheus before 2.51 rejects them, and before 3.0 no series carries such a name.
 */
export function assertLabelName(name: string): void {
  if (isLegacyLabelName(name)) return;
  throw new InvalidLabelNameError(
    name,
    `${JSON.stringify(name)} is not a usable Prometheus label name: ${describeInvalidName(name)}, ` +
      'but a label name must match [a-zA-Z_][a-zA-Z0-9_]*',
  );
}
