/**
 * custom.metrics.k8s.io end to end: a real Prometheus with deterministic data, the adapter's real
 * wiring, and a FAKE Kubernetes API server (test/harness/fake-kube-apiserver.ts) for objects.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPrometheus, queryPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { addIntegrationObjects, integrationSeries, START } from '../harness/dataset.ts';
import { startIntegrationStack, type IntegrationStack } from '../harness/stack.ts';

const RULES = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const V1 = '/apis/custom.metrics.k8s.io/v1beta1';
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** Value of a canonical quantity string, for comparing with Prometheus's own numbers. */
function quantityValue(q: string): number {
  const m = /^(-?\d+)([numkMGTPE]?)$/.exec(q);
  assert.ok(m, `canonical quantity: ${q}`);
  const scale: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  return Number(m[1]) * scale[m[2]!]!;
}

function podItemV2(name: string, metric: string, value: string, timestamp: string, windowSeconds?: number, selector: unknown = null) {
  return {
    describedObject: { kind: 'Pod', namespace: 'team-a', name, apiVersion: '/v1' },
    metric: { name: metric, selector },
    timestamp,
    ...(windowSeconds !== undefined ? { windowSeconds } : {}),
    value,
  };
}

describe('custom metrics against a real Prometheus', () => {
  let stack: IntegrationStack;
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let adapter: TestAdapter;

  before(async () => {
    // A long cache lifetime: on a loaded machine 100 TLS handshakes can outlast the default 5 s, and the
    // single-flight test must count one query however slowly the requests arrive.
    stack = await startIntegrationStack({ config: RULES, adapter: { queryCacheTtlMs: 120_000 } });
    ({ prometheus, kube, adapter } = stack);
  });
  after(async () => {
    await stack?.close();
  });

  test('pods/* with a labelSelector: one item per matching pod with data, whole v1beta2 body', async () => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/%2A/cpu_1m?labelSelector=app%3Dweb`);
    assert.equal(res.status, 200, res.text);
    const ts = res.json.items[0]?.timestamp;
    assert.match(ts, RFC3339_SECONDS);
    assert.ok(Math.abs(Date.parse(ts) - Date.now()) < 60_000, `timestamp ${ts} is the evaluation time, not something else`);
    // web-4 matches the selector but has no series; team-b/web-1 has data but another namespace.
    assert.deepEqual(res.json, {
      kind: 'MetricValueList',
      apiVersion: 'custom.metrics.k8s.io/v1beta2',
      metadata: {},
      items: [
        podItemV2('web-1', 'cpu_1m', '250m', ts, 60),
        podItemV2('web-2', 'cpu_1m', '500m', ts, 60),
        podItemV2('web-3', 'cpu_1m', '1500m', ts, 60),
      ],
    });
    assert.ok(res.text.endsWith('}\n') || res.text.endsWith('}'), 'JSON body');
  });

  test('a repeated read is answered again from the cache, and follows objects relabelled in between', async () => {
    const path = `${V2}/namespaces/team-a/pods/%2A/cpu_1m?labelSelector=app%3Dweb`;
    const names = async (): Promise<string[]> => {
      const res = await adapter.get(path);
      assert.equal(res.status, 200, res.text);
      return res.json.items.map((i: { describedObject: { name: string } }) => i.describedObject.name);
    };
    const until = async (want: string[]): Promise<void> => {
      const deadline = Date.now() + 10_000;
      let got = await names();
      while (JSON.stringify(got) !== JSON.stringify(want) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        got = await names();
      }
      assert.deepEqual(got, want);
    };
    assert.deepEqual(await names(), ['web-1', 'web-2', 'web-3']);
    assert.deepEqual(await names(), ['web-1', 'web-2', 'web-3']);
    // The query result stays cached (120 s) while the object set changes under it, both ways.
    kube.addPod('team-a', 'web-2', { app: 'web-old', tier: 'stable' });
    try {
      await until(['web-1', 'web-3']);
    } finally {
      kube.addPod('team-a', 'web-2', { app: 'web', tier: 'stable' });
    }
    await until(['web-1', 'web-2', 'web-3']);
  });

  test('the same read in v1beta1 has the v1beta1 shape', async () => {
    const res = await adapter.get(`${V1}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb%2Ctier%3Dcanary`);
    assert.equal(res.status, 200, res.text);
    const ts = res.json.items[0]?.timestamp;
    assert.deepEqual(res.json, {
      kind: 'MetricValueList',
      apiVersion: 'custom.metrics.k8s.io/v1beta1',
      metadata: {},
      items: [
        {
          describedObject: { kind: 'Pod', namespace: 'team-a', name: 'web-3', apiVersion: '/v1' },
          metricName: 'cpu_1m',
          timestamp: ts,
          window: 60,
          value: '1500m',
          selector: null,
        },
      ],
    });
    // Compact output ends with a newline, like Go's json.Encoder.
    assert.ok(res.text.endsWith('}\n'));
  });

  test('values equal what the same PromQL returns from Prometheus directly at the same time', async () => {
    const cases: [string, string][] = [
      [`${V2}/namespaces/team-a/pods/*/cpu_1m`, 'sum by (pod) (rate(test_cpu_seconds_total{namespace="team-a"}[1m]))'],
      [`${V2}/namespaces/team-a/pods/*/requests_per_second_1m`, 'sum by (pod) (rate(test_requests_total{namespace="team-a"}[1m]))'],
      [`${V2}/namespaces/team-a/pods/*/memory_bytes`, 'sum by (pod) (test_memory_bytes{namespace="team-a"})'],
    ];
    for (const [path, promql] of cases) {
      const res = await adapter.get(path);
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.items.length > 0, path);
      const at = Date.parse(res.json.items[0].timestamp) / 1000;
      const direct = new Map((await queryPrometheus(prometheus.url, promql, at)).map((s) => [s.metric.pod, Number(s.value[1])]));
      for (const item of res.json.items) {
        const want = direct.get(item.describedObject.name);
        assert.ok(want !== undefined, `${item.describedObject.name} is in Prometheus's answer`);
        assert.ok(Math.abs(quantityValue(item.value) - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${path} ${item.describedObject.name}: ${item.value} vs ${want}`);
      }
      // Every pod Prometheus knows in team-a is a pod of the fake cluster, so nothing is dropped.
      assert.equal(res.json.items.length, direct.size, path);
    }
  });

  test('metricLabelSelector narrows the series and is echoed as a LabelSelector', async () => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb&metricLabelSelector=container%3Dapp`);
    assert.equal(res.status, 200, res.text);
    const ts = res.json.items[0].timestamp;
    const sel = { matchLabels: { container: 'app' } };
    assert.deepEqual(res.json.items, [
      podItemV2('web-1', 'cpu_1m', '200m', ts, 60, sel),
      podItemV2('web-2', 'cpu_1m', '450m', ts, 60, sel),
      podItemV2('web-3', 'cpu_1m', '1500m', ts, 60, sel),
    ]);
    const notin = await adapter.get(`${V1}/namespaces/team-a/pods/*/requests_per_second_1m?labelSelector=app%3Dweb&metricLabelSelector=method+notin+%28POST%29`);
    assert.equal(notin.status, 200, notin.text);
    assert.deepEqual(
      notin.json.items.map((i: any) => [i.describedObject.name, i.value, i.selector]),
      [
        ['web-1', '2', { matchExpressions: [{ key: 'method', operator: 'NotIn', values: ['POST'] }] }],
        ['web-2', '4', { matchExpressions: [{ key: 'method', operator: 'NotIn', values: ['POST'] }] }],
      ],
    );
  });

  test('a named pod, a node, a namespace and a deployment each answer exactly one item', async () => {
    const pod = await adapter.get(`${V2}/namespaces/team-a/pods/web-2/memory_bytes`);
    assert.equal(pod.status, 200, pod.text);
    assert.deepEqual(pod.json.items, [podItemV2('web-2', 'memory_bytes', '209715200', pod.json.items[0].timestamp)]);

    const node = await adapter.get(`${V2}/nodes/node-1/node_load`);
    assert.equal(node.status, 200, node.text);
    assert.deepEqual(node.json.items, [
      { describedObject: { kind: 'Node', name: 'node-1', apiVersion: '/v1' }, metric: { name: 'node_load', selector: null }, timestamp: node.json.items[0].timestamp, value: '2500m' },
    ]);
    // The HPA asks for cluster-scoped objects through the namespaced path.
    const viaNamespace = await adapter.get(`${V2}/namespaces/team-a/nodes/node-2/node_load`);
    assert.equal(viaNamespace.json.items[0].value, '500m');
    const allNodes = await adapter.get(`${V2}/nodes/*/node_load?labelSelector=role%3Dworker`);
    assert.deepEqual(allNodes.json.items.map((i: any) => [i.describedObject.name, i.value]), [['node-1', '2500m'], ['node-2', '500m']]);

    const ns = await adapter.get(`${V1}/namespaces/team-a/metrics/namespace_requests_per_second`);
    assert.equal(ns.status, 200, ns.text);
    assert.deepEqual(ns.json.items, [
      { describedObject: { kind: 'Namespace', name: 'team-a', apiVersion: '/v1' }, metricName: 'namespace_requests_per_second', timestamp: ns.json.items[0].timestamp, value: '7', selector: null },
    ]);

    const deploy = await adapter.get(`${V2}/namespaces/team-a/deployments.apps/web/deployment_queue_depth`);
    assert.equal(deploy.status, 200, deploy.text);
    assert.deepEqual(deploy.json.items[0].describedObject, { kind: 'Deployment', namespace: 'team-a', name: 'web', apiVersion: 'apps/v1' });
    assert.equal(deploy.json.items[0].value, '42');
  });

  test('discovery documents list the rules\' metrics', async () => {
    const apis = await adapter.get('/apis');
    assert.deepEqual(apis.json, {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [
        {
          name: 'custom.metrics.k8s.io',
          versions: [
            { groupVersion: 'custom.metrics.k8s.io/v1beta2', version: 'v1beta2' },
            { groupVersion: 'custom.metrics.k8s.io/v1beta1', version: 'v1beta1' },
          ],
          preferredVersion: { groupVersion: 'custom.metrics.k8s.io/v1beta2', version: 'v1beta2' },
        },
      ],
    });
    const list = await adapter.get(V1);
    assert.equal(list.json.kind, 'APIResourceList');
    assert.equal(list.json.groupVersion, 'custom.metrics.k8s.io/v1beta1');
    const entry = (name: string, namespaced: boolean) => ({ name, singularName: '', namespaced, kind: 'MetricValueList', verbs: ['get'] });
    assert.deepEqual(list.json.resources, [
      entry('pods/cpu_1m', true),
      entry('pods/memory_bytes', true),
      entry('pods/requests_per_second_1m', true),
      entry('pods/cpu_by_name', true),
      entry('nodes/node_load', false),
      entry('namespaces/namespace_requests_per_second', false),
      entry('deployments.apps/deployment_queue_depth', true),
      entry('pods/ratio', true),
    ]);
  });

  test('errors are Status objects with the right code, and the server keeps serving', async () => {
    const unknown = await adapter.get(`${V2}/namespaces/team-a/pods/*/no_such_metric`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server could not find the metric no_such_metric for pods',
      reason: 'NotFound',
      code: 404,
    });
    const noData = await adapter.get(`${V2}/namespaces/team-a/pods/web-4/cpu_1m`);
    assert.equal(noData.status, 404);
    assert.equal(noData.json.reason, 'NotFound');
    assert.match(noData.json.message, /^the server could not find the metric cpu_1m for pods web-4: the query returned no sample with pod="web-4"/);

    const badSelector = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3D%3Dweb%2C`);
    assert.equal(badSelector.status, 400);
    assert.equal(badSelector.json.reason, 'BadRequest');
    assert.equal(badSelector.json.status, 'Failure');
    assert.match(badSelector.json.message, /^invalid labelSelector: found '', expected: identifier after ','/);

    const badMetricSelector = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?metricLabelSelector=x%3Ey`);
    assert.equal(badMetricSelector.status, 400, badMetricSelector.text);

    const noRoute = await adapter.get(`${V2}/namespaces/team-a/pods/web-1`);
    assert.equal(noRoute.status, 404);
    assert.equal(noRoute.json.message, 'the server could not find the requested resource');

    const nan = await adapter.get(`${V2}/namespaces/team-a/pods/nan-1/ratio`);
    assert.equal(nan.status, 500, nan.text);
    assert.match(nan.json.message, /ratio for pods nan-1 is NaN in Prometheus/);
    const nanList = await adapter.get(`${V2}/namespaces/team-a/pods/*/ratio`);
    assert.deepEqual(nanList.json.items.map((i: any) => [i.describedObject.name, i.value]), [['web-1', '250m']]);

    for (const path of ['/healthz', '/livez', '/readyz']) {
      const health = await adapter.get(path);
      assert.equal(health.status, 200);
      assert.equal(health.text, 'ok');
    }
    const again = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dapi`);
    assert.equal(again.status, 200);
    assert.deepEqual(again.json.items.map((i: any) => i.value), ['750m']);
  });

  test('a label selector value with ", \\, } or | is rejected before any query is sent', async () => {
    const before = await prometheus.queryRequestCount();
    const hostile = [
      'labelSelector=' + encodeURIComponent('app=web"}|x'),
      'labelSelector=' + encodeURIComponent('app in (web,x"})'),
      'metricLabelSelector=' + encodeURIComponent('container=a\\"}) or vector(1) #'),
      'metricLabelSelector=' + encodeURIComponent('container in (app|sidecar)'),
      'metricLabelSelector=' + encodeURIComponent('container notin (a},b)'),
    ];
    for (const q of hostile) {
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?${q}`);
      assert.equal(res.status, 400, `${q}: ${res.text}`);
      assert.equal(res.json.reason, 'BadRequest');
    }
    for (const path of [`${V2}/namespaces/team-a/pods/web"}/cpu_1m`, `${V2}/namespaces/te}am/pods/*/cpu_1m`, `${V2}/namespaces/team-a/pods/a%7Cb/cpu_1m`]) {
      const res = await adapter.get(path);
      assert.equal(res.status, 400, `${path}: ${res.text}`);
    }
    assert.equal(await prometheus.queryRequestCount(), before, 'no hostile request reached Prometheus');
  });

  test('regex metacharacters in object names match literally (queryScope: objects)', async () => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_by_name?labelSelector=app+in+%28dots%2Cdecoy%29`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.items.map((i: any) => [i.describedObject.name, i.value]), [['dot.pod', '100m'], ['dotxpod', '9']]);
    const one = await adapter.get(`${V2}/namespaces/team-a/pods/dot.pod/cpu_by_name`);
    assert.equal(one.json.items[0].value, '100m');
  });

  test('100 concurrent identical requests cause exactly one Prometheus query', async () => {
    const path = `${V2}/namespaces/team-a/pods/*/requests_per_second_1m?labelSelector=app%3Dweb&metricLabelSelector=method%3DGET`;
    const before = await prometheus.queryRequestCount();
    const answers = await Promise.all(Array.from({ length: 100 }, () => adapter.get(path)));
    const after = await prometheus.queryRequestCount();
    assert.equal(after - before, 1, 'queries counted by Prometheus itself');
    assert.ok(answers.every((a) => a.status === 200 && a.text === answers[0]!.text), 'every caller got the same answer');
    assert.deepEqual(answers[0]!.json.items.map((i: any) => i.value), ['2', '4']);
  });

  test('different label selectors in one namespace share one cached query', async () => {
    const before = await prometheus.queryRequestCount();
    for (const sel of ['app%3Dweb', 'app%3Dapi', 'tier%3Dcanary', 'app+in+%28web%2Capi%29', '']) {
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/requests_per_second_1m?labelSelector=${sel}&metricLabelSelector=method%3DPOST`);
      assert.equal(res.status, 200, res.text);
    }
    assert.equal((await prometheus.queryRequestCount()) - before, 1);
  });

  test('label selectors are answered from the watch cache: no LIST per request, and new pods appear', async () => {
    await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`);
    const { lists } = kube.stats();
    for (let i = 0; i < 20; i++) await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`);
    assert.equal(kube.stats().lists, lists, 'no Kubernetes LIST while serving');
    // Relabel api-1 as app=web: the watch delivers it and the next read includes it.
    kube.addPod('team-a', 'api-1', { app: 'web' });
    let names: string[] = [];
    for (let i = 0; i < 50 && !names.includes('api-1'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`);
      names = res.json.items.map((i: any) => i.describedObject.name);
    }
    assert.deepEqual(names, ['api-1', 'web-1', 'web-2', 'web-3']);
    assert.equal(kube.stats().lists, lists, 'still no LIST');
    kube.addPod('team-a', 'api-1', { app: 'api' });
  });

  test('pretty output for curl, method not allowed for writes', async () => {
    const pretty = await adapter.get(`${V2}/namespaces/team-a/pods/web-1/memory_bytes`, { 'User-Agent': 'curl/8.5.0' });
    assert.ok(pretty.text.startsWith('{\n  "kind": "MetricValueList"'), pretty.text);
    assert.match(String(pretty.headers['content-type']), /^application\/json/);
    const res = await new Promise<number>((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const req = request(`${adapter.url}${V2}/namespaces/team-a/pods/web-1/memory_bytes`, { method: 'POST', rejectUnauthorized: false }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end('{}');
      }, reject);
    });
    assert.equal(res, 405);
  });
});

