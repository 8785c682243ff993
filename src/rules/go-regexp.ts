/**
 * Go regular expressions (RE2 syntax) as prometheus-adapter rule files write them, turned into JS
 * RegExps that accept the same strings and capture the same groups. A pattern is translated token by
 * token rather than passed through, because the two dialects disagree on things rule files use:
 * `(?P<name>…)`, inline flags such as `(?i)`, `\A`/`\z`, `\Q…\E`, POSIX classes, what `\s` and `.`
 * match, and whether a lone `{` is a literal. Go rejects what JS would accept (lookarounds,
 * backreferences), so those fail here too, at load time.
 */

export class GoRegexpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GoRegexpError';
  }
}

interface Flags {
  readonly i: boolean;
  readonly m: boolean;
  readonly s: boolean;
  readonly U: boolean;
}

/**
 * One open group. `m`, `s` and `U` are implemented by how tokens are translated, so only `i` needs
 * the JS engine's help: through the global flag or `(?i:…)` / `(?-i:…)` modifier groups.
 */
interface Frame {
  flags: Flags;
  /** Whether JS matches case-insensitively where this group (or alternative) begins. */
  startJsI: boolean;
  jsI: boolean;
  /** Modifier groups opened by a flag change inside this alternative; closed at `|` and `)`. */
  wraps: number;
}

type Range = readonly [number, number];

const MAX_RUNE = 0x10ffff;
const MAX_REPEAT = 1000;

// Go's POSIX classes are ASCII-only.
const POSIX: Readonly<Record<string, readonly Range[]>> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

// RE2's \s is exactly these five; JS's also takes \v and Unicode spaces, hence the explicit ranges.
const PERL: Readonly<Record<string, readonly Range[]>> = {
  d: [[0x30, 0x39]],
  s: [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]],
  w: POSIX.word!,
};

const UNICODE_CATEGORIES = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(' '),
);

const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');

function complement(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= MAX_RUNE) out.push([next, MAX_RUNE]);
  return out;
}

function classChar(cp: number): string {
  return /[A-Za-z0-9]/.test(String.fromCodePoint(cp)) ? String.fromCodePoint(cp) : `\\u{${cp.toString(16).toUpperCase()}}`;
}

