import { StringDecoder } from 'node:string_decoder';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import { SeriesShapes } from './series-shapes.ts';

/** How every successful `/api/v1/series` answer of Prometheus (and Thanos, Mimir) begins, up to data's first element. */
export const COMPACT_SERIES_HEAD = '{"status":"success","data":[';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const NOT_BLANK = /[^ \t\n\r]/;

/**
 * Reads the `data` array of an answer that began with COMPACT_SERIES_HEAD, fed the bytes after that head in chunks of
 * any size. A general JSON tokenizer spends its time in a callback per token, some thirty per series; this one only
 * finds where the array's elements end (strings skipped with indexOf, nesting counted) and hands each run of whole
 * elements in a chunk to JSON.parse, about five times faster. Every byte still goes through JSON.parse in the context it
 * has in the whole document (elements inside `[...]`, the envelope's remainder through the general reader), so this
 * accepts exactly the valid documents and reads them as JSON.parse would.
 *
 * After the array's `]`, the rest of the envelope (warnings, in any order, even a repeated `data`) is small and goes
 * to `tail`, a general reader primed with the head and an empty array.
 */
export class CompactSeriesReader {
  readonly series: DiscoveredSeries[] = [];
  readonly shapes = new SeriesShapes();
  readonly #decoder = new StringDecoder('utf8');
  readonly #malformed: (reason: string) => Error;
  readonly #tail: { write(bytes: Uint8Array): void };
  /** Text not yet parsed: it starts between two elements (never inside a string), or at the array's start. */
  #text = '';
  /** Where scanning resumes in #text, and the scanner's state there. */
  #at = 0;
  #depth = 0;
  #inString = false;
  /** A comma between elements has been seen: the array cannot be empty, and no element may be. */
  #separated = false;
  #arrayEnded = false;

  /** `tail` must already have been given the head and `]`; `malformed` makes the error for a body that is not JSON. */
  constructor(tail: { write(bytes: Uint8Array): void }, malformed: (reason: string) => Error) {
    this.#tail = tail;
    this.#malformed = malformed;
  }

  get arrayEnded(): boolean {
    return this.#arrayEnded;
  }

  write(bytes: Uint8Array): void {
    const text = this.#decoder.write(bytes as Buffer);
    if (this.#arrayEnded) this.#tail.write(Buffer.from(text));
    else this.#scan(this.#text + text);
  }

  end(): void {
    const text = this.#decoder.end();
    if (this.#arrayEnded) this.#tail.write(Buffer.from(text));
    else if (text !== '') this.#scan(this.#text + text);
  }

  #scan(text: string): void {
    let i = this.#at;
    let depth = this.#depth;
    let inString = this.#inString;
    let cut = -1;
    const n = text.length;
    while (i < n) {
      if (inString) {
        const quote = text.indexOf('"', i);
        if (quote === -1) {
          i = n;
          break;
        }
        // The quote ends the string unless an odd run of backslashes escapes it. The string's opening quote is in
        // `text` (it starts outside any string), so the look back stops there at the latest.
        let before = quote;
        while (text.charCodeAt(before - 1) === BACKSLASH) before--;
        i = quote + 1;
        if (((quote - before) & 1) === 0) inString = false;
        continue;
      }
      const c = text.charCodeAt(i++);
      if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (depth > 0) depth--;
        else if (c === CLOSE_BRACKET) {
          this.#elements(text.slice(0, i - 1), true);
          this.#arrayEnded = true;
          this.#text = '';
          this.#tail.write(Buffer.from(text.slice(i)));
          return;
        } else throw this.#malformed('unexpected } in the series list');
      } else if (c === COMMA && depth === 0) cut = i - 1;
    }
    if (cut !== -1) {
      this.#elements(text.slice(0, cut), false);
      this.#separated = true;
      text = text.slice(cut + 1);
      i -= cut + 1;
    }
    this.#text = text;
    this.#at = i;
    this.#depth = depth;
    this.#inString = inString;
  }

  /** Whole elements, separated by commas; `last`: the run that ends the array, which alone may hold none. */
  #elements(text: string, last: boolean): void {
    if (!NOT_BLANK.test(text)) {
      if (last && !this.#separated) return;
      throw this.#malformed(last ? 'a comma before the end of the series list' : 'an empty element in the series list');
    }
    let elements: unknown[];
    try {
      elements = JSON.parse(`[${text}]`) as unknown[];
    } catch (err) {
      throw this.#malformed(`${(err as Error).message.replace(/ in JSON at position \d+.*$/s, '')} in the series list`);
    }
    for (const element of elements) {
      if (typeof element !== 'object' || element === null || Array.isArray(element)) continue;
      const name = (element as Record<string, unknown>)['__name__'];
      if (typeof name !== 'string' || name === '') continue;
      const labels = Object.keys(element);
      labels.splice(labels.indexOf('__name__'), 1);
      this.series.push(this.shapes.of(name, labels));
    }
  }
}
