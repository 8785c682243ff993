import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeMetricValueList, writeMetricValueList } from './custom-metrics-wire.ts';
import { jsonBytes } from './json-response.ts';
import { encodeExternalMetricValueList } from './external-metrics-wire.ts';
import { encodeNodeMetricsList, encodePodMetricsList } from './resource-metrics-wire.ts';
import { serializeExternalMetricValueList, serializeNodeMetricsList, serializePodMetricsList } from './wire-serializers.ts';
import type { ExternalMetricValue, MetricValue } from '../providers/types.ts';
import type { NodeMetricsItem, PodMetricsItem } from '../providers/resource.ts';
import type { Requirement } from '../rules/selector.ts';

const FC_PARAMS = { seed: 20261125, numRuns: 300 } as const;

// Any text, including quotes, backslashes, control characters, HTML-significant and non-ASCII characters.
const anyText = fc.string({ unit: 'binary', maxLength: 12 });
const requirement: fc.Arbitrary<Requirement> = fc.oneof(
  fc.record({ key: anyText, operator: fc.constantFrom('Equals' as const, 'NotEquals' as const), values: fc.array(anyText, { minLength: 1, maxLength: 1 }) }),
  fc.record({ key: anyText, operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.uniqueArray(anyText, { minLength: 1, maxLength: 3 }) }),
  fc.record({ key: anyText, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const), values: fc.constant([] as string[]) }),
);
const value = fc.oneof(fc.double({ min: -9e15, max: 9e15, noNaN: true }), fc.integer({ min: -1e6, max: 1e6 }).map((k) => k / 1000));
const metricValue: fc.Arbitrary<MetricValue> = fc.record({
  describedObject: fc.record(
    { kind: anyText, apiVersion: anyText, namespace: anyText, name: anyText },
    { requiredKeys: ['kind', 'apiVersion', 'name'] },
  ),
  metric: anyText,
  metricSelector: fc.array(requirement, { maxLength: 3 }),
  timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
  windowSeconds: fc.option(fc.integer({ min: 1, max: 86_400 }), { nil: null }),
  value,
});
const externalValue: fc.Arbitrary<ExternalMetricValue> = fc.record({
  metric: anyText,
  labels: fc.dictionary(anyText, anyText, { maxKeys: 4 }),
  timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
  value,
});

// Answers mostly share everything but name and value, which the encoder shortcuts; each step here either keeps
// the frame or changes exactly one part of it, so a part the shortcut forgot to compare shows up as a wrong answer.
const frameChange = fc.oneof(
  fc.record({ kind: anyText }).map((c) => (v: MetricValue): MetricValue => ({ ...v, describedObject: { ...v.describedObject, ...c } })),
  fc.record({ apiVersion: anyText }).map((c) => (v: MetricValue): MetricValue => ({ ...v, describedObject: { ...v.describedObject, ...c } })),
  fc.option(anyText, { nil: undefined }).map((namespace) => (v: MetricValue): MetricValue => {
    const { namespace: _, ...ref } = v.describedObject;
    return { ...v, describedObject: namespace === undefined ? ref : { ...ref, namespace } };
  }),
  anyText.map((metric) => (v: MetricValue): MetricValue => ({ ...v, metric })),
  fc.array(requirement, { maxLength: 2 }).map((metricSelector) => (v: MetricValue): MetricValue => ({ ...v, metricSelector })),
  fc.integer({ min: 0, max: 4_000_000_000 }).map((timestamp) => (v: MetricValue): MetricValue => ({ ...v, timestamp })),
  fc.option(fc.integer({ min: 1, max: 86_400 }), { nil: null }).map((windowSeconds) => (v: MetricValue): MetricValue => ({ ...v, windowSeconds })),
);
const sharedFrameValues: fc.Arbitrary<MetricValue[]> = fc
  .tuple(metricValue, fc.array(fc.tuple(anyText, value, fc.option(frameChange, { nil: undefined })), { maxLength: 6 }))
  .map(([first, steps]) => {
    const out = [first];
    let frame = first;
    for (const [name, v, change] of steps) {
      if (change) frame = change(frame);
      out.push({ ...frame, describedObject: { ...frame.describedObject, name }, value: v });
    }
    return out;
  });

const labels = fc.dictionary(anyText, anyText, { maxKeys: 3 });
const podItem: fc.Arbitrary<PodMetricsItem> = fc.record({
  namespace: anyText,
  name: anyText,
  labels,
  timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
  windowSeconds: fc.integer({ min: 1, max: 3600 }),
  containers: fc.array(fc.record({ name: anyText, cpuCores: fc.double({ min: 0, max: 1e4, noNaN: true }), memoryBytes: fc.integer({ min: 0, max: 2 ** 40 }) }), { maxLength: 3 }),
});
const nodeItem: fc.Arbitrary<NodeMetricsItem> = fc.record({
  name: anyText,
  labels,
  timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
  windowSeconds: fc.integer({ min: 1, max: 3600 }),
  cpuCores: fc.double({ min: 0, max: 1e4, noNaN: true }),
  memoryBytes: fc.integer({ min: 0, max: 2 ** 40 }),
});

describe('wire encoders write exactly what JSON.stringify writes of the object form', () => {
  for (const version of ['v1beta1', 'v1beta2'] as const) {
    it(`${version} MetricValueList`, () => {
      fc.assert(
        fc.property(fc.oneof(fc.array(metricValue, { maxLength: 5 }), sharedFrameValues), (values) => {
          let body: object;
          try {
            body = encodeMetricValueList(version, values);
          } catch {
            assert.throws(() => writeMetricValueList(version, values)); // the same refusal, not a different answer
            return;
          }
          assert.equal(writeMetricValueList(version, values).toString('utf8'), jsonBytes(`${JSON.stringify(body)}\n`).toString('utf8'));
        }),
        FC_PARAMS,
      );
    });
  }

  it('MetricValueList whose later items outgrow the first one (the writer grows its buffer)', () => {
    const frame = { describedObject: { kind: 'Pod', apiVersion: '/v1', namespace: 'ns', name: 'a' }, metric: 'm', metricSelector: [], timestamp: 5, windowSeconds: null, value: 1 };
    const values: MetricValue[] = [frame, ...Array.from({ length: 50 }, (_, i) => ({ ...frame, describedObject: { ...frame.describedObject, name: `<\u00e9\u2028"${'x'.repeat(i * 40)}` }, value: i * 1e12 }))];
    for (const version of ['v1beta1', 'v1beta2'] as const) {
      assert.equal(writeMetricValueList(version, values).toString('utf8'), jsonBytes(`${JSON.stringify(encodeMetricValueList(version, values))}\n`).toString('utf8'));
    }
  });

  it('PodMetricsList and NodeMetricsList', () => {
    fc.assert(
      fc.property(fc.array(podItem, { maxLength: 4 }), fc.array(nodeItem, { maxLength: 4 }), fc.integer({ min: 0, max: 4_000_000_000 }), (pods, nodes, now) => {
        const podList = encodePodMetricsList(pods, now);
        assert.equal(serializePodMetricsList(podList), JSON.stringify(podList));
        const nodeList = encodeNodeMetricsList(nodes, now);
        assert.equal(serializeNodeMetricsList(nodeList), JSON.stringify(nodeList));
      }),
      FC_PARAMS,
    );
  });

  it('ExternalMetricValueList', () => {
    fc.assert(
      fc.property(fc.array(externalValue, { maxLength: 5 }), (values) => {
        const body = encodeExternalMetricValueList(values);
        assert.equal(serializeExternalMetricValueList(body), JSON.stringify(body));
      }),
      FC_PARAMS,
    );
  });
});
