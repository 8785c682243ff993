import type { CompiledTemplate } from '../rules/template.ts';

/**
 * One servable metric, whatever file format it came from. A native rule with several windows
 * yields one MetricRule per window; discovery-based formats yield them after a relist.
 */
export interface MetricRule {
  /** The name in API paths, e.g. `pod_cpu_used_1m`. */
  readonly metric: string;
  /** Where the rule came from, for error messages and logs: file, index and name. */
  readonly origin: string;
  /** The resource as written in the rule (`pods`, `deployments.apps`, `deployment`); normalised by the resource mapper. */
  readonly resource: string;
  /** Prometheus label that carries the object's name. */
  readonly objectLabel: string;
  /** Prometheus label that carries the namespace. */
  readonly namespaceLabel: string;
  readonly query: CompiledTemplate;
  /** Value of `<<.Series>>`. */
  readonly series: string;
  readonly window: { readonly text: string; readonly seconds: number } | null;
  /**
   * `namespace`: the query selects every object of the namespace and the adapter keeps the requested
   * ones, so the query text (and its cache entry) is the same for every label selector.
   * `objects`: the object names go into the query as a regex, as prometheus-adapter does; needed
   * only when the query's result for one object depends on which other objects are selected.
   */
  readonly queryScope: 'namespace' | 'objects';
  readonly description?: string;
}

export interface RuleSet {
  readonly file: string;
  readonly rules: readonly MetricRule[];
}
