/**
 * Kubernetes label-selector strings (`labelSelector`, `metricLabelSelector`), parsed with the semantics and
 * error texts of apimachinery's `labels.Parse` (1.35), so clients see the messages kube-apiserver would give.
 */

export type Operator =
  | 'Equals'
  | 'NotEquals'
  | 'In'
  | 'NotIn'
  | 'Exists'
  | 'DoesNotExist'
  | 'GreaterThan'
  | 'LessThan';

export interface Requirement {
  key: string;
  operator: Operator;
  /** One value for Equals/NotEquals/GreaterThan/LessThan, none for Exists/DoesNotExist, a sorted set for In/NotIn. */
  values: string[];
}

/** Requirements ANDed together, sorted by key (stable). Empty means "everything". */
export type Selector = readonly Requirement[];

export class SelectorParseError extends Error {
  override name = 'SelectorParseError';
}

export interface SelectorParseOptions {
  /** Longest accepted selector, in UTF-8 bytes. */
  maxLength?: number;
  /** Most requirements in one selector. */
  maxRequirements?: number;
  /** Most values in one `in`/`notin` set, counted as written (before duplicates are dropped). */
  maxValues?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Validation texts. These reproduce apimachinery's messages verbatim, including the double space before "or"
// in the example lists, because clients and tests compare them with what kube-apiserver returns.

const LABEL_KEY_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const LABEL_KEY_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT = `(${LABEL_KEY_FMT})?`;
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const NAME_MAX_BYTES = 63;
const PREFIX_MAX_BYTES = 253;
const VALUE_MAX_BYTES = 63;

function regexError(message: string, fmt: string, ...examples: string[]): string {
  if (examples.length === 0) return `${message} (regex used for validation is '${fmt}')`;
  return `${message} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${fmt}')`;
}

function maxLenError(max: number): string {
  return `must be no more than ${max} bytes`;
}

/** Go's len(): limits are in UTF-8 bytes, not UTF-16 units. */
function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isLowerAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a);
}

// Hand-written instead of the regexes above so that long hostile input cannot make matching backtrack.
function isLabelName(s: string): boolean {
  const n = s.length;
  if (n === 0 || !isAlnum(s.charCodeAt(0)) || !isAlnum(s.charCodeAt(n - 1))) return false;
  for (let i = 1; i < n - 1; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnum(c) && c !== 0x2d && c !== 0x5f && c !== 0x2e) return false;
  }
  return true;
}

function isDns1123Subdomain(s: string): boolean {
  for (const part of s.split('.')) {
    const n = part.length;
    if (n === 0 || !isLowerAlnum(part.charCodeAt(0)) || !isLowerAlnum(part.charCodeAt(n - 1))) return false;
    for (let i = 1; i < n - 1; i++) {
      const c = part.charCodeAt(i);
      if (!isLowerAlnum(c) && c !== 0x2d) return false;
    }
  }
  return true;
}

function labelKeyProblems(key: string): string[] {
  const problems: string[] = [];
  let name = key;
  const slash = key.indexOf('/');
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    name = key.slice(slash + 1);
    if (name.includes('/')) {
      return [
        `a valid label key ${regexError(LABEL_KEY_MSG, LABEL_KEY_FMT, 'MyName', 'my.name', '123-abc')}` +
          " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
      ];
    }
    if (prefix === '') problems.push('prefix part must be non-empty');
    else {
      if (utf8Length(prefix) > PREFIX_MAX_BYTES) problems.push(`prefix part ${maxLenError(PREFIX_MAX_BYTES)}`);
      if (!isDns1123Subdomain(prefix)) {
        problems.push(`prefix part ${regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, 'example.com')}`);
      }
    }
  }
  if (name === '') problems.push('name part must be non-empty');
  else if (utf8Length(name) > NAME_MAX_BYTES) problems.push(`name part ${maxLenError(NAME_MAX_BYTES)}`);
  if (!isLabelName(name)) {
    problems.push(`name part ${regexError(LABEL_KEY_MSG, LABEL_KEY_FMT, 'MyName', 'my.name', '123-abc')}`);
  }
  return problems;
}

