import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError } from '../errors.ts';
import {
  encodeExternalApiGroup,
  encodeExternalMetricValueList,
  encodeExternalResourceList,
  EXTERNAL_METRICS_API_GROUP,
} from './external-metrics-wire.ts';

describe('external.metrics.k8s.io wire encoding', () => {
  it('encodes an ExternalMetricValueList with sorted labels, second-precision time and canonical quantities', () => {
    const body = encodeExternalMetricValueList([
      { metric: 'queue_depth', labels: { queue: 'orders', __name__: 'queue_depth', env: 'prod' }, timestamp: 1_714_564_800.75, value: 1.5 },
      { metric: 'queue_depth', labels: {}, timestamp: 1_714_564_800, value: 2000 },
    ]);
    assert.equal(
      JSON.stringify(body),
      '{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[' +
        '{"metricName":"queue_depth","metricLabels":{"__name__":"queue_depth","env":"prod","queue":"orders"},"timestamp":"2024-05-01T12:00:00Z","value":"1500m"},' +
        '{"metricName":"queue_depth","metricLabels":{},"timestamp":"2024-05-01T12:00:00Z","value":"2k"}]}',
    );
    assert.deepEqual(encodeExternalMetricValueList([]), {
      kind: 'ExternalMetricValueList',
      apiVersion: 'external.metrics.k8s.io/v1beta1',
      metadata: {},
      items: [],
    });
  });

  it('refuses a value no Kubernetes quantity can carry with a 500 naming the metric', () => {
    assert.throws(
      () => encodeExternalMetricValueList([{ metric: 'huge', labels: {}, timestamp: 0, value: 1e19 }]),
      (err: unknown) => err instanceof InternalError && /external metric huge is 10000000000000000000, which cannot be sent/.test(err.message),
    );
  });

  it('encodes the discovery documents exactly as the contract shows them', () => {
    assert.equal(
      JSON.stringify(encodeExternalResourceList(['my-external-metric'])),
      '{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"external.metrics.k8s.io/v1beta1","resources":[' +
        '{"name":"my-external-metric","singularName":"","namespaced":true,"kind":"ExternalMetricValueList","verbs":["get"]}]}',
    );
    assert.equal(
      JSON.stringify(encodeExternalApiGroup()),
      '{"kind":"APIGroup","apiVersion":"v1","name":"external.metrics.k8s.io",' +
        '"versions":[{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}],' +
        '"preferredVersion":{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}}',
    );
    // The /apis entry has no kind or apiVersion of its own, and cannot be changed by whoever lists it.
    assert.deepEqual(Object.keys(EXTERNAL_METRICS_API_GROUP), ['name', 'versions', 'preferredVersion']);
    assert.ok(Object.isFrozen(EXTERNAL_METRICS_API_GROUP.versions) && Object.isFrozen(EXTERNAL_METRICS_API_GROUP.preferredVersion));
  });
});
