/**
 * metrics.k8s.io end to end: a real Prometheus with deterministic cAdvisor-like data, a FAKE Kubernetes
 * API server (test/harness/fake-kube-apiserver.ts) behind the real informer object source, and the
 * resource metrics routes in a minimal HTTPS app built here (the product's app wires them in itself).
 */
import { counter, gauge, START } from '../harness/dataset.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { generateSelfSignedServingCert } from '../../src/api/certificates.ts';
import { sendJson } from '../../src/api/json-response.ts';
import { registerResourceMetricsRoutes } from '../../src/api/resource-metrics-routes.ts';
import { NOT_FOUND_ROUTE, toStatus } from '../../src/api/status.ts';
import type { ResourceRules } from '../../src/config/model.ts';
import { freeLoopbackPort, queryPrometheus, startPrometheus, type PrometheusProcess, type SeriesSpec } from '../../src/demo/prometheus-process.ts';
import { loadKubeConfig } from '../../src/kubernetes/kubeconfig.ts';
import { InformerObjectSource } from '../../src/kubernetes/object-cache.ts';
import { PrometheusHttpClient } from '../../src/prometheus/http-client.ts';
import { QueryEngine } from '../../src/prometheus/query-engine.ts';
import { ResourceMetricsProvider } from '../../src/providers/resource.ts';
import { compileTemplate } from '../../src/rules/template.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { httpsGet, type HttpsResponse } from '../harness/https-get.ts';

const MI = 1024 * 1024;
const BASE = '/apis/metrics.k8s.io/v1beta1';
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;


/** cAdvisor-like series, with exact rates so the expected quantities are literals. */
function series(): SeriesSpec[] {
  const container = (namespace: string, pod: string, name: string, cores: number | null, bytes: number | null): SeriesSpec[] => [
    ...(cores !== null ? [counter('container_cpu_usage_seconds_total', { namespace, pod, container: name }, cores)] : []),
    ...(bytes !== null ? [gauge('container_memory_working_set_bytes', { namespace, pod, container: name }, bytes)] : []),
  ];
  return [
    ...container('team-a', 'web-1', 'app', 0.25, 100 * MI),
    ...container('team-a', 'web-1', 'sidecar', 0.05, 20 * MI),
    // cAdvisor's pod-level cgroup series (no container label): the rules' container!="" must drop them.
    counter('container_cpu_usage_seconds_total', { namespace: 'team-a', pod: 'web-1' }, 9),
    gauge('container_memory_working_set_bytes', { namespace: 'team-a', pod: 'web-1' }, 999 * MI),
    ...container('team-a', 'web-2', 'app', 0.5, 200 * MI),
    ...container('team-a', 'api-1', 'app', 1.5, 1024 * MI),
    // Has cpu only: skipped, as prometheus-adapter skips pods without both resources.
    ...container('team-a', 'cpu-only', 'app', 0.1, null),
    // Data for a pod Kubernetes does not know: never reported.
    ...container('team-a', 'ghost', 'app', 5, 5 * MI),
    ...container('team-b', 'web-1', 'app', 2, 512 * MI),
    counter('node_cpu_usage_seconds_total', { node: 'node-1' }, 1.5),
    gauge('node_memory_working_set_bytes', { node: 'node-1' }, 2048 * MI),
    counter('node_cpu_usage_seconds_total', { node: 'node-2' }, 0.75),
    gauge('node_memory_working_set_bytes', { node: 'node-2' }, 1536 * MI),
  ];
}

const FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice'];
const association = {
  overrides: { namespace: { resource: 'namespace' }, node: { resource: 'node' }, pod: { resource: 'pod' } },
  template: null,
  namespaced: true,
};

/** prometheus-adapter's shipped resourceRules (deploy/manifests/config-map.yaml), with rate over the 5m window. */
const RULES: ResourceRules = {
  origin: 'integration resourceRules',
  cpu: {
    containerQuery: compileTemplate(
      'sum by (<<.GroupBy>>) (\n  rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!="",pod!=""}[5m])\n)\n',
      FIELDS,
    ),
    nodeQuery: compileTemplate('sum by (<<.GroupBy>>) (rate(node_cpu_usage_seconds_total{<<.LabelMatchers>>}[5m]))', FIELDS),
    resources: association,
    containerLabel: 'container',
  },
  memory: {
    containerQuery: compileTemplate('sum by (<<.GroupBy>>) (container_memory_working_set_bytes{<<.LabelMatchers>>,container!="",pod!=""})', FIELDS),
    nodeQuery: compileTemplate('sum by (<<.GroupBy>>) (node_memory_working_set_bytes{<<.LabelMatchers>>})', FIELDS),
    resources: association,
    containerLabel: 'container',
  },
  window: { text: '5m', seconds: 300 },
};