function labelValueProblems(value: string): string[] {
  const problems: string[] = [];
  if (utf8Length(value) > VALUE_MAX_BYTES) problems.push(maxLenError(VALUE_MAX_BYTES));
  if (value !== '' && !isLabelName(value)) {
    problems.push(regexError(LABEL_VALUE_MSG, LABEL_VALUE_FMT, 'MyValue', 'my_value', '12345'));
  }
  return problems;
}

const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const GO_SHORT_ESCAPES: Record<string, string> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '\\': '\\\\',
  '"': '\\"',
};

/** Go's %q (strconv.Quote), which field errors use to show the rejected value. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const short = GO_SHORT_ESCAPES[ch];
    if (short !== undefined) {
      out += short;
      continue;
    }
    if (GO_PRINTABLE.test(ch)) {
      out += ch;
      continue;
    }
    const code = ch.codePointAt(0)!;
    if (code < 0x80) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return out + '"';
}

/** field.Invalid(...).Error(); the parser passes no field path, so the path prints as "<nil>". */
function invalidField(path: string, value: string, detail: string): string {
  return `${path}: Invalid value: ${goQuote(value)}: ${detail}`;
}

/** utilerrors.NewAggregate(...).Error(): duplicates dropped, several messages bracketed. */
function aggregate(messages: string[]): string {
  const unique = [...new Set(messages)];
  return unique.length === 1 ? unique[0]! : `[${unique.join(', ')}]`;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Go's strconv.ParseInt(s, 10, 64): optional sign, ASCII digits only, in range; null otherwise. */
function parseInt64(s: string): bigint | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? null : n;
}

// Go compares strings bytewise; for UTF-8 that is code point order, which UTF-16 `<` gets wrong above U+FFFF.
function compareGoStrings(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Lexer. It mirrors apimachinery's byte lexer: whitespace is exactly space, \t, \r, \n; the special characters
// are = ! ( ) , < >; operators are matched longest first, and at most two characters long ("==", "!=").

type TokenKind = 'end' | 'ident' | 'in' | 'notin' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | '<' | '>';

interface Token {
  kind: TokenKind;
  text: string;
}

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
}

