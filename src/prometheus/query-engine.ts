import { LRUCache } from 'lru-cache';
import type { InstantQuerier, InstantQueryResult } from './http-client.ts';
import { currentTrace } from '../observability/request-context.ts';

/** What the engine reports about each query, for self-metrics; the engine knows nothing of prom-client. */
export interface QueryObserver {
  cacheResult(result: 'hit' | 'miss' | 'coalesced'): void;
  /** One Prometheus round trip for `rule`; `error` is null on success. */
  prometheusQuery(rule: string, error: unknown, seconds: number): void;
  /** How old the answer is (now minus its evaluation time): cache age plus query time. */
  valueAge?(rule: string, seconds: number): void;
}

export interface QueryEngineOptions {
  readonly observer?: QueryObserver;
  /** How long a result is reused; 0 turns the cache off (concurrent identical queries still share one request). */
  readonly cacheTtlMs: number;
  readonly cacheMaxEntries: number;
  readonly now?: () => number;
}

export interface EngineResult extends InstantQueryResult {
  /** Evaluation time sent to Prometheus, Unix seconds. */
  readonly evaluatedAt: number;
  readonly source: 'prometheus' | 'cache' | 'coalesced';
}

/**
 * Cache and single-flight in front of Prometheus. Queries are evaluated at whole seconds, so a
 * result's timestamps are exact in RFC 3339 and a cached answer says when it was computed.
 */
export class QueryEngine {
  readonly #backend: InstantQuerier;
  readonly #cache: LRUCache<string, EngineResult> | null;
  readonly #inflight = new Map<string, Promise<EngineResult>>();
  readonly #now: () => number;
  readonly #observer: QueryObserver | undefined;

  constructor(backend: InstantQuerier, options: QueryEngineOptions) {
    this.#backend = backend;
    this.#observer = options.observer;
    this.#now = options.now ?? Date.now;
    // The cache ages entries on the engine's clock, not lru-cache's own (performance.now), so that an injected
    // clock governs expiry too. ttlResolution 0: the default 1 ms debounce would hide a clock step for up to 1 ms
    // of real time, and one clock read per lookup is cheap.
    this.#cache =
      options.cacheTtlMs > 0
        ? new LRUCache({
            max: options.cacheMaxEntries,
            ttl: options.cacheTtlMs,
            ttlAutopurge: false,
            ttlResolution: 0,
            perf: { now: this.#now },
          })
        : null;
  }

  /** `rule` names who asked, for self-metrics and logs. */
  async query(promql: string, rule = 'unknown'): Promise<EngineResult> {
    const started = performance.now();
    const ms = (): number => +(performance.now() - started).toFixed(2);
    let result: EngineResult;
    try {
      result = await this.#query(promql, rule);
    } catch (err) {
      // The request's one warning line names the queries that failed it, with their PromQL.
      currentTrace()?.queries.push({ rule, query: promql, source: 'prometheus', ms: ms(), samples: 0, error: (err as Error).message });
      throw err;
    }
    // The request being served (if any) logs its rules and PromQL in one line.
    currentTrace()?.queries.push({ rule, query: promql, source: result.source, ms: ms(), samples: result.samples.length });
    return result;
  }

  async #query(promql: string, rule: string): Promise<EngineResult> {
    const observer = this.#observer;
    const cached = this.#cache?.get(promql);
    if (cached) {
      observer?.cacheResult('hit');
      observer?.valueAge?.(rule, this.#now() / 1000 - cached.evaluatedAt);
      return { ...cached, source: 'cache' };
    }
    const running = this.#inflight.get(promql);
    if (running) {
      observer?.cacheResult('coalesced');
      const shared = await running;
      observer?.valueAge?.(rule, this.#now() / 1000 - shared.evaluatedAt);
      return { ...shared, source: 'coalesced' };
    }
    observer?.cacheResult('miss');
    const evaluatedAt = Math.floor(this.#now() / 1000);
    const started = performance.now();
    const promise = this.#backend.query(promql, evaluatedAt).then(
      (r): EngineResult => {
        observer?.prometheusQuery(rule, null, (performance.now() - started) / 1000);
        observer?.valueAge?.(rule, this.#now() / 1000 - evaluatedAt);
        return { ...r, evaluatedAt, source: 'prometheus' };
      },
      (err: unknown) => {
        observer?.prometheusQuery(rule, err, (performance.now() - started) / 1000);
        throw err;
      },
    );
    this.#inflight.set(promql, promise);
    try {
      const result = await promise;
      this.#cache?.set(promql, result);
      return result;
    } finally {
      this.#inflight.delete(promql);
    }
  }

  get stats(): { cachedEntries: number; inflight: number } {
    return { cachedEntries: this.#cache?.size ?? 0, inflight: this.#inflight.size };
  }
}
