import type { Selector } from '../rules/selector.ts';

/** --max-objects-per-request: most objects one `*` read or metrics.k8s.io list may cover. */
export const DEFAULT_MAX_OBJECTS_PER_REQUEST = 10_000;

/**
 * The provider seam of custom-metrics-apiserver: the HTTP layer calls these three methods and
 * knows nothing about Prometheus; providers know nothing about HTTP or wire versions.
 */
export interface CustomMetricInfo {
  readonly group: string;
  /** Plural resource, e.g. `pods`, `deployments`. */
  readonly resource: string;
  readonly namespaced: boolean;
  readonly metric: string;
}

export interface ObjectReference {
  readonly kind: string;
  /** `group/version`, with an empty group for core kinds (`/v1`), as custom-metrics-apiserver writes it. */
  readonly apiVersion: string;
  readonly namespace?: string;
  readonly name: string;
}

export interface MetricValue {
  readonly describedObject: ObjectReference;
  readonly metric: string;
  /** The metric label selector the value was computed with (empty: none). */
  readonly metricSelector: Selector;
  /** Unix seconds. */
  readonly timestamp: number;
  readonly windowSeconds: number | null;
  readonly value: number;
}

export interface ObjectName {
  /** null for root-scoped objects (nodes, namespaces). */
  readonly namespace: string | null;
  readonly name: string;
}

export interface CustomMetricsProvider {
  /** Metrics for discovery documents; never throws, always the last good list. */
  listAllMetrics(): readonly CustomMetricInfo[];
  /** One object's value; NotFoundError when the metric or a sample for the object is missing. */
  getMetricByName(object: ObjectName, info: MetricRequestInfo, metricSelector: Selector): Promise<MetricValue>;
  /**
   * One value per matching object that has data (possibly none). The same (frozen) array may be answered again
   * while its inputs are unchanged; callers must not modify it.
   */
  getMetricBySelector(
    namespace: string | null,
    objectSelector: Selector,
    info: MetricRequestInfo,
    metricSelector: Selector,
  ): Promise<readonly MetricValue[]>;
}

/** What a request names: the resource as written in the URL (`deployments.apps`) and the metric. */
export interface MetricRequestInfo {
  readonly resource: string;
  readonly metric: string;
}

/** One external.metrics.k8s.io value: a sample of the rule's query. */
export interface ExternalMetricValue {
  readonly metric: string;
  /** Every label of the sample (`__name__` included when the query keeps it); empty for a scalar. */
  readonly labels: Readonly<Record<string, string>>;
  /** Unix seconds: the evaluation time Prometheus reports. */
  readonly timestamp: number;
  /** Always finite. */
  readonly value: number;
}

/** The external-metrics seam, mirroring custom-metrics-apiserver's ExternalMetricsProvider. */
export interface ExternalMetricsProvider {
  /** Metric names for the discovery document; never throws, always the last good list. */
  listAllExternalMetrics(): string[];
  /** One value per sample; NotFoundError for an unknown metric, BadRequestError for a selector Prometheus cannot express. */
  getExternalMetric(namespace: string, metric: string, selector: Selector): Promise<ExternalMetricValue[]>;
}
