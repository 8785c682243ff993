import type { CustomMetricInfo, MetricValue, ObjectReference } from '../providers/types.ts';
import { toLabelSelectorObject } from '../rules/selector.ts';
import { formatDecimalQuantity, QuantityRangeError } from './quantity.ts';
import { InternalError } from '../errors.ts';

export const CUSTOM_METRICS_GROUP = 'custom.metrics.k8s.io';
export const CUSTOM_METRICS_VERSIONS = ['v1beta2', 'v1beta1'] as const;
export type CustomMetricsVersion = (typeof CUSTOM_METRICS_VERSIONS)[number];

let lastSecond = Number.NaN;
let lastText = '';

/** metav1.Time: RFC 3339 at second precision in UTC. */
export function rfc3339(unixSeconds: number): string {
  // Every value of one answer, and of the answers until the next evaluation, carries the same timestamp.
  const second = Math.floor(unixSeconds);
  if (second !== lastSecond) {
    lastText = new Date(second * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    lastSecond = second;
  }
  return lastText;
}

function describedObject(ref: ObjectReference): Record<string, string> {
  // Key order of v1.ObjectReference: kind, namespace, name, apiVersion.
  return {
    kind: ref.kind,
    ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}),
    name: ref.name,
    apiVersion: ref.apiVersion,
  };
}

function quantity(v: MetricValue): string {
  try {
    return formatDecimalQuantity(v.value);
  } catch (err) {
    if (err instanceof QuantityRangeError) {
      throw new InternalError(
        `the metric ${v.metric} for ${v.describedObject.name} is ${v.value}, which cannot be sent as a Kubernetes quantity (the HPA reads at most ±9.2e15)`,
      );
    }
    throw err;
  }
}

/** A MetricValueList in the shape of the requested version; both carry the same information. */
export function encodeMetricValueList(version: CustomMetricsVersion, values: readonly MetricValue[]): object {
  const items =
    version === 'v1beta2'
      ? values.map((v) => ({
          describedObject: describedObject(v.describedObject),
          metric: { name: v.metric, selector: toLabelSelectorObject(v.metricSelector) },
          timestamp: rfc3339(v.timestamp),
          ...(v.windowSeconds !== null ? { windowSeconds: v.windowSeconds } : {}),
          value: quantity(v),
        }))
      : values.map((v) => ({
          describedObject: describedObject(v.describedObject),
          metricName: v.metric,
          timestamp: rfc3339(v.timestamp),
          ...(v.windowSeconds !== null ? { window: v.windowSeconds } : {}),
          value: quantity(v),
          selector: toLabelSelectorObject(v.metricSelector),
        }));
  return { kind: 'MetricValueList', apiVersion: `${CUSTOM_METRICS_GROUP}/${version}`, metadata: {}, items };
}

export function encodeResourceList(version: CustomMetricsVersion, metrics: readonly CustomMetricInfo[]): object {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${CUSTOM_METRICS_GROUP}/${version}`,
    resources: metrics.map((m) => ({
      name: `${m.group ? `${m.resource}.${m.group}` : m.resource}/${m.metric}`,
      singularName: '',
      namespaced: m.namespaced,
      kind: 'MetricValueList',
      verbs: ['get'],
    })),
  };
}

export function encodeApiGroup(): object {
  const versions = CUSTOM_METRICS_VERSIONS.map((v) => ({ groupVersion: `${CUSTOM_METRICS_GROUP}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name: CUSTOM_METRICS_GROUP, versions, preferredVersion: versions[0] };
}

export function encodeApiGroupList(): object {
  const { kind: _k, apiVersion: _a, ...group } = encodeApiGroup() as Record<string, unknown>;
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group] };
}
