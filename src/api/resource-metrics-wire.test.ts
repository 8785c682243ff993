import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { NodeMetricsItem, ObjectFilter, PodMetricsItem, ResourceMetricsSource } from '../providers/resource.ts';
import type { Selector } from '../rules/selector.ts';
import { sendJson } from './json-response.ts';
import { registerResourceMetricsRoutes } from './resource-metrics-routes.ts';
import {
  encodeNodeMetricsList,
  encodePodMetricsList,
  encodePodMetricsObject,
  goDuration,
  METRICS_API_GROUP,
  podMetricsNotFound,
} from './resource-metrics-wire.ts';
import { toStatus } from './status.ts';

describe('goDuration', () => {
  it('prints like Go time.Duration.String()', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [30, '30s'],
      [60, '1m0s'],
      [300, '5m0s'],
      [90, '1m30s'],
      [3600, '1h0m0s'],
      [3661, '1h1m1s'],
      [86400, '24h0m0s'],
      [15.012, '15.012s'],
      [60.5, '1m0.5s'],
      [0.5, '500ms'],
      [0.0015, '1.5ms'],
      [0.000002, '2µs'],
      [1e-9, '1ns'],
      [-90, '-1m30s'],
    ];
    for (const [seconds, text] of cases) assert.equal(goDuration(seconds), text, String(seconds));
  });
});

const pod: PodMetricsItem = {
  namespace: 'team-a',
  name: 'web-1',
  labels: { tier: 'x', app: 'web' },
  timestamp: 1714564800.75,
  windowSeconds: 300,
  containers: [
    { name: 'app', cpuCores: 0.25, memoryBytes: 100 * 1024 * 1024 },
    { name: 'sidecar', cpuCores: 0.001234567, memoryBytes: 1000 },
  ],
};
const NOW = 1714564805;

describe('metrics.k8s.io bodies', () => {
  it('PodMetricsList in metrics-server\'s shape: sorted label keys, RFC 3339 seconds, Go duration, canonical quantities', () => {
    const text = JSON.stringify(encodePodMetricsList([pod], NOW));
    assert.equal(
      text,
      '{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[' +
        '{"metadata":{"name":"web-1","namespace":"team-a","creationTimestamp":"2024-05-01T12:00:05Z","labels":{"app":"web","tier":"x"}},' +
        '"timestamp":"2024-05-01T12:00:00Z","window":"5m0s","containers":[' +
        '{"name":"app","usage":{"cpu":"250m","memory":"100Mi"}},{"name":"sidecar","usage":{"cpu":"1234567n","memory":"1k"}}]}]}',
    );
  });

  it('a Get is the object itself with kind and apiVersion; no labels leaves the key out', () => {
    assert.deepEqual(encodePodMetricsObject({ ...pod, labels: {}, containers: [] }, NOW), {
      kind: 'PodMetrics',
      apiVersion: 'metrics.k8s.io/v1beta1',
      metadata: { name: 'web-1', namespace: 'team-a', creationTimestamp: '2024-05-01T12:00:05Z' },
      timestamp: '2024-05-01T12:00:00Z',
      window: '5m0s',
      containers: [],
    });
  });

  it('NodeMetricsList', () => {
    const node: NodeMetricsItem = { name: 'n1', labels: { role: 'worker' }, timestamp: 1714564800, windowSeconds: 60, cpuCores: 1.5, memoryBytes: 2 * 1024 ** 3 };
    assert.deepEqual(encodeNodeMetricsList([node], NOW), {
      kind: 'NodeMetricsList',
      apiVersion: 'metrics.k8s.io/v1beta1',
      metadata: {},
      items: [
        {
          metadata: { name: 'n1', creationTimestamp: '2024-05-01T12:00:05Z', labels: { role: 'worker' } },
          timestamp: '2024-05-01T12:00:00Z',
          window: '1m0s',
          usage: { cpu: '1500m', memory: '2Gi' },
        },
      ],
    });
    assert.deepEqual(encodeNodeMetricsList([], NOW), { kind: 'NodeMetricsList', apiVersion: 'metrics.k8s.io/v1beta1', metadata: {}, items: [] });
  });

  it('NotFound names the group-resource and ns/name like metrics-server', () => {
    assert.deepEqual(podMetricsNotFound('default', 'web-1'), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'podmetrics.metrics.k8s.io "default/web-1" not found',
      reason: 'NotFound',
      details: { name: 'default/web-1', group: 'metrics.k8s.io', kind: 'podmetrics' },
      code: 404,
    });
  });

  it('the group entry for /apis', () => {
    assert.deepEqual(METRICS_API_GROUP, {
      name: 'metrics.k8s.io',
      versions: [{ groupVersion: 'metrics.k8s.io/v1beta1', version: 'v1beta1' }],
      preferredVersion: { groupVersion: 'metrics.k8s.io/v1beta1', version: 'v1beta1' },
    });
  });
});

