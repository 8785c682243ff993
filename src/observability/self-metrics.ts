import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AdapterError } from '../errors.ts';

/** Every family this module exports starts with it, the Node process metrics included. */
export const METRIC_PREFIX = 'prometheus_metrics_adapter_';

/** Replaces label values past the per-metric cap, so a flood of new values costs one series, not one each. */
export const OTHER_LABEL_VALUE = 'other';

export type PrometheusQueryOutcome = 'success' | 'error' | 'timeout' | 'unavailable' | 'bad_query';
export type CacheResult = 'hit' | 'miss' | 'coalesced';
export type ConfigReloadOutcome = 'success' | 'failure';

export interface RelistRuleStats {
  readonly rule: string;
  /** Series the rule's seriesQuery returned (or kept from the last good relist). */
  readonly series: number;
  /** Metrics the rule serves after naming. */
  readonly metrics: number;
}

export interface SelfMetricsOptions {
  /** Distinct values one label of one metric may take before the rest are folded into `other`. Default 1000. */
  readonly maxLabelValues?: number;
  /** Node process metrics (memory, CPU, event loop, GC). Default true. */
  readonly processMetrics?: boolean;
  /** Wall clock, ms; tests fix it to get exact timestamps. */
  readonly now?: () => number;
}

const DEFAULT_MAX_LABEL_VALUES = 1000;
/** Prometheus keeps label values whole; a runaway string would be stored in every sample's series. */
const MAX_LABEL_VALUE_LENGTH = 256;

// From a cached answer (sub-millisecond) to a request that waited out a slow Prometheus.
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Prometheus answers simple instant queries in a millisecond or two; --prometheus-timeout may reach tens of seconds.
const QUERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
// A relist asks /api/v1/series once per distinct seriesQuery; big clusters take seconds.
const RELIST_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
// A healthy value is a scrape interval or two old; past an hour it is useless to an autoscaler.
const VALUE_AGE_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * Admits the first `max` distinct values of one label; later ones become `other`. Values never leave, so a
 * series that once existed keeps its identity for the life of the process.
 */
