import type { Logger } from 'pino';
import type { ExternalMetricRule, MetricRule, SeriesRule } from '../config/model.ts';
import type { ResourceResolver } from '../rules/registry.ts';
import { discoverMetrics, type DiscoveredSeries } from '../rules/series-naming.ts';

/** Whatever answers `/api/v1/series`: the HTTP client, or a fake in tests. */
export interface SeriesLister {
  series(matchers: readonly string[], startSeconds: number, endSeconds: number, signal?: AbortSignal): Promise<DiscoveredSeries[]>;
}

export interface SeriesQueryStatus {
  readonly query: string;
  /** Series the metrics are built from: this run's answer, or the last good one when this run failed. */
  readonly series: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly durationMs: number;
  /** When this query last answered; null if it never has (its rules then serve nothing). */
  readonly lastSuccess: Date | null;
}

export interface DiscoveryResult {
  readonly custom: MetricRule[];
  readonly external: ExternalMetricRule[];
  readonly problems: string[];
  /** End of the last relist in which at least one series query answered (or there was none to ask). */
  readonly lastSuccess: Date | null;
  readonly perQuery: SeriesQueryStatus[];
}

export interface SeriesDiscoveryOptions {
  readonly client: SeriesLister;
  readonly rules: readonly SeriesRule[];
  /** Read on every relist, so resources the cluster gained since the last one are recognised. */
  readonly resolver: () => ResourceResolver;
  readonly relistIntervalMs: number;
  /** How far back a series may have its last sample and still count (prometheus-adapter's --metrics-max-age). */
  readonly maxAgeMs: number;
  readonly now?: () => number;
  readonly log: Logger;
  readonly onUpdate?: (result: DiscoveryResult) => void;
  /** Series queries in flight at once. */
  readonly concurrency?: number;
}

const DEFAULT_CONCURRENCY = 4;

const EMPTY: DiscoveryResult = Object.freeze({ custom: [], external: [], problems: [], lastSuccess: null, perQuery: [] });

/**
 * prometheus-adapter's relist, made robust: each distinct `seriesQuery` is asked once per relist (shared by
 * custom and external rules), a few at a time, and a query that fails keeps its last good answer. One
 * broken rule or a short Prometheus outage therefore never empties the metrics of the others, where the
 * reference drops the whole update.
 */
export class SeriesDiscovery {
  readonly #options: SeriesDiscoveryOptions;
  readonly #now: () => number;
  /** Distinct series queries, with the rules that use them (for log lines). */
  readonly #queries: ReadonlyMap<string, readonly string[]>;
  readonly #lastGood = new Map<string, { series: readonly DiscoveredSeries[]; at: Date }>();
  #current: DiscoveryResult = EMPTY;
  #lastSuccess: Date | null = null;
  #lastProblems = '';
  #running: Promise<DiscoveryResult> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #started = false;
  #abort: AbortController | null = null;

  constructor(options: SeriesDiscoveryOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    const queries = new Map<string, string[]>();
    for (const rule of options.rules) {
      const origins = queries.get(rule.seriesQuery);
      if (origins) origins.push(rule.origin);
      else queries.set(rule.seriesQuery, [rule.origin]);
    }
    this.#queries = queries;
  }

  /** The latest result; empty until the first relist finished. */
  current(): DiscoveryResult {
    return this.#current;
  }

  /** One relist. A call while one is running shares it rather than asking Prometheus twice. */
  runOnce(): Promise<DiscoveryResult> {
    this.#running ??= this.#relist().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Relists now and then `relistIntervalMs` after each relist ends; the timer does not keep the process alive. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const loop = (): void => {
      this.#timer = null;
      void this.runOnce()
        .catch((err: unknown) => this.#options.log.error({ err }, 'series discovery failed unexpectedly'))
        .finally(() => {
          if (!this.#started) return;
          this.#timer = setTimeout(loop, this.#options.relistIntervalMs);
          this.#timer.unref();
        });
    };
    loop();
  }

  /** Stops the timer and abandons a relist in flight; the last result stays available. */
  stop(): void {
    this.#started = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
  }

  async #relist(): Promise<DiscoveryResult> {
    const { client, log } = this.#options;
    const started = performance.now();
    const nowMs = this.#now();
    const startSeconds = (nowMs - this.#options.maxAgeMs) / 1000;
    const endSeconds = nowMs / 1000;
    const abort = new AbortController();
    this.#abort = abort;

    const queries = [...this.#queries.keys()];
    const statuses: SeriesQueryStatus[] = new Array(queries.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < queries.length) {
        const i = next++;
        const query = queries[i]!;
        const t0 = performance.now();
        try {
          const series = await client.series([query], startSeconds, endSeconds, abort.signal);
          const at = new Date(this.#now());
          this.#lastGood.set(query, { series, at });
          statuses[i] = { query, series: series.length, ok: true, durationMs: ms(t0), lastSuccess: at };
        } catch (err) {
          if (abort.signal.aborted) return;
          const message = err instanceof Error ? err.message : String(err);
          const kept = this.#lastGood.get(query);
          statuses[i] = {
            query,
            series: kept?.series.length ?? 0,
            ok: false,
            error: message,
            durationMs: ms(t0),
            lastSuccess: kept?.at ?? null,
          };
          log.warn(
            {
              seriesQuery: query,
              rules: this.#queries.get(query),
              err: message,
              keptSeries: kept?.series.length ?? 0,
              keptFrom: kept?.at.toISOString() ?? null,
            },
            kept
              ? 'series query failed; its rules keep the series of the last successful relist'
              : 'series query failed; its rules serve no metrics until it succeeds',
          );
        }
      }
    };
    const concurrency = Math.max(1, Math.min(this.#options.concurrency ?? DEFAULT_CONCURRENCY, queries.length));
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (this.#abort === abort) this.#abort = null;
    // Stopped mid-relist: the answers are incomplete by our own doing, not Prometheus's; keep the last result.
    if (abort.signal.aborted) return this.#current;

    const seriesByQuery = new Map<string, readonly DiscoveredSeries[]>();
    for (const [query, good] of this.#lastGood) seriesByQuery.set(query, good.series);
    const { custom, external, problems } = discoverMetrics(this.#options.rules, seriesByQuery, this.#options.resolver());

    const okCount = statuses.filter((s) => s.ok).length;
    if (okCount > 0 || queries.length === 0) this.#lastSuccess = new Date(this.#now());
    const result: DiscoveryResult = { custom, external, problems, lastSuccess: this.#lastSuccess, perQuery: statuses };
    this.#current = result;

    const durationMs = ms(started);
    const summary = {
      queries: queries.length,
      failed: queries.length - okCount,
      series: statuses.reduce((n, s) => n + s.series, 0),
      customMetrics: custom.length,
      externalMetrics: external.length,
      problems: problems.length,
      ms: durationMs,
    };
    if (okCount < queries.length) log.warn(summary, 'series relist finished with failures');
    else log.info(summary, 'series relist');
    // Naming problems repeat on every relist; say them again only when they change.
    const problemKey = problems.join('\n');
    if (problemKey !== this.#lastProblems) {
      this.#lastProblems = problemKey;
      for (const problem of problems) log.warn({ problem }, 'series discovery problem');
    }

    try {
      this.#options.onUpdate?.(result);
    } catch (err) {
      log.error({ err }, 'the series discovery update handler failed');
    }
    return result;
  }
}

function ms(since: number): number {
  return +(performance.now() - since).toFixed(2);
}
