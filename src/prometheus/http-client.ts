import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import axios, { AxiosError, AxiosHeaders, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { AdapterError, InternalError, ServiceUnavailableError, TimeoutError } from '../errors.ts';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import { parseSampleValue, sampleFromJson, type Sample } from './sample.ts';
import { MalformedJsonError, SeriesAnswerParser, type SeriesAnswer } from './series-stream.ts';
import { readVectorAnswer } from './vector-answer.ts';

export { parseSampleValue, type Sample } from './sample.ts';

export interface PrometheusClientOptions {
  /** Base URL; may carry a path prefix (`https://thanos/prometheus`). */
  readonly url: string;
  readonly timeoutMs: number;
  /** GET sends the query in the URL and switches to POST once the URL would exceed `maxGetUrlBytes`. */
  readonly verb: 'GET' | 'POST';
  readonly maxGetUrlBytes?: number;
  readonly tokenFile?: string;
  readonly caFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** Inline credentials, e.g. taken from a kubeconfig (--prometheus-auth-config); files win when both are given. */
  readonly token?: string;
  readonly caPem?: string;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** HTTP basic auth; the password file is re-read when it changes, like tokenFile. */
  readonly basicAuth?: { readonly username: string; readonly passwordFile: string };
  /** Added to every request, e.g. `dedup=true` for Thanos. */
  readonly queryParams?: Readonly<Record<string, string>>;
  /** Accept any server certificate; only for backends whose certificate cannot be checked. */
  readonly insecureSkipVerify?: boolean;
  /** Clock for the token file re-check interval; tests step it instead of waiting 10 s. */
  readonly now?: () => number;
}

export interface InstantQueryResult {
  readonly samples: readonly Sample[];
  readonly warnings: readonly string[];
}

/** Whatever answers PromQL instant queries: the HTTP client, or a cache in front of it. */
export interface InstantQuerier {
  query(promql: string, timeSeconds: number, signal?: AbortSignal): Promise<InstantQueryResult>;
}

interface Envelope {
  status?: string;
  data?: { resultType?: string; result?: unknown };
  errorType?: string;
  error?: string;
  warnings?: string[];
}

const DEFAULT_MAX_GET_URL_BYTES = 8 * 1024;
const MAX_ERROR_BODY_BYTES = 1024 * 1024;

/**
 * axios's Node transport, called with a configuration completed once per client. Going through `axios.request`
 * merges, flattens and re-validates the whole configuration on every call: ~0.3 ms of a query on the HPA's path
 * (measured after 12 ms idle, as HPA requests arrive), for a configuration that never changes.
 */
const transport: AxiosAdapter = axios.getAdapter('http');

/** The URL without credentials, safe to put into error messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '<invalid URL>';
  }
}

/**
 * Prometheus HTTP API client for instant queries. Turns every failure into an AdapterError whose
 * message names the backend and what it said, so API users see why a metric failed.
 */
export class PrometheusHttpClient implements InstantQuerier {
  readonly displayUrl: string;
  /** Everything a request's configuration holds but its URL, method, headers, body, answer type and signal. */
  readonly #request: Omit<InternalAxiosRequestConfig, 'headers'>;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #options: PrometheusClientOptions;
  readonly #secrets = new Map<string, { value: string; mtimeMs: number; checkedAt: number }>();

  constructor(options: PrometheusClientOptions) {
    this.#options = options;
    this.displayUrl = redactUrl(options.url);
    const base = options.url.endsWith('/') ? options.url : `${options.url}/`;
    const readPem = (file: string | undefined, what: string): Buffer | undefined => {
      if (!file) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new Error(`cannot read the Prometheus ${what} ${file}: ${(err as Error).message}`);
      }
    };
    const ca = readPem(options.caFile, 'CA file') ?? options.caPem;
    const cert = readPem(options.clientCertFile, 'client certificate') ?? options.clientCertPem;
    const key = readPem(options.clientKeyFile, 'client key') ?? options.clientKeyPem;
    if (Boolean(cert) !== Boolean(key)) throw new Error('the Prometheus client certificate and key must be given together');
    this.#headers = { Accept: 'application/json', ...options.headers };
    this.#request = {
      baseURL: base,
      timeout: options.timeoutMs,
      httpAgent: new http.Agent({ keepAlive: true }),
      httpsAgent: new https.Agent({ keepAlive: true, minVersion: 'TLSv1.2', ...(ca ? { ca } : {}), ...(cert ? { cert, key } : {}), ...(options.insecureSkipVerify === true ? { rejectUnauthorized: false } : {}) }),
      // Every status is an answer to read: Prometheus explains its errors in the body.
      validateStatus: () => true,
      maxRedirects: 0,
      maxContentLength: -1,
      maxBodyLength: -1,
      decompress: true,
      proxy: false,
    };
    if (options.tokenFile) this.#bearerToken();
    if (options.basicAuth) this.#readRotating(options.basicAuth.passwordFile, 'basic auth password file');
  }

  async query(promql: string, timeSeconds: number, signal?: AbortSignal): Promise<InstantQueryResult> {
    const params = new URLSearchParams({
      query: promql,
      time: timeSeconds.toFixed(3),
      timeout: `${Math.max(1, Math.floor(this.#options.timeoutMs / 1000))}s`,
    });
    const response = await this.#send('api/v1/query', params, signal, 'text');
    const text = response.data as string;
    if (response.status >= 200 && response.status < 300) {
      // The common answer, read without JSON.parse's intermediate tree; anything else takes the general path.
      const vector = readVectorAnswer(text);
      if (vector !== undefined) return vector;
    }
    const { data: raw, warnings } = this.#unwrap(response.status, this.#parseEnvelope(response.status, text));
    const data = raw as Envelope['data'];
    const resultType = data?.resultType;
    const result = data?.result;
    if (resultType === 'vector' && Array.isArray(result)) {
      return { samples: result.map(sampleFromJson), warnings };
    }
    if (resultType === 'scalar' && Array.isArray(result)) {
      const [t, v] = result as [number, string];
      return { samples: [{ labels: {}, value: parseSampleValue(v), timestamp: t }], warnings };
    }
    throw new InternalError(
      `Prometheus at ${this.displayUrl} returned a ${resultType ?? 'malformed'} result; the query must return an instant vector`,
    );
  }

  /**
   * `/api/v1/series`: the series matching any of `matchers` with samples in [start, end], as their name and
   * label names. `end` is always sent: without it Prometheus reads up to the end of its TSDB, future
   * (backfilled) blocks included. Series without a name are left out. Series with the same name and label
   * names share one frozen entry, so the list costs a pointer per series.
   */
  async series(
    matchers: readonly string[],
    startSeconds: number,
    endSeconds: number,
    signal?: AbortSignal,
  ): Promise<DiscoveredSeries[]> {
    if (matchers.length === 0) throw new InternalError('a series request needs at least one match[] selector');
    const params = new URLSearchParams();
    for (const m of matchers) params.append('match[]', m);
    params.set('start', startSeconds.toFixed(3));
    params.set('end', endSeconds.toFixed(3));
    return this.#streamSeries(params, signal);
  }

  /**
   * The series answer is read as it arrives and reduced series by series (see SeriesAnswerParser): a million series
   * are 150 MB and more of JSON, which as one string plus its parse would not fit the memory discovery is given.
   */
  async #streamSeries(params: URLSearchParams, signal?: AbortSignal): Promise<DiscoveredSeries[]> {
    const started = performance.now();
    const response = await this.#send('api/v1/series', params, signal, 'stream');
    const body = response.data as Readable;
    // axios's timeout stops at the response headers in stream mode; the budget covers the whole answer, as for text.
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        body.destroy(new Error('timeout'));
      },
      Math.max(0, this.#options.timeoutMs - (performance.now() - started)),
    );
    const onAbort = (): void => {
      body.destroy(new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort);
    try {
      if (signal?.aborted) onAbort();
      if (response.status < 200 || response.status >= 300) {
        // Error answers are small; read whole, they go through the same mapping as a query's.
        throw this.#failure(response.status, this.#parseEnvelope(response.status, await readLimited(body, MAX_ERROR_BODY_BYTES)));
      }
      const parser = new SeriesAnswerParser();
      let answer: SeriesAnswer;
      try {
        for await (const chunk of body) parser.write(chunk as Buffer);
        answer = parser.end();
      } catch (err) {
        if (err instanceof MalformedJsonError) throw this.#notJson(response.status, err.head);
        throw err;
      }
      if (answer.status !== 'success') throw this.#failure(response.status, { errorType: answer.errorType, error: answer.error });
      if (answer.series === null) {
        throw new InternalError(`Prometheus at ${this.displayUrl} answered a series request with a malformed result`);
      }
      return answer.series;
    } catch (err) {
      if (err instanceof AdapterError) throw err;
      if (timedOut) throw this.#transportError(new AxiosError('timeout', AxiosError.ETIMEDOUT));
      if (signal?.aborted) throw this.#transportError(new AxiosError('canceled', AxiosError.ERR_CANCELED));
      throw this.#transportError(err);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (!body.destroyed) body.destroy();
    }
  }

  async #send(path: string, params: URLSearchParams, signal: AbortSignal | undefined, responseType: 'text' | 'stream'): Promise<AxiosResponse<unknown>> {
    // Instant-query answers are small and on the HPA's path: compressing them costs Prometheus and us
    // about 1.5 ms per query on a fast network (measured on loopback), more than the transfer saves.
    // Series lists (discovery) are large and off the request path, so they keep gzip.
    const headers: Record<string, string> = path === 'api/v1/query' ? { 'Accept-Encoding': 'identity' } : {};
    const token = this.#bearerToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const basic = this.#options.basicAuth;
    if (basic) {
      const password = this.#readRotating(basic.passwordFile, 'basic auth password file');
      headers.Authorization = `Basic ${Buffer.from(`${basic.username}:${password}`).toString('base64')}`;
    }
    for (const [key, value] of Object.entries(this.#options.queryParams ?? {})) params.append(key, value);
    const encoded = params.toString();
    const usePost =
      this.#options.verb === 'POST' ||
      path.length + encoded.length + this.#options.url.length > (this.#options.maxGetUrlBytes ?? DEFAULT_MAX_GET_URL_BYTES);
    if (usePost) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    try {
      // axios.request() checks this before the transport runs; the transport itself would reject, yet still send.
      if (signal?.aborted) throw new AxiosError('canceled', AxiosError.ERR_CANCELED);
      return await transport({
        ...this.#request,
        url: usePost ? path : `${path}?${encoded}`,
        method: usePost ? 'post' : 'get',
        headers: new AxiosHeaders({ ...this.#headers, ...headers }),
        responseType,
        ...(usePost ? { data: encoded } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw this.#transportError(err);
    }
  }

  #parseEnvelope(status: number, text: string): Envelope {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    // `null`, a number or an array parse fine but are no envelope; reading fields off them would throw a TypeError.
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw this.#notJson(status, text);
    return parsed as Envelope;
  }

  #notJson(status: number, body: string): ServiceUnavailableError {
    const snippet = body.slice(0, 200).trim();
    return new ServiceUnavailableError(
      `Prometheus at ${this.displayUrl} answered HTTP ${status} with a body that is not a JSON API response: ${JSON.stringify(snippet)}`,
    );
  }

  /** The envelope's data and warnings when it says success, else the error that says why not. */
  #unwrap(status: number, envelope: Envelope): { data: unknown; warnings: readonly string[] } {
    if (status >= 200 && status < 300 && envelope.status === 'success') {
      const warnings = Array.isArray(envelope.warnings) ? envelope.warnings.filter((w) => typeof w === 'string') : [];
      return { data: envelope.data, warnings };
    }
    throw this.#failure(status, envelope);
  }

  #failure(status: number, envelope: Pick<Envelope, 'errorType' | 'error'>): AdapterError {
    const detail = envelope.error ? `${envelope.errorType ?? 'error'}: ${envelope.error}` : `HTTP ${status}`;
    if (envelope.errorType === 'timeout' || envelope.errorType === 'canceled') {
      return new TimeoutError(`Prometheus at ${this.displayUrl} timed out evaluating the query (${detail})`);
    }
    if (status === 400 || status === 422 || envelope.errorType === 'bad_data' || envelope.errorType === 'execution') {
      return new InternalError(`Prometheus at ${this.displayUrl} rejected the query (${detail})`);
    }
    return new ServiceUnavailableError(`Prometheus at ${this.displayUrl} failed: HTTP ${status} (${detail})`);
  }

  #transportError(err: unknown): Error {
    if (err instanceof AxiosError) {
      if (err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' || err.code === AxiosError.ERR_CANCELED) {
        return new TimeoutError(
          `Prometheus at ${this.displayUrl} did not answer within ${this.#options.timeoutMs} ms (--prometheus-timeout)`,
          { cause: err },
        );
      }
      return new ServiceUnavailableError(
        `Prometheus at ${this.displayUrl} is unreachable: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ').trim(),
        { cause: err },
      );
    }
    return new ServiceUnavailableError(`Prometheus at ${this.displayUrl} failed: ${(err as Error).message}`, { cause: err });
  }

  /** Re-reads the token file when it changes, so projected, rotating tokens keep working. */
  #bearerToken(): string | undefined {
    const file = this.#options.tokenFile;
    if (!file) return this.#options.token;
    return this.#readRotating(file, 'bearer token file');
  }

  /** A secret file's trimmed content, re-read when its mtime changes (checked at most every 10 s). */
  #readRotating(file: string, what: string): string {
    const now = (this.#options.now ?? Date.now)();
    const cached = this.#secrets.get(file);
    if (cached && now - cached.checkedAt < 10_000) return cached.value;
    try {
      const { mtimeMs } = statSync(file);
      if (!cached || cached.mtimeMs !== mtimeMs) {
        this.#secrets.set(file, { value: readFileSync(file, 'utf8').trim(), mtimeMs, checkedAt: now });
      } else {
        cached.checkedAt = now;
      }
      return this.#secrets.get(file)!.value;
    } catch (err) {
      // A rotation that briefly removes the file keeps the last value rather than failing every query.
      if (cached) return cached.value;
      throw new Error(`cannot read the Prometheus ${what} ${file}: ${(err as Error).message}`);
    }
  }
}

/** Reads a small body whole, or its first `limit` bytes: enough for any error message worth showing. */
async function readLimited(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= limit) break;
  }
  // As axios does for text answers.
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8').replace(/^\uFEFF/, '');
}
