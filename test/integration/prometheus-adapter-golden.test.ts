/**
 * Golden tests of prometheus-adapter compatibility: configs written in its format (test/fixtures/
 * prometheus-adapter, our own files shaped like its walkthrough, sample config and chart defaults),
 * a real Prometheus whose own query log gives the exact PromQL received, and a FAKE Kubernetes API.
 * Each expected query is written out by hand from prometheus-adapter's documented semantics.
 */
import { counter, gauge, START } from '../harness/dataset.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPrometheus, type PrometheusProcess, type SeriesSpec } from '../../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';

const FIXTURES = new URL('../fixtures/prometheus-adapter/', import.meta.url).pathname;

const SERIES: SeriesSpec[] = [
  // walkthrough.yaml
  counter('shop_http_requests_total', { kubernetes_namespace: 'shop', kubernetes_pod_name: 'shop-1', method: 'GET' }, 3),
  counter('shop_http_requests_total', { kubernetes_namespace: 'shop', kubernetes_pod_name: 'shop-1', method: 'POST' }, 1),
  counter('shop_http_requests_total', { kubernetes_namespace: 'shop', kubernetes_pod_name: 'shop-2', method: 'GET', canary: 'yes' }, 2),
  // sample.yaml
  gauge('shop_inflight_requests', { namespace: 'shop', pod: 'shop-1', service: 'frontend' }, 7),
  gauge('shop_inflight_requests', { namespace: 'shop', pod: 'shop-2', service: 'frontend' }, 5),
  counter('shop_orders_total', { namespace: 'shop', pod: 'shop-1' }, 0.5),
  gauge('broker_queue_messages', { namespace: 'shop', queue: 'orders' }, 120),
  gauge('broker_queue_messages', { namespace: 'shop', queue: 'refunds' }, 3),
  gauge('broker_queue_messages', { namespace: 'other', queue: 'orders' }, 999),
  gauge('cloud_queue_backlog', { topic: 'billing' }, 42),
  gauge('cloud_queue_backlog', { topic: 'audit' }, 8),
  // chart-defaults.yaml
  counter('container_cpu_usage_seconds_total', { namespace: 'shop', pod: 'shop-1', container: 'app' }, 0.25),
  counter('container_cpu_usage_seconds_total', { namespace: 'shop', pod: 'shop-1', container: 'sidecar' }, 0.05),
  counter('container_cpu_usage_seconds_total', { namespace: 'shop', pod: 'shop-2', container: 'app' }, 0.5),
  gauge('container_memory_working_set_bytes', { namespace: 'shop', pod: 'shop-1', container: 'app' }, 104857600),
  gauge('container_memory_working_set_bytes', { namespace: 'shop', pod: 'shop-1', container: 'sidecar' }, 16777216),
  gauge('container_memory_working_set_bytes', { namespace: 'shop', pod: 'shop-2', container: 'app' }, 209715200),
  counter('node_cpu_usage_seconds_total', { node: 'node-1' }, 1.5),
  gauge('node_memory_working_set_bytes', { node: 'node-1' }, 2147483648),
  counter('queue_jobs_total', { namespace: 'shop', pod: 'shop-2' }, 4),
];

