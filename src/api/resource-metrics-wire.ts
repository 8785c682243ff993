import type { NodeMetricsItem, PodMetricsItem } from '../providers/resource.ts';
import { rfc3339 } from './custom-metrics-wire.ts';
import { formatBinaryQuantity, formatDecimalQuantity } from './quantity.ts';
import { statusBody, type StatusBody } from './status.ts';

export const RESOURCE_METRICS_GROUP = 'metrics.k8s.io';
export const RESOURCE_METRICS_VERSION = 'v1beta1';
const GROUP_VERSION = `${RESOURCE_METRICS_GROUP}/${RESOURCE_METRICS_VERSION}`;

/** The group as an APIGroupList entry (no kind/apiVersion), for the app's `/apis`. */
export const METRICS_API_GROUP = {
  name: RESOURCE_METRICS_GROUP,
  versions: [{ groupVersion: GROUP_VERSION, version: RESOURCE_METRICS_VERSION }],
  preferredVersion: { groupVersion: GROUP_VERSION, version: RESOURCE_METRICS_VERSION },
} as const;

const UNITS: readonly [bigint, string][] = [
  [3_600_000_000_000n, 'h'],
  [60_000_000_000n, 'm'],
];

/** `n / unit` as Go prints a fraction: digits after the point without trailing zeros, none when whole. */
function fraction(n: bigint, unit: bigint, digits: number): string {
  const whole = n / unit;
  const rest = (n % unit).toString().padStart(digits, '0').replace(/0+$/, '');
  return rest ? `${whole}.${rest}` : `${whole}`;
}

/**
 * Go's time.Duration.String() (metav1.Duration's JSON form): `5m0s`, `1m0s`, `30s`, `1h0m0s`, `15.012s`,
 * `500ms`; clients parse it with time.ParseDuration. Rounded to whole nanoseconds like a Duration.
 */
export function goDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) throw new RangeError(`duration ${seconds} has no Go form`);
  let ns = BigInt(Math.round(seconds * 1e9));
  if (ns === 0n) return '0s';
  const sign = ns < 0n ? '-' : '';
  if (ns < 0n) ns = -ns;
  if (ns < 1_000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${fraction(ns, 1_000n, 3)}µs`;
  if (ns < 1_000_000_000n) return `${sign}${fraction(ns, 1_000_000n, 6)}ms`;
  let out = '';
  let rest = ns;
  let started = false;
  for (const [unit, suffix] of UNITS) {
    if (rest >= unit || started) {
      out += `${rest / unit}${suffix}`;
      rest %= unit;
      started = true;
    }
  }
  return `${sign}${out}${fraction(rest, 1_000_000_000n, 9)}s`;
}

/** Go encodes map keys sorted; JS keeps insertion order, so sort before serialising. */
function sortedLabels(labels: Readonly<Record<string, string>>): Record<string, string> | undefined {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = labels[k]!;
  return out;
}

function objectMeta(name: string, namespace: string | null, labels: Readonly<Record<string, string>>, nowSeconds: number): object {
  const sorted = sortedLabels(labels);
  // ObjectMeta key order; labels is omitempty.
  return {
    name,
    ...(namespace !== null ? { namespace } : {}),
    creationTimestamp: rfc3339(nowSeconds),
    ...(sorted ? { labels: sorted } : {}),
  };
}

function usage(cpuCores: number, memoryBytes: number): { cpu: string; memory: string } {
  return { cpu: formatDecimalQuantity(cpuCores), memory: formatBinaryQuantity(memoryBytes) };
}

export function encodePodMetrics(item: PodMetricsItem, nowSeconds: number): object {
  return {
    metadata: objectMeta(item.name, item.namespace, item.labels, nowSeconds),
    timestamp: rfc3339(item.timestamp),
    window: goDuration(item.windowSeconds),
    containers: item.containers.map((c) => ({ name: c.name, usage: usage(c.cpuCores, c.memoryBytes) })),
  };
}

export function encodeNodeMetrics(item: NodeMetricsItem, nowSeconds: number): object {
  return {
    metadata: objectMeta(item.name, null, item.labels, nowSeconds),
    timestamp: rfc3339(item.timestamp),
    window: goDuration(item.windowSeconds),
    usage: usage(item.cpuCores, item.memoryBytes),
  };
}

/** A single Get answers the item itself, with kind and apiVersion at the top like any Kubernetes object. */
export function encodePodMetricsObject(item: PodMetricsItem, nowSeconds: number): object {
  return { kind: 'PodMetrics', apiVersion: GROUP_VERSION, ...encodePodMetrics(item, nowSeconds) };
}

export function encodeNodeMetricsObject(item: NodeMetricsItem, nowSeconds: number): object {
  return { kind: 'NodeMetrics', apiVersion: GROUP_VERSION, ...encodeNodeMetrics(item, nowSeconds) };
}

export function encodePodMetricsList(items: readonly PodMetricsItem[], nowSeconds: number): object {
  return { kind: 'PodMetricsList', apiVersion: GROUP_VERSION, metadata: {}, items: items.map((i) => encodePodMetrics(i, nowSeconds)) };
}

export function encodeNodeMetricsList(items: readonly NodeMetricsItem[], nowSeconds: number): object {
  return { kind: 'NodeMetricsList', apiVersion: GROUP_VERSION, metadata: {}, items: items.map((i) => encodeNodeMetrics(i, nowSeconds)) };
}

export function encodeResourceMetricsResourceList(): object {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: GROUP_VERSION,
    resources: [
      { name: 'nodes', singularName: '', namespaced: false, kind: 'NodeMetrics', verbs: ['get', 'list'] },
      { name: 'pods', singularName: '', namespaced: true, kind: 'PodMetrics', verbs: ['get', 'list'] },
    ],
  };
}

export function encodeResourceMetricsApiGroup(): object {
  return { kind: 'APIGroup', apiVersion: 'v1', ...METRICS_API_GROUP };
}

/**
 * metrics-server's NotFound for a Get without data: group-resource `podmetrics`/`nodemetrics`, and for
 * pods the name `ns/name` (apierrors.NewNotFound).
 */
export function podMetricsNotFound(namespace: string, name: string): StatusBody {
  const qualified = `${namespace}/${name}`;
  return statusBody(404, 'NotFound', `podmetrics.${RESOURCE_METRICS_GROUP} "${qualified}" not found`, {
    name: qualified,
    group: RESOURCE_METRICS_GROUP,
    kind: 'podmetrics',
  });
}

export function nodeMetricsNotFound(name: string): StatusBody {
  return statusBody(404, 'NotFound', `nodemetrics.${RESOURCE_METRICS_GROUP} "${name}" not found`, {
    name,
    group: RESOURCE_METRICS_GROUP,
    kind: 'nodemetrics',
  });
}
