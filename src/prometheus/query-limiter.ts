import { AdapterError, ServiceUnavailableError, TimeoutError } from '../errors.ts';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import type { InstantQuerier, InstantQueryResult } from './http-client.ts';
import type { SeriesLister } from './series-discovery.ts';

/** What the limiter stands in front of: the HTTP client, or a fake in tests. */
export interface PrometheusBackend extends InstantQuerier, SeriesLister {}

export interface QueryLimiterOptions {
  /** Most calls in flight to Prometheus at once (--prometheus-max-concurrent-queries). */
  readonly maxConcurrent: number;
  /** Most calls waiting for a slot (--prometheus-max-queued-queries); beyond that, calls fail at once. */
  readonly maxQueued: number;
  /**
   * Budget of one call from the moment it is asked for, waiting included (--prometheus-timeout). A call that
   * got its slot late gets only what is left, so a queue can never stretch a request beyond the timeout.
   */
  readonly timeoutMs: number;
  /** The backend as error messages name it (no credentials). */
  readonly backendUrl: string;
}

/** What a caller turned away by a full queue is told to wait; a slot frees within one query's time. */
const RETRY_AFTER_SECONDS = 1;

export interface QueryLimiterStats {
  readonly inFlight: number;
  readonly queued: number;
  /** Calls turned away because the queue was full, since start. */
  readonly rejected: number;
  /** Calls that gave up while waiting for a slot, since start. */
  readonly expiredWaiting: number;
}

interface Waiter {
  readonly grant: () => void;
}

/**
 * The one gate every Prometheus call passes (queries and series), behind the query engine's cache and
 * single-flight: at most `maxConcurrent` in flight, at most `maxQueued` waiting in arrival order, and a
 * fast 503 beyond that. A slow or hanging Prometheus therefore costs a bounded number of sockets and
 * waiting promises, however many requests arrive, and callers learn quickly that they should come back.
 */
export class QueryLimiter implements PrometheusBackend {
  readonly #backend: PrometheusBackend;
  readonly #options: QueryLimiterOptions;
  readonly #queue: Waiter[] = [];
  #inFlight = 0;
  #rejected = 0;
  #expiredWaiting = 0;

  constructor(backend: PrometheusBackend, options: QueryLimiterOptions) {
    if (!Number.isInteger(options.maxConcurrent) || options.maxConcurrent < 1) {
      throw new Error(`the Prometheus query limit must be a positive integer, got ${options.maxConcurrent}`);
    }
    if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) {
      throw new Error(`the Prometheus queue limit must be a non-negative integer, got ${options.maxQueued}`);
    }
    this.#backend = backend;
    this.#options = options;
  }

  query(promql: string, timeSeconds: number, signal?: AbortSignal): Promise<InstantQueryResult> {
    return this.#run((s) => this.#backend.query(promql, timeSeconds, s), signal);
  }

  series(matchers: readonly string[], startSeconds: number, endSeconds: number, signal?: AbortSignal): Promise<DiscoveredSeries[]> {
    return this.#run((s) => this.#backend.series(matchers, startSeconds, endSeconds, s), signal);
  }

  get stats(): QueryLimiterStats {
    return { inFlight: this.#inFlight, queued: this.#queue.length, rejected: this.#rejected, expiredWaiting: this.#expiredWaiting };
  }

  async #run<T>(call: (signal: AbortSignal) => Promise<T>, callerSignal?: AbortSignal): Promise<T> {
    const { maxConcurrent, maxQueued, timeoutMs, backendUrl } = this.#options;
    if (this.#inFlight >= maxConcurrent && this.#queue.length >= maxQueued) {
      this.#rejected++;
      throw new ServiceUnavailableError(
        `too many Prometheus queries waiting; retry later: ${maxConcurrent} queries to Prometheus at ${backendUrl} are in flight and ` +
          `${maxQueued} more are queued (--prometheus-max-concurrent-queries, --prometheus-max-queued-queries)`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    const started = performance.now();
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline, callerSignal]) : deadline;
    if (this.#inFlight < maxConcurrent) this.#inFlight++;
    else await this.#waitForSlot(signal, deadline);
    const waitedMs = performance.now() - started;
    try {
      return await call(signal);
    } catch (err) {
      // The HTTP client reports its own timeout; when queueing ate part of the budget, say so, or a user
      // reading "did not answer within 30000 ms" of a query that ran for 2 s would be misled.
      if (deadline.aborted && waitedMs >= 1 && err instanceof TimeoutError) {
        throw new TimeoutError(
          `Prometheus at ${backendUrl} did not answer within the ${timeoutMs} ms budget (--prometheus-timeout), ` +
            `${Math.round(waitedMs)} ms of which went waiting for one of the ${maxConcurrent} query slots (--prometheus-max-concurrent-queries)`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      this.#release();
    }
  }

  /** Resolves holding a slot (the releasing call hands its slot over), or rejects when the budget runs out first. */
  #waitForSlot(signal: AbortSignal, deadline: AbortSignal): Promise<void> {
    const { maxConcurrent, timeoutMs, backendUrl } = this.#options;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i !== -1) this.#queue.splice(i, 1);
        this.#expiredWaiting++;
        if (deadline.aborted) {
          reject(
            new TimeoutError(
              `waited the whole ${timeoutMs} ms budget (--prometheus-timeout) for one of the ${maxConcurrent} query slots to ` +
                `Prometheus at ${backendUrl} (--prometheus-max-concurrent-queries); Prometheus is answering slower than queries arrive`,
            ),
          );
        } else {
          const reason: unknown = signal.reason;
          reject(reason instanceof AdapterError ? reason : new ServiceUnavailableError(`the query to Prometheus at ${backendUrl} was canceled while waiting for a slot`));
        }
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next.grant();
    else this.#inFlight--;
  }
}
