import { Tokenizer, TokenType } from '@streamparser/json';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import { COMPACT_SERIES_HEAD, CompactSeriesReader } from './series-compact-reader.ts';
import { SeriesShapes } from './series-shapes.ts';

/** The body is not one well-formed JSON document; `head` is its first characters, for the error message. */
export class MalformedJsonError extends Error {
  readonly head: string;

  constructor(message: string, head: string) {
    super(message);
    this.name = 'MalformedJsonError';
    this.head = head;
  }
}

/** What an `/api/v1/series` answer said, with the series already reduced to their name and label names. */
export interface SeriesAnswer {
  /** Only the envelope fields read are kept; undefined when absent or not a string. */
  readonly status: string | undefined;
  readonly errorType: string | undefined;
  readonly error: string | undefined;
  readonly warnings: readonly string[];
  /**
   * One entry per named series, in answer order. Series with the same name and label names share one frozen
   * entry object, so a million series cost a pointer each rather than an object and an array each. Null when
   * `data` is missing or not an array.
   */
  readonly series: DiscoveredSeries[] | null;
  /** Distinct (name, label names) entries among `series`. */
  readonly distinct: number;
}

const HEAD_BYTES = 600;
const HEAD_CHARS = 200;

// Grammar states: the tokenizer checks tokens, not how they are put together.
const VALUE = 0;
const VALUE_OR_CLOSE = 1;
const KEY = 2;
const KEY_OR_CLOSE = 3;
const COLON = 4;
const COMMA_OR_CLOSE = 5;
const DONE = 6;

// Where a token sits in the envelope, by container depth: 1 the envelope, 2 data or warnings, 3 a series' labels.
const ENVELOPE = 1;
const LIST = 2;
const SERIES = 3;

/**
 * Push parser for an `/api/v1/series` answer: feed it the body's bytes in chunks of any size (split anywhere,
 * inside a multi-byte character included) and it keeps only each series' name and sorted label names, deduplicated,
 * as each series ends. Label values never accumulate: memory is a pointer per series and an entry per distinct
 * shape, whatever the size of the answer. Unnamed series and elements that are not objects are dropped.
 *
 * Answers in Prometheus's own layout (COMPACT_SERIES_HEAD) go through CompactSeriesReader, which is several times
 * faster; anything else (other key orders, whitespace, a byte order mark, error envelopes) through a general JSON
 * tokenizer. Both give what JSON.parse of the whole body would mean, and refuse what it would refuse.
 */
export class SeriesAnswerParser {
  readonly #head: Uint8Array[] = [];
  #headBytes = 0;
  /** The first bytes, until they show whether the answer begins with COMPACT_SERIES_HEAD. */
  #undecided: Buffer | null = Buffer.alloc(0);
  #compact: { reader: CompactSeriesReader; tail: TokenSeriesReader } | null = null;
  #general: TokenSeriesReader | null = null;