interface TestServer {
  readonly app: FastifyInstance;
  get(path: string): Promise<HttpsResponse>;
}

/** A minimal HTTPS app: the resource routes, Status errors and the 404 for unknown paths. */
async function startApp(provider: ResourceMetricsProvider): Promise<TestServer> {
  const cert = await generateSelfSignedServingCert({ hosts: ['localhost'], ips: ['127.0.0.1'] });
  const app = Fastify({ https: { key: cert.keyPem, cert: cert.certPem }, routerOptions: { ignoreTrailingSlash: true } });
  app.setErrorHandler((error, request, reply) => {
    const status = toStatus(error);
    return sendJson(request, reply, status.code, status);
  });
  app.setNotFoundHandler((request, reply) => sendJson(request, reply, 404, NOT_FOUND_ROUTE));
  registerResourceMetricsRoutes(app, provider);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, get: (path) => httpsGet(`${url}${path}`, { ca: cert.certPem, servername: 'localhost' }) };
}

function engineFor(url: string): QueryEngine {
  return new QueryEngine(new PrometheusHttpClient({ url, timeoutMs: 5000, verb: 'GET' }), { cacheTtlMs: 0, cacheMaxEntries: 0 });
}

/** Timestamps are the query's evaluation time and the response time: check their form and closeness, then compare the rest literally. */
function times(res: HttpsResponse): { ts: string; created: string } {
  const first = res.json.kind.endsWith('List') ? res.json.items[0] : res.json;
  const ts: string = first.timestamp;
  const created: string = first.metadata.creationTimestamp;
  for (const t of [ts, created]) {
    assert.match(t, RFC3339_SECONDS);
    assert.ok(Math.abs(Date.parse(t) - Date.now()) < 60_000, `${t} is about now`);
  }
  return { ts, created };
}

const podItem = (namespace: string, name: string, labels: Record<string, string>, containers: [string, string, string][], ts: string, created: string) => ({
  metadata: { name, namespace, creationTimestamp: created, labels },
  timestamp: ts,
  window: '5m0s',
  containers: containers.map(([n, cpu, memory]) => ({ name: n, usage: { cpu, memory } })),
});
const nodeItem = (name: string, labels: Record<string, string>, cpu: string, memory: string, ts: string, created: string) => ({
  metadata: { name, creationTimestamp: created, labels },
  timestamp: ts,
  window: '5m0s',
  usage: { cpu, memory },
});