class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  value(raw: string): string {
    const v = normalise(raw);
    if (this.#seen.has(v)) return v;
    if (this.#seen.size >= this.#max) return OTHER_LABEL_VALUE;
    this.#seen.add(v);
    return v;
  }
}

function normalise(raw: string): string {
  if (raw === '') return 'unknown';
  return raw.length > MAX_LABEL_VALUE_LENGTH ? `${raw.slice(0, MAX_LABEL_VALUE_LENGTH - 3)}...` : raw;
}

/** Negative ages and durations come from clock steps; recording them would corrupt the histograms' sums. */
function nonNegative(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

/**
 * The adapter's own metrics, in a registry of their own: a library in the same process that registers into
 * prom-client's global registry can neither collide with nor leak into these.
 */
export class SelfMetrics {
  readonly registry: Registry;
  readonly #now: () => number;
  readonly #max: number;
  readonly #scrapeHooks: (() => void)[] = [];

  readonly #requestDuration: Histogram<'group' | 'code'>;
  readonly #requests: Counter<'group' | 'code'>;
  readonly #requestGroup: BoundedLabel;

  readonly #queryDuration: Histogram<'rule' | 'backend' | 'outcome'>;
  readonly #queries: Counter<'rule' | 'backend' | 'outcome'>;
  readonly #queryRule: BoundedLabel;
  readonly #queryBackend: BoundedLabel;

  readonly #cache: Counter<'result'>;

  readonly #relistDuration: Histogram;
  readonly #relistFailures: Counter;
  readonly #relistLastSuccess: Gauge;
  readonly #discoverySeries: Gauge<'rule'>;
  readonly #discoveryMetrics: Gauge<'rule'>;

  readonly #configReloads: Counter<'outcome'>;
  readonly #configLastSuccess: Gauge;
  readonly #configRules: Gauge;

  readonly #valueAge: Histogram<'rule'>;
  readonly #valueAgeRule: BoundedLabel;

  readonly #objectCacheStaleness: Gauge<'resource'>;
  readonly #objectCacheResource: BoundedLabel;

  readonly #inflight: Gauge;
  readonly #queued: Gauge;

  constructor(options: SelfMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#max = Math.max(1, options.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES);
    this.registry = new Registry();
    const registers = [this.registry];
    const p = METRIC_PREFIX;

    this.#requestDuration = new Histogram({
      name: `${p}requests_duration_seconds`,
      help: 'Time to answer an API request, by API group and HTTP status code.',
      labelNames: ['group', 'code'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.#requests = new Counter({
      name: `${p}requests_total`,
      help: 'API requests answered, by API group and HTTP status code.',
      labelNames: ['group', 'code'],
      registers,
    });
    this.#requestGroup = new BoundedLabel(this.#max);

    this.#queryDuration = new Histogram({
      name: `${p}prometheus_query_duration_seconds`,
      help: 'Time Prometheus took to answer an instant query sent for a rule, by outcome. Cached answers are not included.',
      labelNames: ['rule', 'backend', 'outcome'],
      buckets: QUERY_BUCKETS,
      registers,
    });
    this.#queries = new Counter({
      name: `${p}prometheus_queries_total`,
      help: 'Instant queries sent to Prometheus, by rule, backend and outcome.',
      labelNames: ['rule', 'backend', 'outcome'],
      registers,
    });
    this.#queryRule = new BoundedLabel(this.#max);
    this.#queryBackend = new BoundedLabel(this.#max);

    this.#cache = new Counter({
      name: `${p}query_cache_requests_total`,
      help: 'Query lookups by result: hit (answered from the cache), miss (sent to Prometheus), coalesced (shared a query already in flight).',
      labelNames: ['result'],
      registers,
    });
    // Present from the first scrape, so rate() and hit ratios work before the first request arrives.
    for (const result of ['hit', 'miss', 'coalesced'] as const) this.#cache.inc({ result }, 0);

    this.#relistDuration = new Histogram({
      name: `${p}discovery_relist_duration_seconds`,
      help: 'Time a series discovery relist took, failed ones included.',
      buckets: RELIST_BUCKETS,
      registers,
    });
    this.#relistFailures = new Counter({
      name: `${p}discovery_relist_failures_total`,
      help: 'Series discovery relists in which at least one series query failed.',
      registers,
    });
    this.#relistFailures.inc(0);
    this.#relistLastSuccess = new Gauge({
      name: `${p}discovery_last_success_timestamp_seconds`,
      help: 'Unix time of the end of the last relist without failures; 0 if there was none.',
      registers,
    });
    this.#discoverySeries = new Gauge({
      name: `${p}discovery_series`,
      help: 'Series found by the last relist, by rule.',
      labelNames: ['rule'],
      registers,
    });
    this.#discoveryMetrics = new Gauge({
      name: `${p}discovery_metrics`,
      help: 'Metrics served after the last relist, by rule.',
      labelNames: ['rule'],
      registers,
    });

    this.#configReloads = new Counter({
      name: `${p}config_reloads_total`,
      help: 'Rule file loads (the first one included), by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['success', 'failure'] as const) this.#configReloads.inc({ outcome }, 0);
    this.#configLastSuccess = new Gauge({
      name: `${p}config_last_reload_success_timestamp_seconds`,
      help: 'Unix time of the last successful rule file load; 0 if there was none.',
      registers,
    });
    this.#configRules = new Gauge({
      name: `${p}config_rules`,
      help: 'Rules in the rule file being served.',
      registers,
    });

    this.#valueAge = new Histogram({
      name: `${p}value_age_seconds`,
      help: 'Age of the values served (now minus the sample timestamp), by rule.',
      labelNames: ['rule'],
      buckets: VALUE_AGE_BUCKETS,
      registers,
    });
    this.#valueAgeRule = new BoundedLabel(this.#max);

    this.#objectCacheStaleness = new Gauge({
      name: `${p}object_cache_staleness_seconds`,
      help: 'Time since the Kubernetes object cache of a resource last heard from the API server (list or watch event).',
      labelNames: ['resource'],
      registers,
    });
    this.#objectCacheResource = new BoundedLabel(this.#max);

    this.#inflight = new Gauge({
      name: `${p}prometheus_inflight_queries`,
      help: 'Queries sent to Prometheus and not answered yet.',
      registers,
    });
    this.#queued = new Gauge({
      name: `${p}prometheus_queued_queries`,
      help: 'Queries waiting for a free slot before being sent to Prometheus.',
      registers,
    });

    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: p });
  }

  /** One answered API request; `apiGroup` should come from `apiGroupOfPath` so that it stays bounded. */
  observeRequest(apiGroup: string, code: number, seconds: number): void {
    const labels = { group: this.#requestGroup.value(apiGroup), code: statusCodeLabel(code) };
    this.#requestDuration.observe(labels, nonNegative(seconds));
    this.#requests.inc(labels);
  }

  /** One query that reached Prometheus (not a cache hit, not a coalesced wait); `outcome` from `queryOutcome`. */
  observePrometheusQuery(rule: string, backend: string, outcome: PrometheusQueryOutcome, seconds: number): void {
    const labels = { rule: this.#queryRule.value(rule), backend: this.#queryBackend.value(backend), outcome };
    this.#queryDuration.observe(labels, nonNegative(seconds));
    this.#queries.inc(labels);
  }

  cacheResult(result: CacheResult): void {
    this.#cache.inc({ result });
  }

  /**
   * One relist. The per-rule gauges are replaced as a whole, so a rule that left the configuration stops
   * being exported; rules past the cap are summed into `other`.
   */
  observeRelist(seconds: number, perRule: readonly RelistRuleStats[], ok: boolean): void {
    this.#relistDuration.observe(nonNegative(seconds));
    if (ok) this.#relistLastSuccess.set(this.#now() / 1000);
    else this.#relistFailures.inc();
    const series = new Map<string, number>();
    const metrics = new Map<string, number>();
    for (const entry of perRule) {
      let rule = normalise(entry.rule);
      if (!series.has(rule) && series.size >= this.#max) rule = OTHER_LABEL_VALUE;
      series.set(rule, (series.get(rule) ?? 0) + entry.series);
      metrics.set(rule, (metrics.get(rule) ?? 0) + entry.metrics);
    }
    this.#discoverySeries.reset();
    this.#discoveryMetrics.reset();
    for (const [rule, n] of series) this.#discoverySeries.set({ rule }, n);
    for (const [rule, n] of metrics) this.#discoveryMetrics.set({ rule }, n);
  }

  /** A rule file load. `rules`: how many rules are served afterwards (after a failure, those of the file kept). */
  configReload(outcome: ConfigReloadOutcome, rules: number): void {
    this.#configReloads.inc({ outcome });
    if (outcome === 'success') this.#configLastSuccess.set(this.#now() / 1000);
    this.#configRules.set(rules);
  }

  observeValueAge(rule: string, seconds: number): void {
    this.#valueAge.observe({ rule: this.#valueAgeRule.value(rule) }, nonNegative(seconds));
  }

  objectCacheStaleness(resource: string, seconds: number): void {
    this.#objectCacheStaleness.set({ resource: this.#objectCacheResource.value(resource) }, nonNegative(seconds));
  }

  prometheusInflight(n: number): void {
    this.#inflight.set(n);
  }

  prometheusQueued(n: number): void {
    this.#queued.set(n);
  }

  /**
   * Runs `hook` at the start of every scrape: the place to sample values that change continuously (cache
   * staleness, queue lengths) instead of updating a gauge on every event.
   */
  onScrape(hook: () => void): void {
    this.#scrapeHooks.push(hook);
  }

  /** The exposition text; a failing scrape hook leaves its gauges as they were rather than failing the scrape. */
  async scrape(): Promise<string> {
    for (const hook of this.#scrapeHooks) {
      try {
        hook();
      } catch {
        // A broken hook must not hide every other metric; its gauges simply keep their last value.
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A status code as a label; anything outside HTTP's range is one value, not one per garbage number. */
function statusCodeLabel(code: number): string {
  return Number.isInteger(code) && code >= 100 && code <= 599 ? String(code) : 'invalid';
}

const API_GROUP_PATH = /^\/apis\/([^/?]+)/;
const KNOWN_GROUPS = new Set(['custom.metrics.k8s.io', 'external.metrics.k8s.io', 'metrics.k8s.io']);
const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);

/**
 * The `group` label for a request URL: one of the served API groups, `discovery` for `/apis` and `/api`,
 * `health` for probes, `other` for anything else. Clients choose URLs, so the label is derived from a
 * fixed set rather than from the path itself.
 */
export function apiGroupOfPath(url: string): string {
  const path = url.split('?', 1)[0]!;
  const match = API_GROUP_PATH.exec(path);
  if (match) return KNOWN_GROUPS.has(match[1]!) ? match[1]! : OTHER_LABEL_VALUE;
  if (path === '/apis' || path === '/apis/' || path === '/api' || path.startsWith('/api/') || path === '/openapi/v2' || path.startsWith('/openapi/')) {
    return 'discovery';
  }
  if (HEALTH_PATHS.has(path)) return 'health';
  return OTHER_LABEL_VALUE;
}

/**
 * The outcome label for a query that settled: `err` null or undefined for success. Follows the errors the
 * Prometheus client throws: 504 timed out, 503 unreachable or failing, 500 rejected the query (or returned
 * something that is not an instant vector, which is also the rule's fault).
 */
export function queryOutcome(err: unknown): PrometheusQueryOutcome {
  if (err === null || err === undefined) return 'success';
  if (err instanceof AdapterError) {
    if (err.code === 504) return 'timeout';
    if (err.code === 503) return 'unavailable';
    if (err.code === 500) return 'bad_query';
  }
  return 'error';
}
