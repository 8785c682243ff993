import type { CustomMetricInfo, MetricValue, ObjectReference } from '../providers/types.ts';
import { toLabelSelectorObject } from '../rules/selector.ts';
import { formatDecimalQuantity, QuantityRangeError } from './quantity.ts';
import { InternalError } from '../errors.ts';
import { htmlSafe } from './json-response.ts';

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

/** The finished bytes of one item around its name and its value: `{..."name":` NAME `,..."value":"` VALUE `"...}`. */
interface Frame {
  readonly beforeName: Buffer;
  readonly beforeValue: Buffer;
  readonly afterValue: Buffer;
}

function frameOf(version: CustomMetricsVersion, v: MetricValue): Frame {
  const text = htmlSafe(JSON.stringify(encodeItem(version, { ...v, describedObject: { ...v.describedObject, name: '\u0000N' } }, '\u0000V')));
  const name = text.indexOf(NAME_SLOT);
  const value = text.indexOf(VALUE_SLOT, name);
  return {
    beforeName: Buffer.from(text.slice(0, name)),
    beforeValue: Buffer.from(`${text.slice(name + NAME_SLOT.length, value)}"`),
    afterValue: Buffer.from(`"${text.slice(value + VALUE_SLOT.length)}`),
  };
}

/** A Buffer written front to back that doubles when an item does not fit. */
class ByteWriter {
  buffer: Buffer;
  length = 0;

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** The bytes written; copied when the buffer grew well past them, since answers may be kept for reuse. */
  finished(): Buffer {
    const written = this.buffer.subarray(0, this.length);
    return this.buffer.length > this.length * 1.25 ? Buffer.from(written) : written;
  }

  /** Needs `bytes.length` reserved. */
  bytes(bytes: Buffer): void {
    const n = bytes.length;
    // A call into TypedArray#set costs more than copying a few bytes by hand (an item's `"}` ends, say).
    if (n < 16) {
      const { buffer } = this;
      for (let i = 0, at = this.length; i < n; i++) buffer[at++] = bytes[i]!;
    } else {
      this.buffer.set(bytes, this.length);
    }
    this.length += n;
  }

  /** Needs `text.length` reserved; the text is ASCII. */
  ascii(text: string): void {
    const { buffer } = this;
    let at = this.length;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.length = at;
  }

  /** A JSON string, HTML-safe: directly when every character stands for itself, else through JSON.stringify. */
  jsonString(text: string): void {
    this.reserve(text.length + 2);
    const { buffer } = this;
    let at = this.length;
    buffer[at++] = QUOTE;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH || c === LT || c === GT || c === AMP) {
        const escaped = Buffer.from(htmlSafe(JSON.stringify(text)));
        this.reserve(escaped.length);
        this.bytes(escaped);
        return;
      }
      buffer[at++] = c;
    }
    buffer[at++] = QUOTE;
    this.length = at;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LT = 0x3c;
const GT = 0x3e;
const AMP = 0x26;
const COMMA = 0x2c;

/**
 * What jsonBytes() makes of `JSON.stringify(encodeMetricValueList(...))` and a newline, byte for byte, written
 * straight into one Buffer: the values of one answer differ only in object name and value, so each run of equal
 * frames is encoded once (through JSON.stringify, with placeholders) and every item is that frame's bytes with its
 * name and value put in. Object names are plain ASCII and copied as they are; anything else takes JSON.stringify.
 */
export function writeMetricValueList(version: CustomMetricsVersion, values: readonly MetricValue[]): Buffer {
  const head = Buffer.from(`{"kind":"MetricValueList","apiVersion":"${CUSTOM_METRICS_GROUP}/${version}","metadata":{},"items":[`);
  let frameValue = values[0];
  let frame = frameValue === undefined ? undefined : frameOf(version, frameValue);
  // Every item about as long as the first (its value given a few digits more); the writer grows if not.
  const itemBytes =
    frame === undefined ? 0 : frame.beforeName.length + frameValue!.describedObject.name.length + frame.beforeValue.length + frame.afterValue.length + 32;
  const out = new ByteWriter(head.length + values.length * itemBytes + 3);
  out.bytes(head);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!sameFrame(frameValue!, v)) {
      frameValue = v;
      frame = frameOf(version, v);
    }
    const { beforeName, beforeValue, afterValue } = frame!;
    const value = quantity(v);
    if (i > 0) {
      out.reserve(1);
      out.buffer[out.length++] = COMMA;
    }
    out.reserve(beforeName.length);
    out.bytes(beforeName);
    out.jsonString(v.describedObject.name);
    out.reserve(beforeValue.length + value.length + afterValue.length);
    out.bytes(beforeValue);
    // Quantities are digits with an optional sign, point and suffix letter: nothing in them needs escaping.
    out.ascii(value);
    out.bytes(afterValue);
  }
  out.reserve(3);
  out.ascii(']}\n');
  return out.finished();
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
