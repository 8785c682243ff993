import type { ExternalMetricValue } from '../providers/types.ts';
import { InternalError } from '../errors.ts';
import { rfc3339 } from './custom-metrics-wire.ts';
import { formatDecimalQuantity, QuantityRangeError } from './quantity.ts';

export const EXTERNAL_METRICS_GROUP = 'external.metrics.k8s.io';
export const EXTERNAL_METRICS_VERSION = 'v1beta1';
const GROUP_VERSION = `${EXTERNAL_METRICS_GROUP}/${EXTERNAL_METRICS_VERSION}`;

/** The group as it appears inside an APIGroupList (`/apis`): no kind or apiVersion of its own. */
const VERSION_ENTRY = Object.freeze({ groupVersion: GROUP_VERSION, version: EXTERNAL_METRICS_VERSION });
export const EXTERNAL_METRICS_API_GROUP = Object.freeze({
  name: EXTERNAL_METRICS_GROUP,
  versions: Object.freeze([VERSION_ENTRY]),
  preferredVersion: VERSION_ENTRY,
});

/** `/apis/external.metrics.k8s.io`. */
export function encodeExternalApiGroup(): object {
  return { kind: 'APIGroup', apiVersion: 'v1', ...EXTERNAL_METRICS_API_GROUP };
}

/** `/apis/external.metrics.k8s.io/v1beta1`: every metric is namespaced, since the route always names a namespace. */
export function encodeExternalResourceList(metrics: readonly string[]): object {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: GROUP_VERSION,
    resources: metrics.map((name) => ({ name, singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] })),
  };
}

function sortedLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  // Go's encoder writes map keys sorted; clients do not care, but byte-identical bodies are easier to compare.
  const out: Record<string, string> = {};
  for (const key of Object.keys(labels).sort()) out[key] = labels[key]!;
  return out;
}

function quantity(v: ExternalMetricValue): string {
  try {
    return formatDecimalQuantity(v.value);
  } catch (err) {
    if (err instanceof QuantityRangeError) {
      throw new InternalError(
        `the external metric ${v.metric} is ${v.value}, which cannot be sent as a Kubernetes quantity (the HPA reads at most ±9.2e15)`,
      );
    }
    throw err;
  }
}

export function encodeExternalMetricValueList(values: readonly ExternalMetricValue[]): object {
  return {
    kind: 'ExternalMetricValueList',
    apiVersion: GROUP_VERSION,
    metadata: {},
    items: values.map((v) => ({
      metricName: v.metric,
      metricLabels: sortedLabels(v.labels),
      timestamp: rfc3339(v.timestamp),
      value: quantity(v),
    })),
  };
}
