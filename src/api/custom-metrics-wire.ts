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

function encodeItem(version: CustomMetricsVersion, v: MetricValue, value: string): object {
  return version === 'v1beta2'
    ? {
        describedObject: describedObject(v.describedObject),
        metric: { name: v.metric, selector: toLabelSelectorObject(v.metricSelector) },
        timestamp: rfc3339(v.timestamp),
        ...(v.windowSeconds !== null ? { windowSeconds: v.windowSeconds } : {}),
        value,
      }
    : {
        describedObject: describedObject(v.describedObject),
        metricName: v.metric,
        timestamp: rfc3339(v.timestamp),
        ...(v.windowSeconds !== null ? { window: v.windowSeconds } : {}),
        value,
        selector: toLabelSelectorObject(v.metricSelector),
      };
}

/** A MetricValueList in the shape of the requested version; both carry the same information. */
export function encodeMetricValueList(version: CustomMetricsVersion, values: readonly MetricValue[]): object {
  const items = values.map((v) => encodeItem(version, v, quantity(v)));
  return { kind: 'MetricValueList', apiVersion: `${CUSTOM_METRICS_GROUP}/${version}`, metadata: {}, items };
}

// Placeholders no object name or quantity can contain; JSON.stringify writes them as `"\u0000N"` and `"\u0000V"`.
const NAME_SLOT = JSON.stringify('\u0000N');
const VALUE_SLOT = JSON.stringify('\u0000V');

/** Whether two values share everything but the object name and the value: kind, namespace, metric, selector, time. */
function sameFrame(a: MetricValue, b: MetricValue): boolean {
  return (
    a.describedObject.kind === b.describedObject.kind &&
    a.describedObject.apiVersion === b.describedObject.apiVersion &&
    a.describedObject.namespace === b.describedObject.namespace &&
    a.metric === b.metric &&
    a.metricSelector === b.metricSelector &&
    Math.floor(a.timestamp) === Math.floor(b.timestamp) &&
    a.windowSeconds === b.windowSeconds
  );
}

/**
 * The compact JSON of encodeMetricValueList, byte for byte, without building an object per item: the values of
 * one answer differ only in object name and value, so each run of equal frames is written once through
 * JSON.stringify with placeholders, and every item is that text with its name and value put in: no object per
 * item, and no serializer walking one.
 */
export function writeMetricValueList(version: CustomMetricsVersion, values: readonly MetricValue[]): string {
  const items: string[] = [];
  let frame: MetricValue | undefined;
  let parts: [string, string, string] = ['', '', ''];
  for (const v of values) {
    if (frame === undefined || !sameFrame(frame, v)) {
      frame = v;
      const text = JSON.stringify(encodeItem(version, { ...v, describedObject: { ...v.describedObject, name: '\u0000N' } }, '\u0000V'));
      const name = text.indexOf(NAME_SLOT);
      const value = text.indexOf(VALUE_SLOT, name);
      parts = [text.slice(0, name), text.slice(name + NAME_SLOT.length, value), text.slice(value + VALUE_SLOT.length)];
    }
    // Quantities are digits with an optional suffix letter: nothing in them needs escaping.
    items.push(`${parts[0]}${JSON.stringify(v.describedObject.name)}${parts[1]}"${quantity(v)}"${parts[2]}`);
  }
  return `{"kind":"MetricValueList","apiVersion":"${CUSTOM_METRICS_GROUP}/${version}","metadata":{},"items":[${items.join(',')}]}`;
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