describe('metrics.k8s.io against a real Prometheus', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let objects: InformerObjectSource;
  let server: TestServer;

  before(async () => {
    prometheus = await startPrometheus({ series: series(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    kube = await startFakeKubeApiServer();
    kube.addNamespace('team-a');
    kube.addNamespace('team-b');
    kube.addPod('team-a', 'web-1', { app: 'web', tier: 'stable' });
    kube.addPod('team-a', 'web-2', { app: 'web', tier: 'canary' });
    kube.addPod('team-a', 'web-3', { app: 'web', tier: 'stable' }); // no data at all
    kube.addPod('team-a', 'api-1', { app: 'api' });
    kube.addPod('team-a', 'cpu-only', { app: 'partial' });
    kube.addPod('team-b', 'web-1', { app: 'web' });
    kube.addNode('node-1', { role: 'worker', zone: 'a' });
    kube.addNode('node-2', { role: 'worker', zone: 'b' });
    kube.addNode('node-3', { role: 'infra' }); // no data
    const quiet = { info: () => {}, warn: () => {} };
    objects = new InformerObjectSource(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }), { log: quiet });
    const provider = new ResourceMetricsProvider({
      rules: RULES,
      objects,
      engine: engineFor(prometheus.url),
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    server = await startApp(provider);
  });
  after(async () => {
    await server?.app.close();
    await objects?.stop();
    await kube?.stop();
    await prometheus?.stop();
  });

  test('discovery: APIGroup and APIResourceList as metrics-server serves them', async () => {
    const group = await server.get('/apis/metrics.k8s.io');
    assert.equal(group.status, 200);
    assert.equal(
      group.text,
      '{"kind":"APIGroup","apiVersion":"v1","name":"metrics.k8s.io","versions":[{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}],' +
        '"preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}}\n',
    );
    const list = await server.get(BASE);
    assert.equal(list.status, 200);
    assert.equal(
      list.text,
      '{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1","resources":[' +
        '{"name":"nodes","singularName":"","namespaced":false,"kind":"NodeMetrics","verbs":["get","list"]},' +
        '{"name":"pods","singularName":"","namespaced":true,"kind":"PodMetrics","verbs":["get","list"]}]}\n',
    );
    assert.match(String(list.headers['content-type']), /^application\/json/);
  });

  test('pods of one namespace: whole body, pods without both resources left out', async () => {
    const res = await server.get(`${BASE}/namespaces/team-a/pods`);
    assert.equal(res.status, 200, res.text);
    const { ts, created } = times(res);
    assert.deepEqual(res.json, {
      kind: 'PodMetricsList',
      apiVersion: 'metrics.k8s.io/v1beta1',
      metadata: {},
      items: [
        podItem('team-a', 'api-1', { app: 'api' }, [['app', '1500m', '1Gi']], ts, created),
        podItem('team-a', 'web-1', { app: 'web', tier: 'stable' }, [['app', '250m', '100Mi'], ['sidecar', '50m', '20Mi']], ts, created),
        podItem('team-a', 'web-2', { app: 'web', tier: 'canary' }, [['app', '500m', '200Mi']], ts, created),
      ],
    });
    assert.ok(res.text.endsWith('}\n'));
  });

  test('the values are what the same PromQL gives in Prometheus directly', async () => {
    const res = await server.get(`${BASE}/namespaces/team-a/pods?labelSelector=app%3Dweb`);
    const at = Date.parse(res.json.items[0].timestamp) / 1000;
    const direct = await queryPrometheus(
      prometheus.url,
      'sum by (pod,container) (rate(container_cpu_usage_seconds_total{namespace="team-a",pod=~"web-1|web-2|web-3",container!="",pod!=""}[5m]))',
      at,
    );
    assert.deepEqual(
      direct.map((s) => [s.metric.pod, s.metric.container, Number(s.value[1]).toFixed(9)]).sort(),
      [['web-1', 'app', '0.250000000'], ['web-1', 'sidecar', '0.050000000'], ['web-2', 'app', '0.500000000']],
    );
  });

  test('all namespaces, and label selectors', async () => {
    const all = await server.get(`${BASE}/pods`);
    assert.equal(all.status, 200, all.text);
    const { created } = times(all);
    assert.deepEqual(all.json.items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`), ['team-a/api-1', 'team-a/web-1', 'team-a/web-2', 'team-b/web-1']);
    // Each namespace has its own queries, which may be evaluated a second apart.
    const teamB = all.json.items[3];
    assert.match(teamB.timestamp, RFC3339_SECONDS);
    assert.deepEqual(teamB, podItem('team-b', 'web-1', { app: 'web' }, [['app', '2', '512Mi']], teamB.timestamp, created));

    const web = await server.get(`${BASE}/pods?labelSelector=app%3Dweb%2Ctier+notin+%28canary%29`);
    assert.equal(web.status, 200, web.text);
    assert.deepEqual(web.json.items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`), ['team-a/web-1', 'team-b/web-1']);

    const none = await server.get(`${BASE}/namespaces/team-a/pods?labelSelector=app%3Dnothing`);
    assert.equal(none.status, 200);
    assert.equal(none.text, '{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[]}\n');

    const byField = await server.get(`${BASE}/pods?fieldSelector=metadata.name%3Dweb-1`);
    assert.deepEqual(byField.json.items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`), ['team-a/web-1', 'team-b/web-1']);
  });

  test('one pod: the PodMetrics object; no data or no pod: metrics-server\'s 404', async () => {
    const res = await server.get(`${BASE}/namespaces/team-a/pods/web-1`);
    assert.equal(res.status, 200, res.text);
    const { ts, created } = times(res);
    assert.deepEqual(res.json, {
      kind: 'PodMetrics',
      apiVersion: 'metrics.k8s.io/v1beta1',
      ...podItem('team-a', 'web-1', { app: 'web', tier: 'stable' }, [['app', '250m', '100Mi'], ['sidecar', '50m', '20Mi']], ts, created),
    });
    for (const [path, name] of [
      ['namespaces/team-a/pods/web-3', 'team-a/web-3'],
      ['namespaces/team-a/pods/cpu-only', 'team-a/cpu-only'],
      ['namespaces/team-a/pods/ghost', 'team-a/ghost'],
      ['namespaces/team-c/pods/web-1', 'team-c/web-1'],
    ] as const) {
      const missing = await server.get(`${BASE}/${path}`);
      assert.equal(missing.status, 404, path);
      assert.deepEqual(missing.json, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `podmetrics.metrics.k8s.io "${name}" not found`,
        reason: 'NotFound',
        details: { name, group: 'metrics.k8s.io', kind: 'podmetrics' },
        code: 404,
      });
    }
  });

  test('nodes: list, label selector, get, 404', async () => {
    const res = await server.get(`${BASE}/nodes`);
    assert.equal(res.status, 200, res.text);
    const { ts, created } = times(res);
    assert.deepEqual(res.json, {
      kind: 'NodeMetricsList',
      apiVersion: 'metrics.k8s.io/v1beta1',
      metadata: {},
      items: [
        nodeItem('node-1', { role: 'worker', zone: 'a' }, '1500m', '2Gi', ts, created),
        nodeItem('node-2', { role: 'worker', zone: 'b' }, '750m', '1536Mi', ts, created),
      ],
    });
    const zoneB = await server.get(`${BASE}/nodes?labelSelector=zone%3Db`);
    assert.deepEqual(zoneB.json.items.map((i: any) => i.metadata.name), ['node-2']);

    const one = await server.get(`${BASE}/nodes/node-1`);
    assert.equal(one.status, 200, one.text);
    const t1 = times(one);
    assert.deepEqual(one.json, { kind: 'NodeMetrics', apiVersion: 'metrics.k8s.io/v1beta1', ...nodeItem('node-1', { role: 'worker', zone: 'a' }, '1500m', '2Gi', t1.ts, t1.created) });

    const missing = await server.get(`${BASE}/nodes/node-3`);
    assert.equal(missing.status, 404);
    assert.equal(
      missing.text,
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodemetrics.metrics.k8s.io \\"node-3\\" not found",' +
        '"reason":"NotFound","details":{"name":"node-3","group":"metrics.k8s.io","kind":"nodemetrics"},"code":404}\n',
    );
  });

  test('bad selectors are 400 and unknown paths 404, as Status objects', async () => {
    const bad = await server.get(`${BASE}/pods?labelSelector=app%3D%3D%3D`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.kind, 'Status');
    assert.equal(bad.json.reason, 'BadRequest');
    const field = await server.get(`${BASE}/pods?fieldSelector=spec.nodeName%3Dnode-1`);
    assert.equal(field.status, 400);
    assert.equal(field.json.message, 'field label not supported: spec.nodeName');
    const unknown = await server.get(`${BASE}/namespaces/team-a/services`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.message, 'the server could not find the requested resource');
  });

  test('Prometheus unreachable: 503 naming the backend and the rule', async () => {
    const port = await freeLoopbackPort();
    const down = new ResourceMetricsProvider({
      rules: RULES,
      objects,
      engine: engineFor(`http://127.0.0.1:${port}`),
      log: pino({ level: 'silent' }),
    });
    const broken = await startApp(down);
    try {
      for (const path of ['namespaces/team-a/pods', 'nodes', 'namespaces/team-a/pods/web-1']) {
        const res = await broken.get(`${BASE}/${path}`);
        assert.equal(res.status, 503, res.text);
        assert.equal(res.json.reason, 'ServiceUnavailable');
        assert.match(
          res.json.message,
          new RegExp(`^Prometheus at http://127\\.0\\.0\\.1:${port} is unreachable: .*ECONNREFUSED.*; rule integration resourceRules\\.(cpu|memory)\\.(containerQuery|nodeQuery)$`),
        );
      }
    } finally {
      await broken.app.close();
    }
  });
});
