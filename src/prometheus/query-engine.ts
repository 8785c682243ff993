import { LRUCache } from 'lru-cache';
import type { InstantQuerier, InstantQueryResult } from './http-client.ts';

export interface QueryEngineOptions {
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

  constructor(backend: InstantQuerier, options: QueryEngineOptions) {
    this.#backend = backend;
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

  async query(promql: string): Promise<EngineResult> {
    const cached = this.#cache?.get(promql);
    if (cached) return { ...cached, source: 'cache' };
    const running = this.#inflight.get(promql);
    if (running) return { ...(await running), source: 'coalesced' };
    const evaluatedAt = Math.floor(this.#now() / 1000);
    const promise = this.#backend
      .query(promql, evaluatedAt)
      .then((r): EngineResult => ({ ...r, evaluatedAt, source: 'prometheus' }));
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