/** A FAKE provider that records its calls and applies name and filter like the real one. */
class FakeResourceMetrics implements ResourceMetricsSource {
  readonly calls: unknown[] = [];
  pods: PodMetricsItem[] = [pod, { ...pod, name: 'web-2' }, { ...pod, namespace: 'team-b' }];

  async getPodMetrics(namespace: string | null, selector: Selector, name?: string, filter?: ObjectFilter): Promise<PodMetricsItem[]> {
    this.calls.push({ namespace, selector: selector.map((r) => r.key), name });
    return this.pods.filter(
      (p) => (namespace === null || p.namespace === namespace) && (name === undefined || p.name === name) && (!filter || filter({ namespace: p.namespace, name: p.name, labels: p.labels })),
    );
  }

  async getNodeMetrics(selector: Selector, name?: string): Promise<NodeMetricsItem[]> {
    this.calls.push({ selector: selector.map((r) => r.key), name });
    return [];
  }
}

async function app(provider: ResourceMetricsSource) {
  const server = Fastify();
  server.setErrorHandler((error, request, reply) => {
    const status = toStatus(error);
    return sendJson(request, reply, status.code, status);
  });
  registerResourceMetricsRoutes(server, provider, { now: () => NOW * 1000 });
  await server.ready();
  return server;
}

describe('metrics.k8s.io routes', () => {
  it('fieldSelector on metadata.name and metadata.namespace narrows a list; other fields are refused', async () => {
    const provider = new FakeResourceMetrics();
    const server = await app(provider);
    const names = async (url: string) => ((await server.inject(url)).json().items as any[]).map((i) => `${i.metadata.namespace}/${i.metadata.name}`);
    assert.deepEqual(await names('/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dweb-1'), ['team-a/web-1', 'team-b/web-1']);
    assert.deepEqual(provider.calls.at(-1), { namespace: null, selector: [], name: 'web-1' });
    assert.deepEqual(await names('/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace!%3Dteam-a'), ['team-b/web-1']);
    assert.deepEqual(await names('/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods?fieldSelector=metadata.name%3D%3Dweb-2,metadata.namespace%3Dteam-a'), ['team-a/web-2']);
    const bad = await server.inject('/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=status.phase%3DRunning');
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().message, 'field label not supported: status.phase');
    const garbled = await server.inject('/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name');
    assert.equal(garbled.statusCode, 400);
    assert.equal(garbled.json().message, "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
    const badLabels = await server.inject('/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=a%20in');
    assert.equal(badLabels.statusCode, 400);
    assert.match(badLabels.json().message, /^invalid labelSelector: /);
    await server.close();
  });

  it('a Get ignores labelSelector, answers the object, or 404 with the metrics-server Status', async () => {
    const provider = new FakeResourceMetrics();
    const server = await app(provider);
    const ok = await server.inject('/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods/web-2?labelSelector=app%3Dnone');
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().kind, 'PodMetrics');
    assert.equal(ok.json().metadata.name, 'web-2');
    assert.deepEqual(provider.calls.at(-1), { namespace: 'team-a', selector: [], name: 'web-2' });
    const missing = await server.inject('/apis/metrics.k8s.io/v1beta1/nodes/n9');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.body, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodemetrics.metrics.k8s.io \\"n9\\" not found","reason":"NotFound","details":{"name":"n9","group":"metrics.k8s.io","kind":"nodemetrics"},"code":404}\n');
    await server.close();
  });
});
