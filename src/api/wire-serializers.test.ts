import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeMetricValueList } from './custom-metrics-wire.ts';
import { encodeExternalMetricValueList } from './external-metrics-wire.ts';
import { serializeExternalMetricValueList, serializeMetricValueList } from './wire-serializers.ts';
import type { ExternalMetricValue, MetricValue } from '../providers/types.ts';
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

describe('compiled wire serializers', () => {
  for (const version of ['v1beta1', 'v1beta2'] as const) {
    it(`write a ${version} MetricValueList byte for byte as JSON.stringify does`, () => {
      fc.assert(
        fc.property(fc.array(metricValue, { maxLength: 5 }), (values) => {
          let body: object;
          try {
            body = encodeMetricValueList(version, values);
          } catch {
            return; // selectors the wire cannot express are refused before serialization
          }
          assert.equal(serializeMetricValueList[version](body), JSON.stringify(body));
        }),
        FC_PARAMS,
      );
    });
  }

  it('write an ExternalMetricValueList byte for byte as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.array(externalValue, { maxLength: 5 }), (values) => {
        const body = encodeExternalMetricValueList(values);
        assert.equal(serializeExternalMetricValueList(body), JSON.stringify(body));
      }),
      FC_PARAMS,
    );
  });
});
