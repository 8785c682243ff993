import { parseSampleValue, type Sample } from './sample.ts';

/**
 * Reads an instant-vector answer in the exact layout Prometheus writes (compact, keys in its order):
 *
 *   {"status":"success","data":{"resultType":"vector","result":[{"metric":{"k":"v",...},"value":[1.5,"2"]},...]}...}
 *
 * straight into Samples. JSON.parse would first build an object, an array and a string per sample, then we would
 * copy them into Samples: on the HPA's uncached path that costs more than the rest of the answer's handling. The
 * result is exactly what JSON.parse and the general mapping give, or `undefined` for anything else (whitespace,
 * other key orders, histograms, malformed text): the caller then takes the general path, which also owns every
 * error message.
 */
export function readVectorAnswer(text: string): { samples: Sample[]; warnings: string[] } | undefined {
  if (!text.startsWith(HEAD)) return undefined;
  const reader = new Reader(text, HEAD.length);
  const samples = reader.samples();
  if (samples === undefined) return undefined;
  const warnings = reader.tail();
  return warnings === undefined ? undefined : { samples, warnings };
}

const HEAD = '{"status":"success","data":{"resultType":"vector","result":[';
const SAMPLE_HEAD = '{"metric":{';
const VALUE_HEAD = ',"value":[';
// What JSON.parse accepts as a number; Number() alone would also take "0x1f", "Infinity" or "".
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

class Reader {
  readonly #text: string;
  #at: number;
  // Every sample of one evaluation carries the same timestamp text; it is checked and converted once.
  #timeText = '';
  #time = 0;
  // Label names repeat in every sample, in the same order: the first sample's strings are reused by the others.
  readonly #names: string[] = [];

  constructor(text: string, at: number) {
    this.#text = text;
    this.#at = at;
  }

  samples(): Sample[] | undefined {
    const text = this.#text;
    const out: Sample[] = [];
    if (text.charCodeAt(this.#at) === CLOSE_BRACKET) {
      this.#at++;
      return out;
    }
    for (;;) {
      if (!text.startsWith(SAMPLE_HEAD, this.#at)) return undefined;
      this.#at += SAMPLE_HEAD.length;
      const labels = this.#labels();
      if (labels === undefined || !text.startsWith(VALUE_HEAD, this.#at)) return undefined;
      this.#at += VALUE_HEAD.length;
      const timestamp = this.#timestamp();
      if (timestamp === undefined || text.charCodeAt(this.#at) !== QUOTE) return undefined;
      this.#at++;
      const value = this.#string();
      if (value === undefined || text.charCodeAt(this.#at) !== CLOSE_BRACKET || text.charCodeAt(this.#at + 1) !== CLOSE_BRACE) return undefined;
      this.#at += 2;
      out.push({ labels, value: parseSampleValue(value), timestamp });
      const next = text.charCodeAt(this.#at++);
      if (next === CLOSE_BRACKET) return out;
      if (next !== COMMA) return undefined;
    }
  }

  /** After the result array: the rest of `data`, then the envelope's other fields, of which only warnings matter. */
  tail(): string[] | undefined {
    const text = this.#text;
    if (text.charCodeAt(this.#at) !== CLOSE_BRACE) return undefined;
    let rest: Record<string, unknown>;
    try {
      // The fields that follow "data", as an object of their own (the first key only makes the text an object).
      rest = JSON.parse(`{"":0${text.slice(this.#at + 1)}`) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    // A second "data" or "status" would override what was read: JSON.parse keeps the last of duplicate keys.
    if (Object.hasOwn(rest, 'data') || Object.hasOwn(rest, 'status')) return undefined;
    const warnings = rest['warnings'];
    return Array.isArray(warnings) ? warnings.filter((w): w is string => typeof w === 'string') : [];
  }

  #labels(): Record<string, string> | undefined {
    const text = this.#text;
    const labels: Record<string, string> = {};
    if (text.charCodeAt(this.#at) === CLOSE_BRACE) {
      this.#at++;
      return labels;
    }
    for (let i = 0; ; i++) {
      if (text.charCodeAt(this.#at) !== QUOTE) return undefined;
      this.#at++;
      const name = this.#name(i);
      // An own "__proto__" property is what JSON.parse makes of it; assignment would replace the prototype instead.
      if (name === undefined || name === '__proto__' || text.charCodeAt(this.#at) !== COLON || text.charCodeAt(this.#at + 1) !== QUOTE) return undefined;
      this.#at += 2;
      const value = this.#string();
      if (value === undefined) return undefined;
      labels[name] = value;
      const next = text.charCodeAt(this.#at++);
      if (next === CLOSE_BRACE) return labels;
      if (next !== COMMA) return undefined;
    }
  }

  /** A label name: the string the earlier samples had at this position when the text is the same. */
  #name(position: number): string | undefined {
    const known = this.#names[position];
    const text = this.#text;
    if (known !== undefined && text.charCodeAt(this.#at + known.length) === QUOTE && text.startsWith(known, this.#at)) {
      // Names are remembered only when read without escapes, so the same characters before a quote are that name.
      this.#at += known.length + 1;
      return known;
    }
    const start = this.#at;
    const name = this.#string();
    if (name !== undefined && this.#at - start - 1 === name.length) this.#names[position] = name;
    return name;
  }

  /** The string whose opening quote was just passed; leaves the position after its closing quote. */
  #string(): string | undefined {
    const text = this.#text;
    const start = this.#at;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.#at = i + 1;
        return text.slice(start, i);
      }
      // Control characters are invalid inside JSON strings; escapes are rare enough to leave to JSON.parse.
      if (c === BACKSLASH || c < 0x20) return this.#escapedString(start);
    }
    return undefined;
  }

  #escapedString(start: number): string | undefined {
    const text = this.#text;
    let i = start;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) break;
      i += c === BACKSLASH ? 2 : 1;
    }
    if (i >= text.length) return undefined;
    let decoded: unknown;
    try {
      decoded = JSON.parse(text.slice(start - 1, i + 1));
    } catch {
      return undefined;
    }
    this.#at = i + 1;
    return decoded as string;
  }

  #timestamp(): number | undefined {
    const text = this.#text;
    const known = this.#timeText;
    if (known !== '' && text.charCodeAt(this.#at + known.length) === COMMA && text.startsWith(known, this.#at)) {
      this.#at += known.length + 1;
      return this.#time;
    }
    const end = text.indexOf(',', this.#at);
    if (end === -1) return undefined;
    const raw = text.slice(this.#at, end);
    if (!JSON_NUMBER.test(raw)) return undefined;
    this.#at = end + 1;
    this.#timeText = raw;
    this.#time = Number(raw);
    return this.#time;
  }
}