describe('when Prometheus is unreachable', () => {
  test('reads fail with 503 naming the Prometheus URL, and succeed again once it is back, without a restart', async () => {
    const net = await import('node:net');
    const prometheus = await startPrometheus({ series: integrationSeries(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    const kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    // A TCP proxy we can switch off stands between the adapter and the real Prometheus.
    let upstreamUp = false;
    const sockets = new Set<import('node:net').Socket>();
    const proxy = net.createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      if (!upstreamUp) return client.destroy();
      const upstream = net.connect(prometheus.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as import('node:net').AddressInfo).port}`;
    const adapter = await startTestAdapter({ config: RULES, prometheusUrl: proxyUrl, kubeconfig: kube.kubeconfigPath, queryCacheTtlMs: 0 });
    try {
      const path = `${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`;
      const down = await adapter.get(path);
      assert.equal(down.status, 503, down.text);
      assert.equal(down.json.reason, 'ServiceUnavailable');
      assert.equal(down.json.status, 'Failure');
      assert.ok(down.json.message.includes(proxyUrl), down.json.message);
      assert.match(down.json.message, /rule .*integration\.yaml metrics\[0\] \(cpu_1m\)/);
      assert.equal((await adapter.get('/healthz')).status, 200);

      upstreamUp = true;
      const up = await adapter.get(path);
      assert.equal(up.status, 200, up.text);
      assert.deepEqual(up.json.items.map((i: any) => i.value), ['250m', '500m', '1500m']);
    } finally {
      await adapter.close();
      for (const s of sockets) s.destroy();
      proxy.close();
      await kube.stop();
      await prometheus.stop();
    }
  });

  test('a Prometheus that is not listening at all gives 503 too', async () => {
    const kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    const adapter = await startTestAdapter({ config: RULES, prometheusUrl: 'http://127.0.0.1:9', kubeconfig: kube.kubeconfigPath });
    try {
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/web-1/cpu_1m`);
      assert.equal(res.status, 503, res.text);
      assert.match(res.json.message, /^Prometheus at http:\/\/127\.0\.0\.1:9 is unreachable: ECONNREFUSED/);
    } finally {
      await adapter.close();
      await kube.stop();
    }
  });
});