function rangesJs(ranges: readonly Range[]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`)).join('');
}

function literalJs(cp: number): string {
  const ch = String.fromCodePoint(cp);
  if (JS_SYNTAX.has(ch)) return `\\${ch}`;
  // Control characters stay readable in logs of the translated source.
  return cp < 0x20 || cp === 0x7f ? `\\u{${cp.toString(16).toUpperCase()}}` : ch;
}

type Escape =
  | { readonly kind: 'char'; readonly cp: number; readonly end: number }
  /** A set of characters: `outside` is its JS form as an atom, `inside` as part of a bracket class. */
  | { readonly kind: 'set'; readonly outside: string; readonly inside: string; readonly end: number }
  | { readonly kind: 'assert'; readonly js: string; readonly end: number }
  | { readonly kind: 'quote'; readonly text: string; readonly end: number };

interface Translation {
  readonly source: string;
  readonly flags: string;
  /** Go's SubexpNames: index 0 is the whole match, '' marks an unnamed group. */
  readonly names: readonly string[];
}

function translate(pattern: string): Translation {
  const p = pattern;
  let pos = 0;
  let out = '';
  const names: string[] = [''];
  const top: Frame = { flags: { i: false, m: false, s: false, U: false }, startJsI: false, jsI: false, wraps: 0 };
  const stack: Frame[] = [top];
  const fail = (message: string): never => {
    throw new GoRegexpError(message);
  };
  const current = (): Frame => stack[stack.length - 1]!;
  const cpAt = (at: number): number => p.codePointAt(at)!;
  const width = (cp: number): number => (cp > 0xffff ? 2 : 1);
  const iWrap = (on: boolean): string => (on ? '(?i:' : '(?-i:');

  const readUnicodeClass = (at: number): Escape => {
    let negate = p[at + 1] === 'P';
    let name: string;
    let end: number;
    if (at + 2 >= p.length) return fail(`invalid character class range: \`${p.slice(at)}\``);
    if (p[at + 2] === '{') {
      const close = p.indexOf('}', at + 3);
      if (close === -1) return fail(`invalid character class range: \`${p.slice(at)}\``);
      name = p.slice(at + 3, close);
      end = close + 1;
    } else {
      const cp = cpAt(at + 2);
      name = String.fromCodePoint(cp);
      end = at + 2 + width(cp);
    }
    const written = p.slice(at, end);
    if (name.startsWith('^')) {
      negate = !negate;
      name = name.slice(1);
    }
    let property: string | null = null;
    if (name === 'Any' || UNICODE_CATEGORIES.has(name)) property = name;
    else if (/^[A-Za-z_]+$/.test(name)) {
      try {
        new RegExp(`\\p{Script=${name}}`, 'u');
        property = `Script=${name}`;
      } catch {
        property = null;
      }
    }
    if (property === null) return fail(`invalid character class range: \`${written}\``);
    const js = `\\${negate ? 'P' : 'p'}{${property}}`;
    return { kind: 'set', outside: js, inside: js, end };
  };

  const readEscape = (at: number, inClass: boolean): Escape => {
    if (at + 1 >= p.length) return fail('trailing backslash at end of expression');
    const cp = cpAt(at + 1);
    const c = String.fromCodePoint(cp);
    const end = at + 1 + width(cp);
    if (!inClass) {
      // JS never gets the m flag (multi-line mode is translated), so ^ and $ are the text's ends.
      if (c === 'A') return { kind: 'assert', js: '^', end };
      if (c === 'z') return { kind: 'assert', js: '$', end };
      if (c === 'b' || c === 'B') return { kind: 'assert', js: `\\${c}`, end };
      if (c === 'Q') {
        const stop = p.indexOf('\\E', end);
        return stop === -1 ? { kind: 'quote', text: p.slice(end), end: p.length } : { kind: 'quote', text: p.slice(end, stop), end: stop + 2 };
      }
    }
    if (c === 'p' || c === 'P') return readUnicodeClass(at);
    const perl = PERL[c.toLowerCase()];
    if (perl && 'dDsSwW'.includes(c)) {
      const negated = c !== c.toLowerCase();
      const ranges = negated ? complement(perl) : perl;
      let outside: string;
      if (c === 's' || c === 'S') outside = `[${negated ? '^' : ''}${rangesJs(perl)}]`;
      else outside = `\\${c}`;
      return { kind: 'set', outside, inside: rangesJs(ranges), end };
    }
    if (c >= '1' && c <= '7' && !(p[end] !== undefined && p[end]! >= '0' && p[end]! <= '7')) {
      return fail(`invalid escape sequence: \`\\${c}\` (backreferences are not supported by Go regular expressions)`);
    }
    if (c >= '0' && c <= '7') {
      let value = Number(c);
      let next = end;
      for (let n = 1; n < 3 && p[next] !== undefined && p[next]! >= '0' && p[next]! <= '7'; n++) {
        value = value * 8 + Number(p[next]);
        next++;
      }
      return { kind: 'char', cp: value, end: next };
    }
    if (c === 'x') {
      if (p[end] === '{') {
        const close = p.indexOf('}', end + 1);
        const hex = close === -1 ? '' : p.slice(end + 1, close);
        if (!/^[0-9A-Fa-f]+$/.test(hex) || Number.parseInt(hex, 16) > MAX_RUNE) {
          return fail(`invalid escape sequence: \`${p.slice(at, close === -1 ? p.length : close + 1)}\``);
        }
        return { kind: 'char', cp: Number.parseInt(hex, 16), end: close + 1 };
      }
      const hex = p.slice(end, end + 2);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return fail(`invalid escape sequence: \`${p.slice(at, end + 2)}\``);
      return { kind: 'char', cp: Number.parseInt(hex, 16), end: end + 2 };
    }
    const control: Record<string, number> = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (control[c] !== undefined) return { kind: 'char', cp: control[c]!, end };
    if (cp < 0x80 && !/[A-Za-z0-9]/.test(c)) return { kind: 'char', cp, end };
    return fail(`invalid escape sequence: \`\\${c}\``);
  };

  const readClass = (): string => {
    const start = pos;
    pos++;
    let negated = false;
    if (p[pos] === '^') {
      negated = true;
      pos++;
    }
    const items: string[] = [];
    let first = true;
    const readChar = (): number => {
      if (pos >= p.length) return fail(`missing closing ]: \`${p.slice(start)}\``);
      if (p[pos] === '\\') {
        const e = readEscape(pos, true);
        if (e.kind !== 'char') return fail(`invalid character class range: \`${p.slice(pos, e.end)}\``);
        pos = e.end;
        return e.cp;
      }
      const cp = cpAt(pos);
      pos += width(cp);
      return cp;
    };
    // A `]` right after `[` or `[^` is a literal, as in POSIX.
    while (first || p[pos] !== ']') {
      if (pos >= p.length) return fail(`missing closing ]: \`${p.slice(start)}\``);
      first = false;
      if (p.startsWith('[:', pos)) {
        const close = p.indexOf(':]', pos + 2);
        if (close !== -1) {
          let name = p.slice(pos + 2, close);
          const negate = name.startsWith('^');
          if (negate) name = name.slice(1);
          const ranges = POSIX[name];
          if (!ranges) return fail(`invalid character class range: \`${p.slice(pos, close + 2)}\``);
          items.push(rangesJs(negate ? complement(ranges) : ranges));
          pos = close + 2;
          continue;
        }
      }
      if (p[pos] === '\\' && pos + 1 < p.length && 'pPdDsSwW'.includes(p[pos + 1]!)) {
        const e = readEscape(pos, true);
        if (e.kind === 'set') {
          items.push(e.inside);
          pos = e.end;
          continue;
        }
      }
      const rangeStart = pos;
      const lo = readChar();
      let hi = lo;
      if (p[pos] === '-' && pos + 1 < p.length && p[pos + 1] !== ']') {
        pos++;
        hi = readChar();
        if (hi < lo) return fail(`invalid character class range: \`${p.slice(rangeStart, pos)}\``);
      }
      items.push(lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`);
    }
    pos++;
    return `[${negated ? '^' : ''}${items.join('')}]`;
  };

  /** `(?flags)` or `(?flags:`; returns the new flags and whether a group opens. */
  const readFlags = (at: number, base: Flags): { flags: Flags; opens: boolean; end: number } => {
    const set = { ...base };
    let sign = 1;
    let sawFlag = false;
    for (let k = at + 2; k < p.length; k++) {
      const c = p[k]!;
      if (c === 'i' || c === 'm' || c === 's' || c === 'U') {
        set[c] = sign > 0;
        sawFlag = true;
      } else if (c === '-' && sign > 0) {
        sign = -1;
        sawFlag = false;
      } else if ((c === ':' || c === ')') && (sign > 0 || sawFlag)) {
        return { flags: set, opens: c === ':', end: k + 1 };
      } else {
        return fail(`invalid or unsupported Perl syntax: \`${p.slice(at, k + 1)}\``);
      }
    }
    return fail(`missing closing ): \`${p.slice(at)}\``);
  };

  const openGroup = (jsOpen: string, flags: Flags, jsI: boolean): void => {
    out += jsOpen;
    stack.push({ flags, startJsI: jsI, jsI, wraps: 0 });
  };

  const quantifier = (text: string, end: number): void => {
    const lazy = p[end] === '?';
    out += text + (lazy !== current().flags.U ? '?' : '');
    pos = lazy ? end + 1 : end;
  };

  while (pos < p.length) {
    const cp = cpAt(pos);
    const c = String.fromCodePoint(cp);
    const frame = current();
    switch (c) {
      case '(': {
        if (p[pos + 1] !== '?') {
          names.push('');
          openGroup('(', frame.flags, frame.jsI);
          pos++;
          break;
        }
        const named = /^\(\?P?<(?![=!])/.exec(p.slice(pos));
        if (named) {
          const close = p.indexOf('>', pos);
          const name = close === -1 ? '' : p.slice(pos + named[0].length, close);
          if (close === -1 || !/^[A-Za-z0-9_]+$/.test(name)) {
            return fail(`invalid named capture: \`${p.slice(pos, close === -1 ? p.length : close + 1)}\``);
          }
          // Go allows a name twice (and names starting with a digit); JS allows neither, so groups
          // are unnamed in JS and their Go names are kept on the side for Expand.
          names.push(name);
          openGroup('(', frame.flags, frame.jsI);
          pos = close + 1;
          break;
        }
        if (/^\(\?(<?[=!]|P[=>])/.test(p.slice(pos))) {
          const op = /^\(\?(<?[=!]|P[=>])/.exec(p.slice(pos))![0];
          return fail(`invalid or unsupported Perl syntax: \`${op}\` (Go regular expressions have no lookarounds or backreferences)`);
        }
        const { flags, opens, end } = readFlags(pos, frame.flags);
        pos = end;
        if (opens) {
          if (flags.i !== frame.jsI) openGroup(iWrap(flags.i), flags, flags.i);
          else openGroup('(?:', flags, frame.jsI);
        } else {
          frame.flags = flags;
          if (flags.i !== frame.jsI) {
            if (out === '' && stack.length === 1) {
              // A leading flag group becomes the RegExp's own flag.
              frame.startJsI = flags.i;
              frame.jsI = flags.i;
            } else {
              out += iWrap(flags.i);
              frame.wraps++;
              frame.jsI = flags.i;
            }
          }
        }
        break;
      }
      case ')':
        if (stack.length === 1) return fail(`unexpected ): \`${p}\``);
        out += ')'.repeat(frame.wraps) + ')';
        stack.pop();
        pos++;
        break;
      case '|':
        out += ')'.repeat(frame.wraps) + '|';
        frame.wraps = 0;
        frame.jsI = frame.startJsI;
        // Go's inline flags last to the end of the group, across alternatives.
        if (frame.flags.i !== frame.jsI) {
          out += iWrap(frame.flags.i);
          frame.wraps = 1;
          frame.jsI = frame.flags.i;
        }
        pos++;
        break;
      case '.':
        out += frame.flags.s ? '[^]' : '[^\\n]';
        pos++;
        break;
      case '^':
        out += frame.flags.m ? '(?<![^\\n])' : '^';
        pos++;
        break;
      case '$':
        out += frame.flags.m ? '(?![^\\n])' : '$';
        pos++;
        break;
      case '*':
      case '+':
      case '?':
        quantifier(c, pos + 1);
        break;
      case '{': {
        // Go reads `{` as a literal unless it starts a well-formed repeat (no leading zeros).
        const repeat = /^\{(0|[1-9][0-9]*)(,(0|[1-9][0-9]*)?)?\}/.exec(p.slice(pos));
        if (!repeat) {
          out += '\\{';
          pos++;
          break;
        }
        const min = Number(repeat[1]);
        const max = repeat[2] === undefined ? min : repeat[3] === undefined ? -1 : Number(repeat[3]);
        if (min > MAX_REPEAT || max > MAX_REPEAT || (max !== -1 && max < min)) return fail(`invalid repeat count: \`${repeat[0]}\``);
        quantifier(repeat[0], pos + repeat[0].length);
        break;
      }
      case '[':
        out += readClass();
        break;
      case '\\': {
        const e = readEscape(pos, false);
        if (e.kind === 'char') out += literalJs(e.cp);
        else if (e.kind === 'set') out += e.outside;
        else if (e.kind === 'assert') out += e.js;
        else for (const ch of e.text) out += literalJs(ch.codePointAt(0)!);
        pos = e.end;
        break;
      }
      default:
        out += literalJs(cp);
        pos += width(cp);
    }
  }
  if (stack.length > 1) return fail(`missing closing ): \`${p}\``);
  out += ')'.repeat(top.wraps);
  return { source: out, flags: top.startJsI ? 'iu' : 'u', names };
}

const subexpNames = new WeakMap<RegExp, readonly string[]>();

/**
 * Compiles a Go regular expression. Matching is unanchored, like Go's MatchString and
 * FindStringSubmatch: anchor with `^…$` in the pattern where that is meant.
 */
export function compileGoRegexp(pattern: string): RegExp {
  const { source, flags, names } = translate(pattern);
  let re: RegExp;
  try {
    re = new RegExp(source, flags);
  } catch (err) {
    const message = (err as Error).message;
    throw new GoRegexpError(message.slice(message.lastIndexOf(': ') + 2) || message);
  }
  subexpNames.set(re, names);
  return re;
}

/**
 * Go's SubexpNames for a pattern compiled here. A RegExp built some other way (tests) reports its
 * groups as unnamed; expandGoTemplate then falls back to its JS group names.
 */
export function goSubexpNames(re: RegExp): readonly string[] {
  const known = subexpNames.get(re);
  if (known) return known;
  // `|` + pattern matches the empty string through its first branch, which reveals the group count.
  const probe = new RegExp(`|${re.source}`, re.flags.replace(/[gy]/g, '')).exec('')!;
  return new Array<string>(probe.length).fill('');
}

/** Number of capture groups (Go's NumSubexp). */
export function goNumSubexp(re: RegExp): number {
  return goSubexpNames(re).length - 1;
}

interface Reference {
  readonly text: string;
  readonly name: string;
  /** -1 when the reference is by name. */
  readonly num: number;
}

/** Splits a Go Expand template into literal text and `$` references, exactly as regexp.Expand reads it. */
function parseTemplate(template: string): (string | Reference)[] {
  const parts: (string | Reference)[] = [];
  let rest = template;
  let literal = '';
  for (;;) {
    const dollar = rest.indexOf('$');
    if (dollar === -1) break;
    literal += rest.slice(0, dollar);
    rest = rest.slice(dollar + 1);
    if (rest.startsWith('$')) {
      literal += '$';
      rest = rest.slice(1);
      continue;
    }
    const ref = /^(\{)?([\p{L}\p{Nd}_]+)(\})?/u.exec(rest);
    // `$` not followed by a name (or `${name` without `}`) is kept as text.
    if (!ref || (ref[1] !== undefined && ref[3] === undefined)) {
      literal += '$';
      continue;
    }
    const name = ref[2]!;
    // Without braces the name is every letter, digit and underscore that follows: `$1_x` names `1_x`.
    const consumed = ref[1] === undefined ? name.length : name.length + 2;
    let num = -1;
    if (/^[0-9]+$/.test(name) && !(name.length > 1 && name.startsWith('0'))) {
      num = 0;
      for (const d of name) {
        if (num >= 1e8) {
          num = -1;
          break;
        }
        num = num * 10 + Number(d);
      }
    }
    if (literal) parts.push(literal);
    literal = '';
    parts.push({ text: `$${rest.slice(0, consumed)}`, name, num });
    rest = rest.slice(consumed);
  }
  literal += rest;
  if (literal) parts.push(literal);
  return parts;
}

/**
 * Go's `regexp.Expand`: `$1`, `${1}`, `$name`, `${name}` and `$$`. A reference to a group that does
 * not exist or did not take part in the match expands to nothing.
 */
export function expandGoTemplate(re: RegExp, template: string, match: RegExpExecArray): string {
  const names = goSubexpNames(re);
  let out = '';
  for (const part of parseTemplate(template)) {
    if (typeof part === 'string') out += part;
    else if (part.num >= 0) out += match[part.num] ?? '';
    else {
      if (!subexpNames.has(re)) {
        out += match.groups?.[part.name] ?? '';
        continue;
      }
      // The leftmost group of that name that took part in the match, as Go picks it.
      for (let k = 1; k < names.length; k++) {
        if (names[k] === part.name && match[k] !== undefined) {
          out += match[k];
          break;
        }
      }
    }
  }
  return out;
}

/** References in an Expand template that can never expand to anything with this pattern, e.g. `$1_per_second`. */
export function unresolvedReferences(re: RegExp, template: string): string[] {
  const names = goSubexpNames(re);
  return parseTemplate(template)
    .filter((part): part is Reference => typeof part !== 'string')
    .filter((ref) => (ref.num >= 0 ? ref.num >= names.length : subexpNames.has(re) && !names.includes(ref.name)))
    .map((ref) => ref.text);
}