describe('prometheus-adapter config files: same PromQL, same answers', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  const adapters: TestAdapter[] = [];

  before(async () => {
    prometheus = await startPrometheus({ series: SERIES, fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    kube = await startFakeKubeApiServer();
    kube.addNamespace('shop');
    kube.addPod('shop', 'shop-1', { app: 'shop' });
    kube.addPod('shop', 'shop-2', { app: 'shop' });
    kube.addPod('shop', 'shop-3', { app: 'other' });
    kube.addNode('node-1', { role: 'worker' });
  });
  after(async () => {
    for (const a of adapters) await a.close();
    await kube?.stop();
    await prometheus?.stop();
  });

  const adapterFor = async (file: string): Promise<TestAdapter> => {
    const adapter = await startTestAdapter({ config: `${FIXTURES}${file}`, prometheusUrl: prometheus.url, kubeconfig: kube.kubeconfigPath, queryCacheTtlMs: 0 });
    adapters.push(adapter);
    return adapter;
  };

  /** The request's answer and every PromQL expression Prometheus evaluated for it. */
  const read = async (adapter: TestAdapter, path: string): Promise<{ status: number; json: any; queries: string[] }> => {
    const before = (await prometheus.queryLog()).length;
    const res = await adapter.get(path);
    let queries: string[] = [];
    for (let i = 0; i < 40; i++) {
      queries = (await prometheus.queryLog()).slice(before).filter((q) => !q.startsWith('kube_'));
      if (queries.length > 0 || res.status >= 400) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return { status: res.status, json: res.json, queries };
  };

  describe('the config walkthrough shape (overrides, _total renamed to _per_second)', () => {
    let adapter: TestAdapter;
    before(async () => {
      adapter = await adapterFor('walkthrough.yaml');
    });

    test('discovery lists the metric for pods and for namespaces', async () => {
      const res = await adapter.get('/apis/custom.metrics.k8s.io/v1beta1');
      assert.deepEqual(res.json.resources.map((r: any) => [r.name, r.namespaced]).sort(), [
        ['namespaces/shop_http_requests_per_second', false],
        ['pods/shop_http_requests_per_second', true],
      ]);
    });

    test('pods/* with a label selector: the names of the selected pods go into the query', async () => {
      const r = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/shop_http_requests_per_second?labelSelector=app%3Dshop');
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.queries, [
        'sum(rate(shop_http_requests_total{kubernetes_namespace="shop",kubernetes_pod_name=~"shop-1|shop-2"}[2m])) by (kubernetes_pod_name)',
      ]);
      const ts = r.json.items[0].timestamp;
      assert.deepEqual(r.json, {
        kind: 'MetricValueList',
        apiVersion: 'custom.metrics.k8s.io/v1beta1',
        metadata: {},
        items: [
          { describedObject: { kind: 'Pod', namespace: 'shop', name: 'shop-1', apiVersion: '/v1' }, metricName: 'shop_http_requests_per_second', timestamp: ts, value: '4', selector: null },
          { describedObject: { kind: 'Pod', namespace: 'shop', name: 'shop-2', apiVersion: '/v1' }, metricName: 'shop_http_requests_per_second', timestamp: ts, value: '2', selector: null },
        ],
      });
    });

    test('metricLabelSelector becomes matchers before the namespace: =, in, notin, key, !key', async () => {
      const base = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/shop_http_requests_per_second?labelSelector=app%3Dshop&metricLabelSelector=';
      const cases: [string, string, [string, string][], unknown][] = [
        ['method%3DGET', 'method="GET"', [['shop-1', '3'], ['shop-2', '2']], { matchLabels: { method: 'GET' } }],
        ['method+in+%28POST%2CGET%29', 'method=~"GET|POST"', [['shop-1', '4'], ['shop-2', '2']], { matchExpressions: [{ key: 'method', operator: 'In', values: ['GET', 'POST'] }] }],
        ['method+notin+%28POST%29', 'method!~"POST"', [['shop-1', '3'], ['shop-2', '2']], { matchExpressions: [{ key: 'method', operator: 'NotIn', values: ['POST'] }] }],
        ['canary', 'canary!=""', [['shop-2', '2']], { matchExpressions: [{ key: 'canary', operator: 'Exists' }] }],
        ['%21canary', 'canary=""', [['shop-1', '4']], { matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }] }],
      ];
      for (const [param, matcher, values, selector] of cases) {
        const r = await read(adapter, base + param);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.deepEqual(r.queries, [
          `sum(rate(shop_http_requests_total{${matcher},kubernetes_namespace="shop",kubernetes_pod_name=~"shop-1|shop-2"}[2m])) by (kubernetes_pod_name)`,
        ], param);
        assert.deepEqual(r.json.items.map((i: any) => [i.describedObject.name, i.value]), values, param);
        assert.ok(r.json.items.every((i: any) => JSON.stringify(i.metric.selector) === JSON.stringify(selector)), param);
      }
    });

    test('one named pod is an equality matcher; the namespace metric selects by the namespace label', async () => {
      const pod = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/shop-2/shop_http_requests_per_second');
      assert.deepEqual(pod.queries, ['sum(rate(shop_http_requests_total{kubernetes_namespace="shop",kubernetes_pod_name="shop-2"}[2m])) by (kubernetes_pod_name)']);
      assert.equal(pod.json.items[0].value, '2');
      const ns = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/shop_http_requests_per_second');
      assert.deepEqual(ns.queries, ['sum(rate(shop_http_requests_total{kubernetes_namespace="shop"}[2m])) by (kubernetes_namespace)']);
      assert.deepEqual(ns.json.items, [
        { describedObject: { kind: 'Namespace', name: 'shop', apiVersion: '/v1' }, metric: { name: 'shop_http_requests_per_second', selector: null }, timestamp: ns.json.items[0].timestamp, value: '6' },
      ]);
    });
  });

  describe('the sample config shape (template association, multi-line queries, external rules)', () => {
    let adapter: TestAdapter;
    before(async () => {
      adapter = await adapterFor('sample.yaml');
    });

    test('discovery: gauges keep their name, counters are renamed, every label naming a resource registers it', async () => {
      const res = await adapter.get('/apis/custom.metrics.k8s.io/v1beta2');
      assert.deepEqual(res.json.resources.map((r: any) => r.name).sort(), [
        'namespaces/inflight_requests',
        'namespaces/orders_rate',
        'pods/inflight_requests',
        'pods/orders_rate',
        'services/inflight_requests',
      ]);
      const external = await adapter.get('/apis/external.metrics.k8s.io/v1beta1');
      assert.deepEqual(external.json, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'external.metrics.k8s.io/v1beta1',
        resources: ['broker_queue_messages', 'cloud_queue_backlog'].map((name) => ({ name, singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] })),
      });
    });

    test('template rules render with the singular resource as the label, newlines kept', async () => {
      const gaugeRead = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/inflight_requests?labelSelector=app%3Dshop');
      assert.deepEqual(gaugeRead.queries, ['max(shop_inflight_requests{namespace="shop",pod=~"shop-1|shop-2"}) by (pod)']);
      assert.deepEqual(gaugeRead.json.items.map((i: any) => [i.describedObject.name, i.value]), [['shop-1', '7'], ['shop-2', '5']]);
      const counterRead = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/shop-1/orders_rate');
      assert.deepEqual(counterRead.queries, ['sum by (pod) (\n  irate(\n    shop_orders_total{namespace="shop",pod="shop-1"}[1m]\n  )\n)\n']);
      assert.equal(counterRead.json.items[0].value, '500m');
      const service = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/services/frontend/inflight_requests');
      assert.deepEqual(service.queries, ['max(shop_inflight_requests{namespace="shop",service="frontend"}) by (service)']);
      assert.deepEqual(service.json.items[0].describedObject, { kind: 'Service', namespace: 'shop', name: 'frontend', apiVersion: '/v1' });
      assert.equal(service.json.items[0].value, '7');
    });

    test('external metrics: the label selector first, then the namespace unless namespaced is false', async () => {
      const queue = await read(adapter, '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/broker_queue_messages?labelSelector=queue%3Dorders');
      assert.equal(queue.status, 200, JSON.stringify(queue.json));
      assert.deepEqual(queue.queries, ['sum(broker_queue_messages{queue="orders",namespace="shop"}) by (queue)']);
      assert.deepEqual(queue.json, {
        kind: 'ExternalMetricValueList',
        apiVersion: 'external.metrics.k8s.io/v1beta1',
        metadata: {},
        items: [{ metricName: 'broker_queue_messages', metricLabels: { queue: 'orders' }, timestamp: queue.json.items[0].timestamp, value: '120' }],
      });
      const backlog = await read(adapter, '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/cloud_queue_backlog?labelSelector=topic+in+%28billing%29');
      assert.deepEqual(backlog.queries, ['max(cloud_queue_backlog{topic=~"billing"}) by (topic)']);
      assert.deepEqual(backlog.json.items.map((i: any) => [i.metricLabels, i.value]), [[{ topic: 'billing' }, '42']]);
      const all = await read(adapter, '/apis/external.metrics.k8s.io/v1beta1/namespaces/anywhere/cloud_queue_backlog');
      assert.deepEqual(all.queries, ['max(cloud_queue_backlog{}) by (topic)']);
      assert.deepEqual(all.json.items.map((i: any) => i.value).sort(), ['42', '8']);
    });
  });

  describe('the chart defaults shape (container and generic rules, resource rules)', () => {
    let adapter: TestAdapter;
    before(async () => {
      adapter = await adapterFor('chart-defaults.yaml');
    });

    test('container counters lose their prefix and suffix; other counters lose _total', async () => {
      const res = await adapter.get('/apis/custom.metrics.k8s.io/v1beta2');
      const names = res.json.resources.map((r: any) => r.name);
      for (const want of ['pods/cpu_usage', 'pods/memory_working_set_bytes', 'pods/queue_jobs', 'namespaces/cpu_usage']) assert.ok(names.includes(want), `${want} in ${names.join(', ')}`);
      const cpu = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/cpu_usage?labelSelector=app%3Dshop');
      assert.deepEqual(cpu.queries, ['sum(rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"shop-1|shop-2",container!="POD"}[5m])) by (pod)']);
      assert.deepEqual(cpu.json.items.map((i: any) => [i.describedObject.name, i.value]), [['shop-1', '300m'], ['shop-2', '500m']]);
      const jobs = await read(adapter, '/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/shop-2/queue_jobs');
      assert.deepEqual(jobs.queries, ['sum(rate(queue_jobs_total{namespace="shop",pod="shop-2"}[5m])) by (pod)']);
      assert.equal(jobs.json.items[0].value, '4');
    });

    test('kubectl top pods: one cpu and one memory query per namespace, grouped by pod and container', async () => {
      const r = await read(adapter, '/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods');
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.queries.sort(), [
        'sum by (pod,container) (\n  container_memory_working_set_bytes{namespace="shop",pod=~"shop-1|shop-2|shop-3",container!="",pod!=""}\n)\n',
        'sum by (pod,container) (\n  rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"shop-1|shop-2|shop-3",container!="",pod!=""}[3m])\n)\n',
      ]);
      assert.equal(r.json.kind, 'PodMetricsList');
      assert.deepEqual(
        r.json.items.map((i: any) => [i.metadata.name, i.window, i.containers]),
        [
          ['shop-1', '3m0s', [{ name: 'app', usage: { cpu: '250m', memory: '100Mi' } }, { name: 'sidecar', usage: { cpu: '50m', memory: '16Mi' } }]],
          ['shop-2', '3m0s', [{ name: 'app', usage: { cpu: '500m', memory: '200Mi' } }]],
        ],
      );
    });

    test('kubectl top nodes: one query per resource for all nodes', async () => {
      const r = await read(adapter, '/apis/metrics.k8s.io/v1beta1/nodes');
      assert.deepEqual(r.queries.sort(), [
        'sum by (node) (\n  node_memory_working_set_bytes{node="node-1"}\n)\n',
        'sum by (node) (\n  rate(node_cpu_usage_seconds_total{node="node-1"}[3m])\n)\n',
      ]);
      assert.deepEqual(r.json.items.map((i: any) => [i.metadata.name, i.usage]), [['node-1', { cpu: '1500m', memory: '2Gi' }]]);
    });
  });
});
