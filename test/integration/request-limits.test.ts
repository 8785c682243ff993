/**
 * Limits on what one request may ask for, at the HTTP level: URL length, label selector size, and the number
 * of objects a `*` read or a metrics.k8s.io list may cover. The adapter's real wiring (startTestAdapter), a real
 * Prometheus, and a FAKE Kubernetes API server (test/harness/fake-kube-apiserver.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { addIntegrationObjects, integrationSeries, START } from '../harness/dataset.ts';

const RULES = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;
// prometheus-adapter's format with resourceRules, so metrics.k8s.io is served too.
const ADAPTER_RULES = new URL('../fixtures/prometheus-adapter/chart-defaults.yaml', import.meta.url).pathname;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const METRICS = '/apis/metrics.k8s.io/v1beta1';

function assertStatus(res: { status: number; json: any; text: string }, code: number, reason: string | undefined, message: RegExp): void {
  assert.equal(res.status, code, res.text);
  assert.equal(res.json?.kind, 'Status', res.text);
  assert.equal(res.json.apiVersion, 'v1');
  assert.equal(res.json.status, 'Failure');
  assert.equal(res.json.code, code);
  assert.equal(res.json.reason, reason);
  assert.match(res.json.message, message);
}

describe('request limits', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let adapter: TestAdapter;
  let resources: TestAdapter;

  before(async () => {
    prometheus = await startPrometheus({ series: integrationSeries(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    // team-a has four app=web pods and eight pods in all; there are two nodes and nine pods in the cluster.
    adapter = await startTestAdapter({ config: RULES, prometheusUrl: prometheus.url, kubeconfig: kube.kubeconfigPath, maxObjectsPerRequest: 3 });
    resources = await startTestAdapter({ config: ADAPTER_RULES, prometheusUrl: prometheus.url, kubeconfig: kube.kubeconfigPath, maxObjectsPerRequest: 3 });
  });
  after(async () => {
    await adapter?.close();
    await resources?.close();
    await kube?.stop();
    await prometheus?.stop();
  });

  test('a 20 KiB URL is refused with a 414 Status before anything else happens', async () => {
    const queries = await prometheus.queryRequestCount();
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=${'a'.repeat(20 * 1024)}`);
    assertStatus(res, 414, undefined, /^request URL longer than 16384 bytes$/);
    assert.equal(await prometheus.queryRequestCount(), queries);
    assert.equal((await adapter.get('/healthz')).status, 200, 'the connection problem was that request\'s alone');
  });

  test('label selectors beyond the parser limits are 400 BadRequest', async () => {
    const hundred = Array.from({ length: 100 }, (_, i) => `k${i}=v`).join(',');
    for (const param of ['labelSelector', 'metricLabelSelector']) {
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?${param}=${encodeURIComponent(hundred)}`);
      assertStatus(res, 400, 'BadRequest', new RegExp(`^invalid ${param}: label selector has more than 64 requirements$`));
    }
    const values = `app in (${Array.from({ length: 300 }, (_, i) => `v${i}`).join(',')})`;
    assertStatus(
      await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=${encodeURIComponent(values)}`),
      400,
      'BadRequest',
      /^invalid labelSelector: label selector set for key "app" has more than 256 values$/,
    );
    const long = `app=${'x'.repeat(63)},${Array.from({ length: 60 }, (_, i) => `key${i}=${'v'.repeat(63)}`).join(',')}`;
    assertStatus(
      await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=${encodeURIComponent(long)}`),
      400,
      'BadRequest',
      /^invalid labelSelector: label selector is \d+ bytes long; the limit is 4096 bytes$/,
    );
  });

  test('a * read selecting more objects than --max-objects-per-request is 400 BadRequest, before any query', async () => {
    const queries = await prometheus.queryRequestCount();
    assertStatus(
      await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`),
      400,
      'BadRequest',
      /^4 pods in namespace team-a match labelSelector app=web, more than the 3 objects one request may cover \(--max-objects-per-request\): narrow the labelSelector, or ask for objects by name$/,
    );
    assertStatus(
      await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m`),
      400,
      'BadRequest',
      /^8 pods in namespace team-a match the request \(no labelSelector\), more than the 3 objects/,
    );
    assert.equal(await prometheus.queryRequestCount(), queries, 'refused before reaching Prometheus');

    // Within the limit: a narrower selector, a named object.
    const narrow = await adapter.get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb%2Ctier%3Dstable`);
    assert.equal(narrow.status, 200, narrow.text);
    assert.deepEqual(narrow.json.items.map((i: any) => i.describedObject.name), ['web-1', 'web-2']);
    const named = await adapter.get(`${V2}/namespaces/team-a/pods/web-3/cpu_1m`);
    assert.equal(named.status, 200, named.text);
    const nodes = await adapter.get(`${V2}/nodes/*/node_load`);
    assert.equal(nodes.status, 200, nodes.text);
  });

  test('metrics.k8s.io lists over the limit are 400 BadRequest saying how to narrow them', async () => {
    const queries = await prometheus.queryRequestCount();
    assertStatus(
      await resources.get(`${METRICS}/pods`),
      400,
      'BadRequest',
      /^9 pods in all namespaces match the request \(no labelSelector\), more than the 3 objects one request may cover \(--max-objects-per-request\): narrow the labelSelector or fieldSelector, or list one namespace at a time$/,
    );
    assertStatus(
      await resources.get(`${METRICS}/namespaces/team-a/pods?labelSelector=app%3Dweb`),
      400,
      'BadRequest',
      /^4 pods in namespace team-a match labelSelector app=web, more than the 3 objects one request may cover \(--max-objects-per-request\): narrow the labelSelector or fieldSelector$/,
    );
    assert.equal(await prometheus.queryRequestCount(), queries, 'refused before reaching Prometheus');

    const narrow = await resources.get(`${METRICS}/namespaces/team-a/pods?labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dweb-1`);
    assert.equal(narrow.status, 200, narrow.text);
    const nodes = await resources.get(`${METRICS}/nodes`);
    assert.equal(nodes.status, 200, nodes.text);
    const one = await resources.get(`${METRICS}/namespaces/team-a/pods/web-1`);
    assert.notEqual(one.status, 400, 'a single object is never over the limit');
  });
});
