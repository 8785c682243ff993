/**
 * `explain`: the walk-through of one custom-metrics read, against a real Prometheus with deterministic data and
 * the FAKE Kubernetes API (test/harness): a working metric and each way a metric fails to resolve, the CLI's exit
 * codes, and the authenticated /debug/explain endpoint.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import type { PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { parseServeArgs } from '../../src/cli/serve-options.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import type { FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { httpsGet } from '../harness/https-get.ts';
import { startIntegrationStack, type IntegrationStack } from '../harness/stack.ts';

const RULES = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;
const BIN = new URL('../../bin/prometheus-metrics-adapter.js', import.meta.url).pathname;

/** Runs the packaged command (dist/, so `npm run build` first) without blocking the servers this process hosts. */
function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('explain against a real Prometheus and a fake Kubernetes API', () => {
  let stack: IntegrationStack;
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let adapter: TestAdapter;

  before(async () => {
    stack = await startIntegrationStack({ config: RULES });
    ({ prometheus, kube, adapter } = stack);
  });
  after(async () => {
    await stack?.close();
  });

  test('a working metric: rule, PromQL, raw samples, objects and the MetricValueList; web-4 is named as the one without a sample', async () => {
    const e = await adapter.server.explain({ path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb' });
    assert.equal(e.resolved, true, e.summary);
    assert.equal(e.failure, null);
    assert.equal(e.request.version, 'v1beta2');
    assert.equal(e.resource?.resolved?.kind, 'Pod');
    assert.equal(e.rule?.found, true);
    assert.match(e.rule!.origin!, /cpu/);
    assert.equal(e.query?.promql, 'sum by (pod) (rate(test_cpu_seconds_total{namespace="team-a"}[1m]))');
    assert.deepEqual(e.objects?.matched, ['web-1', 'web-2', 'web-3', 'web-4']);
    const byPod = new Map(e.prometheus!.samples!.map((s) => [s.labels.pod, Number(s.value)]));
    assert.ok(Math.abs(byPod.get('web-1')! - 0.25) < 1e-9, JSON.stringify(e.prometheus));
    assert.ok(byPod.has('api-1'), 'the raw result is the whole namespace-wide answer');
    assert.deepEqual(e.perObject?.map((o) => [o.name, o.ok]), [['web-1', true], ['web-2', true], ['web-3', true], ['web-4', false]]);
    assert.match(e.perObject![3]!.reason, /no sample with pod="web-4": the samples carry pod=.*web-1/);
    assert.equal(e.response.code, 200);
    const body = e.response.body as { kind: string; items: { describedObject: { name: string }; value: string }[] };
    assert.equal(body.kind, 'MetricValueList');
    assert.deepEqual(body.items.map((i) => [i.describedObject.name, i.value]), [['web-1', '250m'], ['web-2', '500m'], ['web-3', '1500m']]);
    // The same read given as flags.
    const flags = await adapter.server.explain({ resource: 'pod', namespace: 'team-a', selector: 'app=web', metric: 'cpu_1m', version: 'v1beta1' });
    assert.equal(flags.resolved, true);
    assert.equal((flags.response.body as { apiVersion: string }).apiVersion, 'custom.metrics.k8s.io/v1beta1');
  });

  test('unknown metric: no rule, with the metrics registered for the resource and the closest names', async () => {
    const e = await adapter.server.explain({ resource: 'pods', namespace: 'team-a', metric: 'cpu_5m' });
    assert.equal(e.resolved, false);
    assert.equal(e.failure, 'no-rule');
    assert.equal(e.rule?.found, false);
    assert.ok(e.rule?.registeredForResource?.includes('memory_bytes'));
    assert.equal(e.rule?.closest?.[0], 'cpu_1m');
    assert.match(e.summary, /no rule serves cpu_5m for pods; closest names: cpu_1m/);
    assert.equal(e.response.code, 404);
    const elsewhere = await adapter.server.explain({ resource: 'pods', namespace: 'team-a', metric: 'node_load' });
    assert.match(elsewhere.summary, /it is served for nodes/);
  });

  test('unknown resource: what the text did not resolve to, with candidates', async () => {
    const e = await adapter.server.explain({ resource: 'podz', namespace: 'team-a', metric: 'cpu_1m' });
    assert.equal(e.failure, 'unknown-resource');
    assert.equal(e.resource?.resolved, null);
    assert.ok(e.resource?.candidates?.includes('pods'), JSON.stringify(e.resource));
    assert.match(e.summary, /"podz" is not a known resource; did you mean pods/);
    assert.equal(e.response.code, 404);
  });

  test('a selector matching no object: the selector and how many objects exist at all; no query is sent', async () => {
    const e = await adapter.server.explain({ resource: 'pods', namespace: 'team-a', selector: 'app=nothing', metric: 'cpu_1m' });
    assert.equal(e.failure, 'no-object');
    assert.deepEqual(e.objects?.matched, []);
    assert.equal(e.objects?.inNamespace, 8);
    assert.match(e.summary, /no pods in namespace team-a match labelSelector app=nothing \(8 exist in namespace team-a at all/);
    assert.equal(e.query?.promql, null);
    assert.equal(e.response.code, 200);
    assert.deepEqual((e.response.body as { items: unknown[] }).items, []);
  });

  test('an object without a sample (web-4, by name): which label did not match, and the 404 a client gets', async () => {
    const e = await adapter.server.explain({ path: 'namespaces/team-a/pods/web-4/memory_bytes' });
    assert.equal(e.resolved, false);
    assert.equal(e.failure, 'no-sample');
    assert.match(e.objects!.note, /asked for by name$/);
    assert.deepEqual(e.perObject?.map((o) => o.ok), [false]);
    assert.match(e.perObject![0]!.reason, /no sample with pod="web-4": the samples carry pod=web-1, web-2/);
    assert.equal(e.response.code, 404);
    assert.match((e.response.body as { message: string }).message, /no sample with pod="web-4"/);
  });

  test('NaN (nan-1): the sample is shown as NaN and never served', async () => {
    const e = await adapter.server.explain({ resource: 'pods', namespace: 'team-a', name: 'nan-1', metric: 'ratio' });
    assert.equal(e.failure, 'no-sample');
    assert.ok(e.prometheus!.samples!.some((s) => s.labels.pod === 'nan-1' && s.value === 'NaN'));
    assert.deepEqual(e.perObject, [{ name: 'nan-1', ok: false, value: 'NaN', reason: 'the sample with pod="nan-1" is NaN, which is never served' }]);
    assert.equal(e.response.code, 500);
    // JSON keeps the NaN as text.
    assert.match(JSON.stringify(e), /"value":"NaN"/);
  });

  test('a path that is not a metric read is a bad request, not a crash', async () => {
    const e = await adapter.server.explain({ path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%20in' });
    assert.equal(e.failure, 'bad-request');
    assert.equal(e.response.code, 400);
  });

  test('Prometheus unreachable: the PromQL and the error', async () => {
    const down = await startTestAdapter({ config: RULES, prometheusUrl: 'http://127.0.0.1:9', kubeconfig: kube.kubeconfigPath });
    try {
      const e = await down.server.explain({ resource: 'pods', namespace: 'team-a', selector: 'app=web', metric: 'cpu_1m' });
      assert.equal(e.failure, 'query-failed');
      assert.equal(e.query?.promql, 'sum by (pod) (rate(test_cpu_seconds_total{namespace="team-a"}[1m]))');
      assert.match(e.prometheus!.error!, /unreachable.*rule .*cpu/);
      assert.ok(e.response.code >= 500, String(e.response.code));
    } finally {
      await down.close();
    }
  });

  test('CLI: exit 0 and a report for a metric that resolves, exit 1 for one that does not, --output json', async () => {
    const common = [`--config=${RULES}`, `--prometheus-url=${prometheus.url}`, `--kubeconfig=${kube.kubeconfigPath}`];
    const ok = await runCli(['explain', '/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb', ...common]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /verdict: {3}RESOLVES/);
    assert.match(ok.stdout, /promql: {4}sum by \(pod\) \(rate\(test_cpu_seconds_total\{namespace="team-a"\}\[1m\]\)\)/);
    assert.match(ok.stdout, /MISS web-4: no sample with pod="web-4"/);
    assert.match(ok.stdout, /"kind": "MetricValueList"/);
    const missing = await runCli(['explain', '--resource=pods', '--namespace=team-a', '--name=web-4', '--metric=memory_bytes', '--output=json', ...common]);
    assert.equal(missing.status, 1, missing.stdout + missing.stderr);
    const json = JSON.parse(missing.stdout);
    assert.equal(json.failure, 'no-sample');
    assert.equal(json.response.code, 404);
    const usage = await runCli(['explain', ...common]);
    assert.equal(usage.status, 1);
    assert.match(usage.stderr, /give a metric path, or --resource and --metric/);
  });

  test('/debug/explain: the Explanation as JSON, only for users RBAC allows on nonResourceURLs /debug/explain/*', async () => {
    kube.setTokens({ 'dev-token': { username: 'dev' }, 'other-token': { username: 'other' } });
    kube.setAuthorizer((spec) => ({ allowed: spec.user === 'dev' && (spec.nonResourceAttributes?.path ?? '').startsWith('/debug/explain/') }));
    let server: RunningServer | undefined;
    try {
      server = await startServer(
        parseServeArgs([
          `--config=${RULES}`,
          `--prometheus-url=${prometheus.url}`,
          `--kubeconfig=${kube.kubeconfigPath}`,
          '--bind-address=127.0.0.1',
          '--secure-port=0',
          '--authentication-skip-lookup',
        ]),
        pino({ level: 'silent' }),
      );
      const url = `${server.url}/debug/explain/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`;
      const as = (token?: string) => httpsGet(url, { rejectUnauthorized: false, headers: token ? { Authorization: `Bearer ${token}` } : {} });
      const allowed = await as('dev-token');
      assert.equal(allowed.status, 200, allowed.text);
      assert.equal(allowed.json.resolved, true);
      assert.equal(allowed.json.query.promql, 'sum by (pod) (rate(test_cpu_seconds_total{namespace="team-a"}[1m]))');
      assert.equal(allowed.json.response.body.items.length, 3);
      const denied = await as('other-token');
      assert.equal(denied.status, 403, denied.text);
      assert.equal(denied.json.kind, 'Status', 'a Status, not the explanation');
      const anonymous = await as();
      assert.equal(anonymous.status, 403, anonymous.text);
      const sar = kube.sarRequests().find((s) => s.user === 'dev');
      assert.deepEqual(sar?.nonResourceAttributes, { path: '/debug/explain/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m', verb: 'get' });
    } finally {
      await server?.close();
    }
  });
});