function isSpecial(ch: string): boolean {
  return ch === '=' || ch === '!' || ch === '(' || ch === ')' || ch === ',' || ch === '<' || ch === '>';
}

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
  for (;;) {
    while (i < n && isSpace(text[i]!)) i++;
    if (i >= n) {
      tokens.push({ kind: 'end', text: '' });
      return tokens;
    }
    const ch = text[i]!;
    if (isSpecial(ch)) {
      const pair = text.slice(i, i + 2);
      if (pair === '==' || pair === '!=') {
        tokens.push({ kind: pair, text: pair });
        i += 2;
      } else {
        tokens.push({ kind: ch as TokenKind, text: ch });
        i += 1;
      }
      continue;
    }
    let j = i + 1;
    while (j < n && !isSpecial(text[j]!) && !isSpace(text[j]!)) j++;
    const word = text.slice(i, j);
    tokens.push({ kind: word === 'in' ? 'in' : word === 'notin' ? 'notin' : 'ident', text: word });
    i = j;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Parser. Same decisions, in the same order, as apimachinery's recursive descent, so that the first error
// reported for a bad selector is the one Kubernetes reports.

/**
 * Where a token is read. `in`/`notin` are keywords only where an operator is expected; in every other position
 * they are plain identifiers, which is why `in in (in)` is legal.
 */
type Context = 'operator' | 'value';

class Parser {
  readonly tokens: Token[];
  readonly maxRequirements: number;
  readonly maxValues: number;
  position = 0;

  constructor(tokens: Token[], maxRequirements: number, maxValues: number) {
    this.tokens = tokens;
    this.maxRequirements = maxRequirements;
    this.maxValues = maxValues;
  }

  peek(context: Context): Token {
    return this.view(this.tokens[this.position]!, context);
  }

  next(context: Context): Token {
    const token = this.tokens[this.position]!;
    // The final 'end' token is never consumed past, so repeated reads at the end keep returning it.
    if (token.kind !== 'end') this.position++;
    return this.view(token, context);
  }

  view(token: Token, context: Context): Token {
    if (context === 'value' && (token.kind === 'in' || token.kind === 'notin')) {
      return { kind: 'ident', text: token.text };
    }
    return token;
  }

  parse(): Requirement[] {
    const requirements: Requirement[] = [];
    for (;;) {
      const first = this.peek('value');
      if (first.kind === 'end') return requirements;
      if (first.kind !== 'ident' && first.kind !== '!') {
        throw new SelectorParseError(`found '${first.text}', expected: !, identifier, or 'end of string'`);
      }
      if (requirements.length >= this.maxRequirements) {
        throw new SelectorParseError(`label selector has more than ${this.maxRequirements} requirements`);
      }
      let requirement: Requirement;
      try {
        requirement = this.parseRequirement();
      } catch (error) {
        if (error instanceof RequirementError) {
          throw new SelectorParseError(`unable to parse requirement: ${error.message}`);
        }
        throw error;
      }
      requirements.push(requirement);
      const after = this.next('value');
      if (after.kind === 'end') return requirements;
      if (after.kind !== ',') {
        throw new SelectorParseError(`found '${after.text}', expected: ',' or 'end of string'`);
      }
      const following = this.peek('value');
      if (following.kind !== 'ident' && following.kind !== '!') {
        throw new SelectorParseError(`found '${following.text}', expected: identifier after ','`);
      }
    }
  }

  parseRequirement(): Requirement {
    let token = this.next('value');
    let negated = false;
    if (token.kind === '!') {
      negated = true;
      token = this.next('value');
    }
    if (token.kind !== 'ident') throw new RequirementError(`found '${token.text}', expected: identifier`);
    const key = token.text;
    const keyProblems = labelKeyProblems(key);
    if (keyProblems.length > 0) throw new RequirementError(invalidField('<nil>', key, keyProblems.join('; ')));
    // `!key` is complete whatever follows; anything after it is then reported as a misplaced token.
    if (negated) return { key, operator: 'DoesNotExist', values: [] };
    const lookahead = this.peek('value').kind;
    if (lookahead === 'end' || lookahead === ',') return { key, operator: 'Exists', values: [] };

    const op = this.next('operator');
    switch (op.kind) {
      case 'in':
      case 'notin':
        return this.checked(key, op.kind === 'in' ? 'In' : 'NotIn', this.parseSet(key));
      case '=':
      case '==':
        return this.checked(key, 'Equals', [this.parseExactValue()]);
      case '!=':
        return this.checked(key, 'NotEquals', [this.parseExactValue()]);
      case '>':
        return this.checked(key, 'GreaterThan', [this.parseExactValue()]);
      case '<':
        return this.checked(key, 'LessThan', [this.parseExactValue()]);
      default:
        throw new RequirementError(`found '${op.text}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }

  parseExactValue(): string {
    const lookahead = this.peek('value').kind;
    // `k=` and `k=,j=x`: the value is the empty string.
    if (lookahead === 'end' || lookahead === ',') return '';
    const token = this.next('value');
    if (token.kind !== 'ident') throw new RequirementError(`found '${token.text}', expected: identifier`);
    return token.text;
  }

  /** `( … )`: comma-separated, possibly empty items; `()`, `(a,)`, `(,a)`, `(a,,b)` and `(a,,)` all add "". */
  parseSet(key: string): string[] {
    const open = this.next('value');
    if (open.kind !== '(') throw new RequirementError(`found '${open.text}' expected: '('`);
    const values: string[] = [];
    const add = (value: string): void => {
      values.push(value);
      if (values.length > this.maxValues) {
        throw new SelectorParseError(`label selector set for key "${key}" has more than ${this.maxValues} values`);
      }
    };
    const first = this.peek('value');
    if (first.kind !== 'ident' && first.kind !== ',' && first.kind !== ')') {
      throw new RequirementError(`found '${first.text}', expected: ',', ')' or identifier`);
    }
    // Each turn reads one item: an identifier, or nothing (before a comma or the closing parenthesis).
    for (;;) {
      const item = this.next('value');
      if (item.kind === 'ident') {
        add(item.text);
        const separator = this.next('value');
        if (separator.kind === ')') return values;
        if (separator.kind !== ',') throw new RequirementError(`found '${separator.text}', expected: ',' or ')'`);
      } else if (item.kind === ',') {
        add('');
      } else if (item.kind === ')') {
        add('');
        return values;
      } else {
        throw new RequirementError(`found '${item.text}', expected: ',', or identifier`);
      }
    }
  }

  /** NewRequirement's value checks: the value set is sorted and deduplicated first, so indexes refer to that. */
  checked(key: string, operator: Operator, rawValues: string[]): Requirement {
    const values = [...new Set(rawValues)].sort(compareGoStrings);
    const problems: string[] = [];
    if (operator === 'GreaterThan' || operator === 'LessThan') {
      values.forEach((value, i) => {
        if (parseInt64(value) === null) {
          problems.push(
            invalidField(`values[${i}]`, value, "for 'Gt', 'Lt' operators, the value must be an integer"),
          );
        }
      });
    }
    values.forEach((value, i) => {
      const valueProblems = labelValueProblems(value);
      if (valueProblems.length > 0) {
        problems.push(invalidField(`values[${i}][${key}]`, value, valueProblems.join('; ')));
      }
    });
    if (problems.length > 0) throw new RequirementError(aggregate(problems));
    return { key, operator, values };
  }
}

/** An error inside one requirement; parse() adds Kubernetes' "unable to parse requirement: " prefix. */
class RequirementError extends Error {}

/**
 * Parses a label-selector string. Empty, blank or missing input is "everything" ([]). The result and its
 * requirements are frozen so that one parsed selector can be shared between requests and caches.
 *
 * Deviation from Kubernetes: Go's lexer treats a NUL byte as the end of the input and silently ignores the
 * rest; here NUL is rejected so that `a=b\0,c=d` cannot mean something other than what was sent.
 */
export function parseSelector(text: string | undefined, options: SelectorParseOptions = {}): Selector {
  const { maxLength = 4096, maxRequirements = 64, maxValues = 256 } = options;
  if (text === undefined || text === '') return Object.freeze([]);
  if (text.length > maxLength || utf8Length(text) > maxLength) {
    throw new SelectorParseError(`label selector is ${utf8Length(text)} bytes long; the limit is ${maxLength} bytes`);
  }
  if (text.includes('\0')) throw new SelectorParseError('label selector must not contain a NUL character');
  const requirements = new Parser(lex(text), maxRequirements, maxValues).parse();
  // Array.prototype.sort is stable, so requirements on the same key keep their written order.
  requirements.sort((a, b) => compareGoStrings(a.key, b.key));
  for (const requirement of requirements) {
    Object.freeze(requirement.values);
    Object.freeze(requirement);
  }
  return Object.freeze(requirements);
}

const OPERATOR_TEXT: Record<Operator, string> = {
  Equals: '=',
  NotEquals: '!=',
  In: ' in ',
  NotIn: ' notin ',
  Exists: '',
  DoesNotExist: '',
  GreaterThan: '>',
  LessThan: '<',
};

/** Canonical text, as Kubernetes' Selector.String() prints it: `a=b,k in (x,y),!z`. parseSelector reads it back. */
export function selectorToString(sel: Selector): string {
  return sel
    .map((r) => {
      switch (r.operator) {
        case 'Exists':
          return r.key;
        case 'DoesNotExist':
          return `!${r.key}`;
        case 'In':
        case 'NotIn':
          return `${r.key}${OPERATOR_TEXT[r.operator]}(${r.values.join(',')})`;
        default:
          return `${r.key}${OPERATOR_TEXT[r.operator]}${r.values[0] ?? ''}`;
      }
    })
    .join(',');
}

function lookup(labels: Record<string, string> | ReadonlyMap<string, string>, key: string): string | undefined {
  if (labels instanceof Map) return (labels as ReadonlyMap<string, string>).get(key);
  const record = labels as Record<string, string>;
  // Own properties only: a selector on `constructor` or `__proto__` must not see Object.prototype.
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function requirementMatches(r: Requirement, labels: Record<string, string> | ReadonlyMap<string, string>): boolean {
  const value = lookup(labels, r.key);
  switch (r.operator) {
    case 'Equals':
    case 'In':
      return value !== undefined && r.values.includes(value);
    case 'NotEquals':
    case 'NotIn':
      return value === undefined || !r.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'GreaterThan':
    case 'LessThan': {
      if (value === undefined || r.values.length !== 1) return false;
      const actual = parseInt64(value);
      const bound = parseInt64(r.values[0]!);
      if (actual === null || bound === null) return false;
      return r.operator === 'GreaterThan' ? actual > bound : actual < bound;
    }
  }
}

/**
 * Kubernetes' Selector.Matches: every requirement must hold. NotEquals and NotIn also hold when the label is
 * absent; GreaterThan and LessThan need the label present with a value that parses as an int64.
 */
export function matchesLabels(sel: Selector, labels: Record<string, string> | ReadonlyMap<string, string>): boolean {
  return sel.every((r) => requirementMatches(r, labels));
}

export type LabelSelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: LabelSelectorOperator;
  values?: string[];
}

/** metav1.LabelSelector as JSON. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/**
 * The metav1.LabelSelector that means the same as `sel`, for the `selector` field of metric values; null for the
 * empty selector.
 *
 * - NotEquals becomes NotIn with one value. The meaning is identical (absent, or present with another value), and
 *   metav1.LabelSelector has no NotEquals; Kubernetes' own ParseToLabelSelector fails on `!=` instead.
 * - A second Equals on a key already in matchLabels becomes In with one value rather than overwriting the first
 *   (Kubernetes' converter overwrites, which silently widens `a=x,a=y`).
 * - GreaterThan/LessThan throw: matchExpressions only allows In, NotIn, Exists and DoesNotExist.
 */
export function toLabelSelectorObject(sel: Selector): LabelSelectorObject | null {
  if (sel.length === 0) return null;
  const labels = new Map<string, string>();
  const expressions: LabelSelectorRequirement[] = [];
  for (const r of sel) {
    switch (r.operator) {
      case 'Equals':
        if (!labels.has(r.key)) labels.set(r.key, r.values[0] ?? '');
        else expressions.push({ key: r.key, operator: 'In', values: [r.values[0] ?? ''] });
        break;
      case 'NotEquals':
        expressions.push({ key: r.key, operator: 'NotIn', values: [r.values[0] ?? ''] });
        break;
      case 'In':
      case 'NotIn':
        expressions.push({ key: r.key, operator: r.operator, values: [...r.values] });
        break;
      case 'Exists':
      case 'DoesNotExist':
        expressions.push({ key: r.key, operator: r.operator });
        break;
      case 'GreaterThan':
      case 'LessThan': {
        const text = `${r.key}${OPERATOR_TEXT[r.operator]}${r.values[0] ?? ''}`;
        const op = r.operator === 'GreaterThan' ? 'gt' : 'lt';
        throw new SelectorParseError(
          `label selector requirement "${text}" cannot be expressed as a metav1.LabelSelector: ` +
            `operator ${op} is not allowed in matchExpressions`,
        );
      }
    }
  }
  const result: LabelSelectorObject = {};
  if (labels.size > 0) {
    const matchLabels: Record<string, string> = {};
    for (const key of [...labels.keys()].sort(compareGoStrings)) {
      // defineProperty, not assignment, so that a key such as "__proto__" becomes a plain data property.
      Object.defineProperty(matchLabels, key, {
        value: labels.get(key),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    result.matchLabels = matchLabels;
  }
  if (expressions.length > 0) result.matchExpressions = expressions;
  return result;
}
