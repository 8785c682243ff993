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
  /** Name of an entry of the file's `backends`; absent for the backend the command-line flags describe. */
  readonly backend?: string;
  /**
   * Values served instead of an error (`noData`/`nan`/`inf: zero|fallback`); an absent key keeps the default,
   * which is no value: 404 / 500 for a named object, left out of lists.
   */
  readonly substitute?: { readonly noData?: number; readonly nan?: number; readonly inf?: number };
  /** The rule's own query cache lifetime; absent: --query-cache-ttl. */
  readonly cacheTtlMs?: number;
  /**
   * Stale-data protection: a value whose newest raw sample of `series` is older than this (seconds) is
   * refused, however the query computed it (a rate over a window can outlive its target by minutes).
   */
  readonly maxSampleAgeSeconds?: number;
  /** `max by (<object label>) (timestamp(<series>{<matchers>}))`, compiled when maxSampleAge is set. */
  readonly freshnessQuery?: CompiledTemplate;
}

/**
 * A Prometheus-compatible backend named in a native rule file. File paths are absolute (resolved
 * against the rule file's directory at load time).
 */
export interface BackendConfig {
  readonly url: string;
  readonly bearerTokenFile?: string;
  readonly basicAuth?: { readonly username: string; readonly passwordFile: string };
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string; readonly insecureSkipVerify?: boolean };
  readonly headers?: Readonly<Record<string, string>>;
  readonly queryParams?: Readonly<Record<string, string>>;
}

/**
 * prometheus-adapter's resource association: which Prometheus labels name which Kubernetes
 * resources. `overrides` win; `template` (`<<.Group>>`, `<<.Resource>>`) covers the rest.
 */
export interface ResourceAssociation {
  /** Prometheus label → resource as written (`namespace`, `pod`, `deployments.apps`, group + resource). */
  readonly overrides: Readonly<Record<string, { readonly group?: string; readonly resource: string }>>;
  /** The raw template text, e.g. `kube_<<.Group>>_<<.Resource>>`; null when not given. */
  readonly template: string | null;
  /** externalRules only: false leaves the request's namespace out of the query. */
  readonly namespaced: boolean;
}

/**
 * A prometheus-adapter `rules` or `externalRules` entry, compiled. Which metrics it serves is only
 * known after series discovery (`/api/v1/series` with `seriesQuery`).
 */
export interface SeriesRule {
  /** `<file> rules[3]` or `<file> externalRules[0]`, for messages. */
  readonly origin: string;
  readonly kind: 'custom' | 'external';
  /** Sent verbatim as `match[]`; rules with the same text share one call per relist. */
  readonly seriesQuery: string;
  /** Series-name filters in order, `name.matches` included as the first `is` filter. RE2 semantics, unanchored. */
  readonly seriesFilters: readonly { readonly is?: RegExp; readonly isNot?: RegExp }[];
  readonly resources: ResourceAssociation;
  /** name.matches (default `.*`) and name.as (default `$0` / `$1`), Go regexp.Expand syntax. */
  readonly name: { readonly matches: RegExp; readonly as: string };
  /** Fields: Series, LabelMatchers, LabelValuesByName, GroupBy, GroupBySlice. */
  readonly metricsQuery: CompiledTemplate;
}

/** One of `resourceRules.cpu` / `resourceRules.memory`. */
export interface ResourceMetricRule {
  readonly containerQuery: CompiledTemplate;
  readonly nodeQuery: CompiledTemplate;
  readonly resources: ResourceAssociation;
  /** Label that names the container in containerQuery results. */
  readonly containerLabel: string;
}

/** `resourceRules`: serves metrics.k8s.io (kubectl top, HPA Resource metrics). */
export interface ResourceRules {
  readonly origin: string;
  readonly cpu: ResourceMetricRule;
  readonly memory: ResourceMetricRule;
  /** Echoed as PodMetrics/NodeMetrics `window`. */
  readonly window: { readonly text: string; readonly seconds: number };
}

/**
 * An external metric found by discovery: external.metrics.k8s.io serves it by name, in any
 * namespace the request names.
 */
export interface ExternalMetricRule {
  readonly metric: string;
  readonly origin: string;
  readonly series: string;
  readonly query: CompiledTemplate;
  /** Label the request's namespace is matched on; null when the rule is not namespaced. */
  readonly namespaceLabel: string | null;
}

/** Everything a rule file defines, whatever its format. */
export interface RuleFile {
  readonly file: string;
  /** Metrics known from the file alone (native format). */
  readonly metrics: readonly MetricRule[];
  /** Discovery-based rules (prometheus-adapter format): metrics appear after a relist. */
  readonly seriesRules: readonly SeriesRule[];
  readonly resourceRules: ResourceRules | null;
  /** The native file's `backends`, by name; absent when it has none. */
  readonly backends?: Readonly<Record<string, BackendConfig>>;
}
