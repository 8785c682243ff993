import type { RelistRuleStats } from './self-metrics.ts';

/** The parts of a prometheus-adapter rule these helpers read (config/model.ts SeriesRule). */
export interface SeriesRuleRef {
  readonly origin: string;
  readonly seriesQuery: string;
}

/** The parts of a relist result these helpers read (prometheus/series-discovery.ts DiscoveryResult). */
export interface RelistResultRef {
  readonly custom: readonly { readonly origin: string }[];
  readonly external: readonly { readonly origin: string }[];
  readonly perQuery: readonly { readonly query: string; readonly series: number; readonly ok: boolean }[];
}

/**
 * Discovered metrics carry `<series rule origin> (<series name>)` as their origin: one value per series
 * name Prometheus happens to have. Labelling self-metrics with that would let the cluster's series, not the
 * rule file, decide the cardinality; this maps such origins back to the rule that made them.
 */
export class RuleLabels {
  readonly #prefixes: readonly [prefix: string, origin: string][];

  constructor(seriesRules: readonly Pick<SeriesRuleRef, 'origin'>[]) {
    this.#prefixes = seriesRules.map((r) => [`${r.origin} (`, r.origin]);
  }

  /** The rule label for a rule's origin: its series rule for a discovered metric, else the origin itself. */
  of(origin: string): string {
    for (const [prefix, rule] of this.#prefixes) if (origin.startsWith(prefix)) return rule;
    return origin;
  }
}

/** Per series rule: the series its seriesQuery found (shared queries count for each rule) and the metrics it serves. */
export function relistRuleStats(seriesRules: readonly SeriesRuleRef[], result: RelistResultRef): RelistRuleStats[] {
  const seriesByQuery = new Map(result.perQuery.map((q) => [q.query, q.series]));
  const labels = new RuleLabels(seriesRules);
  const metrics = new Map<string, number>();
  for (const m of [...result.custom, ...result.external]) {
    const rule = labels.of(m.origin);
    metrics.set(rule, (metrics.get(rule) ?? 0) + 1);
  }
  return seriesRules.map((r) => ({ rule: r.origin, series: seriesByQuery.get(r.seriesQuery) ?? 0, metrics: metrics.get(r.origin) ?? 0 }));
}