  /** Throws MalformedJsonError as soon as the bytes so far cannot begin a JSON document. */
  write(chunk: Uint8Array): void {
    if (this.#headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.#headBytes);
      this.#head.push(part.slice());
      this.#headBytes += part.length;
    }
    if (this.#compact !== null) this.#compact.reader.write(chunk);
    else if (this.#general !== null) this.#general.write(chunk);
    else this.#decide(Buffer.concat([this.#undecided!, chunk]), false);
  }

  /** The answer, once the body is complete; throws MalformedJsonError for a truncated or empty body. */
  end(): SeriesAnswer {
    if (this.#undecided !== null) this.#decide(this.#undecided, true);
    if (this.#general !== null) return this.#general.end();
    const { reader, tail } = this.#compact!;
    reader.end();
    if (!reader.arrayEnded) throw this.#malformed('the body ends inside the JSON document');
    const answer = tail.end();
    // A later "data" key replaces the array read here, as with JSON.parse; the tail reader has read that one.
    return tail.dataValues > 1 ? answer : { ...answer, series: reader.series, distinct: reader.shapes.size };
  }

  /** The body's first characters, for messages about it. */
  head(): string {
    return new TextDecoder().decode(Buffer.concat(this.#head)).slice(0, HEAD_CHARS);
  }

  #decide(bytes: Buffer, ended: boolean): void {
    const known = Math.min(bytes.length, COMPACT_HEAD_BYTES.length);
    const compact = bytes.subarray(0, known).equals(COMPACT_HEAD_BYTES.subarray(0, known));
    if (compact && known < COMPACT_HEAD_BYTES.length && !ended) {
      this.#undecided = bytes;
      return;
    }
    this.#undecided = null;
    const malformed = (reason: string): MalformedJsonError => this.#malformed(reason);
    if (compact && known === COMPACT_HEAD_BYTES.length) {
      const tail = new TokenSeriesReader(malformed);
      tail.write(COMPACT_TAIL_PRIMER);
      this.#compact = { reader: new CompactSeriesReader(tail, malformed), tail };
      this.#compact.reader.write(bytes.subarray(known));
    } else {
      this.#general = new TokenSeriesReader(malformed);
      this.#general.write(bytes);
    }
  }

  #malformed(reason: string): MalformedJsonError {
    return new MalformedJsonError(`not valid JSON: ${reason}`, this.head());
  }
}

const COMPACT_HEAD_BYTES = Buffer.from(COMPACT_SERIES_HEAD);
/** What the general reader is given in place of the array the compact reader reads: the head, and an empty array. */
const COMPACT_TAIL_PRIMER = Buffer.from(`${COMPACT_SERIES_HEAD}]`);

/**
 * The general reader: a JSON tokenizer and a strict state machine over its tokens (the tokenizer checks tokens, not
 * how they are put together).
 */
class TokenSeriesReader {
  readonly #tokenizer = new Tokenizer();
  readonly #malformed: (reason: string) => MalformedJsonError;

  /** Open containers, innermost last: true for an object, false for an array. */
  readonly #stack: boolean[] = [];
  #state = VALUE;
  #envelopeKey = '';
  /** The current envelope key's value is the array being read (data or warnings). */
  #inData = false;
  #inWarnings = false;
  #topIsObject = false;
  /** Values given for the envelope's "data" key: the last one counts. */
  dataValues = 0;

  #status: string | undefined;
  #errorType: string | undefined;
  #error: string | undefined;
  readonly #warnings: string[] = [];
  #series: DiscoveredSeries[] | null = null;
  readonly #shapes = new SeriesShapes();

  #seriesKey = '';
  #seriesName: string | null = null;
  #seriesLabels: string[] = [];

  constructor(malformed: (reason: string) => MalformedJsonError) {
    this.#malformed = malformed;
    this.#tokenizer.onToken = ({ token, value }) => this.#onToken(token, value);
    // The tokenizer's own messages name byte positions; they go into the error with the body's head.
    this.#tokenizer.onError = (err) => {
      throw this.#malformed(err.message);
    };
  }

  write(chunk: Uint8Array): void {
    this.#tokenizer.write(chunk);
  }

  end(): SeriesAnswer {
    this.#tokenizer.end();
    if (this.#state !== DONE) throw this.#malformed(this.#stack.length > 0 || this.#state !== VALUE ? 'the body ends inside the JSON document' : 'the body is empty');
    // `null`, a number or an array are JSON but no envelope.
    if (!this.#topIsObject) throw this.#malformed('the body is not a JSON object');
    return {
      status: this.#status,
      errorType: this.#errorType,
      error: this.#error,
      warnings: this.#warnings,
      series: this.#series,
      distinct: this.#shapes.size,
    };
  }

  #onToken(token: TokenType, value: unknown): void {
    const stack = this.#stack;
    switch (token) {
      case TokenType.LEFT_BRACE:
      case TokenType.LEFT_BRACKET: {
        if (this.#state !== VALUE && this.#state !== VALUE_OR_CLOSE) throw this.#unexpected(token);
        const isObject = token === TokenType.LEFT_BRACE;
        stack.push(isObject);
        this.#state = isObject ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
        const depth = stack.length;
        if (depth === ENVELOPE) this.#topIsObject = isObject;
        else if (depth === LIST) {
          if (this.#envelopeKey === 'data') {
            this.dataValues++;
            this.#inData = !isObject;
            // A repeated key wins over the earlier one, as with JSON.parse.
            this.#series = isObject ? null : [];
          } else if (this.#envelopeKey === 'warnings') {
            this.#inWarnings = !isObject;
            this.#warnings.length = 0;
          }
        } else if (depth === SERIES && this.#inData && isObject) {
          this.#seriesName = null;
          this.#seriesLabels = [];
        }
        return;
      }
      case TokenType.RIGHT_BRACE:
      case TokenType.RIGHT_BRACKET: {
        const isObject = token === TokenType.RIGHT_BRACE;
        const open = stack.at(-1);
        const canClose = isObject ? this.#state === KEY_OR_CLOSE || this.#state === COMMA_OR_CLOSE : this.#state === VALUE_OR_CLOSE || this.#state === COMMA_OR_CLOSE;
        if (open !== isObject || !canClose) throw this.#unexpected(token);
        const depth = stack.length;
        if (depth === SERIES && this.#inData && isObject) this.#endSeries();
        else if (depth === LIST) {
          this.#inData = false;
          this.#inWarnings = false;
        }
        stack.pop();
        // An object or array as a label's value still makes its key a label name, as JSON.parse saw it.
        if (stack.length === SERIES && this.#inData && stack[SERIES - 1] === true) this.#label(null);
        this.#afterValue();
        return;
      }
      case TokenType.COLON:
        if (this.#state !== COLON) throw this.#unexpected(token);
        this.#state = VALUE;
        return;
      case TokenType.COMMA:
        if (this.#state !== COMMA_OR_CLOSE) throw this.#unexpected(token);
        this.#state = stack.at(-1) === true ? KEY : VALUE;
        return;
      case TokenType.STRING:
        if (this.#state === KEY || this.#state === KEY_OR_CLOSE) {
          const depth = stack.length;
          if (depth === ENVELOPE) this.#envelopeKey = value as string;
          else if (depth === SERIES && this.#inData) this.#seriesKey = value as string;
          this.#state = COLON;
          return;
        }
        this.#scalar(token, value);
        if (stack.length === ENVELOPE) this.#envelopeString(value as string);
        else if (stack.length === LIST && this.#inWarnings) this.#warnings.push(value as string);
        return;
      case TokenType.NUMBER:
      case TokenType.TRUE:
      case TokenType.FALSE:
      case TokenType.NULL:
        this.#scalar(token, value);
        return;
      default:
        throw this.#unexpected(token);
    }
  }

  #scalar(token: TokenType, value: unknown): void {
    if (this.#state !== VALUE && this.#state !== VALUE_OR_CLOSE) throw this.#unexpected(token);
    const depth = this.#stack.length;
    if (depth === ENVELOPE && this.#envelopeKey === 'data') {
      this.dataValues++;
      this.#series = null;
    } else if (depth === SERIES && this.#inData && this.#stack[SERIES - 1] === true) {
      this.#label(token === TokenType.STRING ? (value as string) : null);
    }
    this.#afterValue();
  }

  /** Called once per label of a series, with its value when that is a string. */
  #label(stringValue: string | null): void {
    const key = this.#seriesKey;
    if (key === '__name__') {
      this.#seriesName = stringValue;
      return;
    }
    // A repeated key is one label, as JSON.parse would make it.
    if (!this.#seriesLabels.includes(key)) this.#seriesLabels.push(key);
  }

  #envelopeString(value: string): void {
    switch (this.#envelopeKey) {
      case 'status':
        this.#status = value;
        return;
      case 'errorType':
        this.#errorType = value;
        return;
      case 'error':
        this.#error = value;
        return;
      default:
    }
  }

  #afterValue(): void {
    const depth = this.#stack.length;
    if (depth === 0) {
      this.#state = DONE;
      return;
    }
    this.#state = COMMA_OR_CLOSE;
  }

  #endSeries(): void {
    const name = this.#seriesName;
    if (name === null || name === '') return;
    this.#series!.push(this.#shapes.of(name, this.#seriesLabels));
  }

  #unexpected(token: TokenType): MalformedJsonError {
    return this.#malformed(`unexpected ${TokenType[token] ?? token} (${this.#stack.length} containers deep)`);
  }
}
