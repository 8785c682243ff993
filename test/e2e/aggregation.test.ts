/**
 * The whole story on a real control plane: etcd, kube-apiserver (aggregation, RBAC) and
 * kube-controller-manager built from Go modules (tools/kubecp), the adapter installed from deploy/
 * and running as a process with its ServiceAccount's credentials, a real Prometheus scraping a FAKE
 * workload exporter, and a FAKE kubelet that reports pods Running. See test/e2e/README.md.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { httpsGet } from '../harness/https-get.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freeLoopbackPort, startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { buildKubecp, startControlPlane, type ControlPlane } from './harness/control-plane.ts';
import { patchedDeployManifests } from './harness/deploy-manifests.ts';
import { FakeKubelet } from './harness/fake-kubelet.ts';
import { FakeWorkloadExporter } from './harness/fake-workload-exporter.ts';
import { FRONT_PROXY_CLIENT_CN, generateClusterPki, type ClusterPki } from './harness/pki.ts';

const NS = 'e2e';
const BIN = new URL('../../bin/prometheus-metrics-adapter.js', import.meta.url).pathname;
const RULES = new URL('./fixtures/adapter-config.yaml', import.meta.url).pathname;
const POD_LOAD_PATH = `/apis/custom.metrics.k8s.io/v1beta2/namespaces/${NS}/pods/*/pod_load?labelSelector=app%3Dweb`;

async function eventually<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number, diagnostics = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`${what} did not happen within ${timeoutMs} ms; last: ${JSON.stringify(last) ?? String(lastError)}\n${diagnostics()}`);
}

function adapterGet(port: number, p: string, opts: { cert?: string; key?: string; headers?: Record<string, string | string[]> } = {}, ca?: string) {
  return httpsGet(`https://127.0.0.1:${port}${p}`, {
    servername: 'localhost',
    ...(ca ? { ca } : {}),
    ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
    headers: opts.headers ?? {},
  }).then((r) => ({ status: r.status, body: r.text }));
}

/** An autoscaling/v2 HPA from 1 to 10 replicas of a Deployment, on one metric. */
function hpa(name: string, metric: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace: NS },
    spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name }, minReplicas: 1, maxReplicas: 10, metrics: [metric] },
  });
}

describe('on a real control plane', { timeout: 60 * 60_000 }, () => {
  let dir: string;
  let pki: ClusterPki;
  let cp: ControlPlane;
  let prometheus: PrometheusProcess;
  let kubelet: FakeKubelet;
  let exporter: FakeWorkloadExporter;
  let adapter: ChildProcess;
  let adapterPort: number;
  let adapterLog: string;
  const kubectlOk = (args: string[], input?: string): string => {
    const r = cp.kubectl(args, input);
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const diagnostics = (): string =>
    `--- adapter log ---\n${readFileSync(adapterLog, 'utf8').split('\n').slice(-30).join('\n')}\n--- kube-controller-manager ---\n${cp.logTail('kube-controller-manager', 30)}`;

  before(async () => {
    const kubecp = buildKubecp();
    dir = mkdtempSync(path.join(tmpdir(), 'pma-e2e-'));
    pki = await generateClusterPki(path.join(dir, 'pki'));
    cp = await startControlPlane({ kubecp, dir, pki, hpaSyncSeconds: 2 });

    adapterPort = await freeLoopbackPort();
    const { objects } = patchedDeployManifests({ adapterPort, caBundlePem: pki.adapterCaPem });
    kubectlOk(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
    const token = kubectlOk(['create', 'token', 'prometheus-metrics-adapter', '-n', 'prometheus-metrics-adapter', '--duration=24h']).trim();
    const saKubeconfig = await cp.writeTokenKubeconfig('prometheus-metrics-adapter', token);

    const adminKc = new KubeConfig();
    adminKc.loadFromFile(cp.adminKubeconfig);
    kubectlOk(['create', 'namespace', NS]);
    kubelet = new FakeKubelet(adminKc, NS);
    await kubelet.start();
    exporter = new FakeWorkloadExporter(kubelet, NS);
    exporter.setLoad('web', 3.5);
    exporter.setLoad('api', 5);
    exporter.setQueueDepth('jobs', 35);
    exporter.setNodeUsage('e2e-node-1', 1.5, 2 * 1024 ** 3);
    // A Node object, as a kubelet would register it, so kubectl top nodes has something to show.
    kubectlOk(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'e2e-node-1', labels: { 'kubernetes.io/hostname': 'e2e-node-1' } },
      status: { capacity: { cpu: '4', memory: '8Gi', pods: '110' }, allocatable: { cpu: '4', memory: '8Gi', pods: '110' } },
    }));
    const target = await exporter.start();
    prometheus = await startPrometheus({ series: [], fromSeconds: 0, toSeconds: 0, stepSeconds: 15, scrape: { targets: [target], intervalSeconds: 1 } });

    adapterLog = path.join(dir, 'adapter.log');
    const out = createWriteStream(adapterLog);
    adapter = spawn(process.execPath, [
      BIN,
      `--kubeconfig=${saKubeconfig}`,
      `--prometheus-url=${prometheus.url}`,
      `--config=${RULES}`,
      `--tls-cert-file=${pki.adapterCert}`,
      `--tls-private-key-file=${pki.adapterKey}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${adapterPort}`,
      '--query-cache-ttl=1s',
      // Series of pods the HPA creates must be discovered quickly.
      '--metrics-relist-interval=2s',
      '--v=4',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    adapter.stdout!.pipe(out);
    adapter.stderr!.pipe(out);
    await eventually('the adapter to serve /readyz', () => adapterGet(adapterPort, '/readyz', {}, pki.adapterCaPem).then((r) => r.status), (s) => s === 200, 60_000, () => readFileSync(adapterLog, 'utf8'));

    for (const name of ['web', 'api', 'worker']) {
      kubectlOk(['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: NS, labels: { app: name } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: { containers: [{ name: 'app', image: 'registry.invalid/e2e/app:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }] },
          },
        },
      }));
    }
    await cp.startControllerManager();
  });

  after(async () => {
    adapter?.kill('SIGTERM');
    await kubelet?.stop();
    await exporter?.stop();
    await prometheus?.stop();
    await cp?.stop();
  });

  test('the custom, external and resource metrics APIServices become Available', async () => {
    for (const name of ['v1beta2.custom.metrics.k8s.io', 'v1beta1.custom.metrics.k8s.io', 'v1beta1.external.metrics.k8s.io', 'v1beta1.metrics.k8s.io']) {
      await eventually(
        `${name} Available=True`,
        () => JSON.parse(kubectlOk(['get', 'apiservice', name, '-o', 'json'])).status?.conditions?.find((c: any) => c.type === 'Available'),
        (c: any) => c?.status === 'True',
        120_000,
        () => `${cp.logTail('kube-apiserver', 20)}\n${diagnostics()}`,
      );
    }
  });

  test('kubectl get --raw through kube-apiserver returns what the adapter answers directly', async () => {
    const viaApiserver = await eventually(
      'pods of web with pod_load through the aggregator',
      () => JSON.parse(kubectlOk(['get', '--raw', POD_LOAD_PATH])),
      (body: any) => body.items?.length > 0,
      120_000,
      diagnostics,
    );
    // Directly, as the aggregator would call: front-proxy client certificate and X-Remote-* headers.
    const direct = await adapterGet(adapterPort, POD_LOAD_PATH, {
      cert: readFileSync(pki.frontProxyClientCert, 'utf8'),
      key: readFileSync(pki.frontProxyClientKey, 'utf8'),
      headers: { 'X-Remote-User': 'e2e-admin', 'X-Remote-Group': ['system:masters', 'system:authenticated'] },
    }, pki.adapterCaPem);
    assert.equal(direct.status, 200, direct.body);
    const simplify = (body: any) => body.items.map((i: any) => [i.describedObject.name, i.value, i.metric.name]).sort();
    assert.equal(viaApiserver.kind, 'MetricValueList');
    assert.equal(viaApiserver.apiVersion, 'custom.metrics.k8s.io/v1beta2');
    assert.deepEqual(simplify(viaApiserver), simplify(JSON.parse(direct.body)));
  });

  test('an HPA on a Pods metric scales web to what the Prometheus values imply, and back down', async () => {
    kubectlOk(['apply', '-f', '-'], hpa('web', { type: 'Pods', pods: { metric: { name: 'pod_load' }, target: { type: 'AverageValue', averageValue: '1' } } }));
    // Total load 3.5, target 1 per pod: ceil(3.5 / 1) = 4 replicas.
    await eventually('web scaled to 4', () => JSON.parse(kubectlOk(['get', 'deployment', 'web', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 4, 180_000, diagnostics);
    const shown = await eventually('kubectl get hpa to show the current value', () => kubectlOk(['get', 'hpa', 'web', '-n', NS]), (out) => /875m\/1/.test(out), 60_000, diagnostics);
    assert.match(shown, /web\s+Deployment\/web\s+.*875m\/1\s+1\s+10\s+4/);
    exporter.setLoad('web', 0.5);
    await eventually('web scaled back to 1', () => JSON.parse(kubectlOk(['get', 'deployment', 'web', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 1, 180_000, diagnostics);
    const conditions = JSON.parse(kubectlOk(['get', 'hpa', 'web', '-n', NS, '-o', 'json'])).status.conditions;
    // The HPA read the metric through the aggregator as its own ServiceAccount, which the adapter authorized.
    const hpaRequests = readFileSync(adapterLog, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'request' && /\/pods\/(\*|%2A)\/pod_load/.test(l.url) && l.user === 'system:serviceaccount:kube-system:horizontal-pod-autoscaler');
    assert.ok(hpaRequests.length > 0, 'the adapter served the HPA controller\'s own ServiceAccount');
    assert.ok(hpaRequests.every((l) => l.status === 200), JSON.stringify(hpaRequests.slice(0, 3)));
    // kube-apiserver's aggregator negotiates HTTP/2 with the adapter, as with any backend that offers it.
    assert.ok(hpaRequests.every((l) => l.http === '2.0'), JSON.stringify(hpaRequests.slice(0, 3)));
    assert.equal(conditions.find((c: any) => c.type === 'ScalingActive')?.status, 'True', JSON.stringify(conditions));
  });

  test('an HPA on an Object metric of the Deployment scales api likewise', async () => {
    kubectlOk(['apply', '-f', '-'], hpa('api', {
      type: 'Object',
      object: { describedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' }, metric: { name: 'deployment_load' }, target: { type: 'AverageValue', averageValue: '2' } },
    }));
    // Load 5 with a target of 2 per replica: ceil(5 / 2) = 3.
    await eventually('api scaled to 3', () => JSON.parse(kubectlOk(['get', 'deployment', 'api', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 3, 180_000, diagnostics);
    await eventually('kubectl get hpa api to show the value', () => kubectlOk(['get', 'hpa', 'api', '-n', NS]), (out) => /\b5\/2 \(avg\)/.test(out) || /1667m\/2 \(avg\)/.test(out), 60_000, diagnostics);
    exporter.setLoad('api', 1);
    await eventually('api scaled back to 1', () => JSON.parse(kubectlOk(['get', 'deployment', 'api', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 1, 180_000, diagnostics);
  });

  test('an HPA on an External metric scales worker with the queue, and back', async () => {
    kubectlOk(['apply', '-f', '-'], hpa('worker', {
      type: 'External',
      external: { metric: { name: 'e2e_queue_depth', selector: { matchLabels: { queue: 'jobs' } } }, target: { type: 'AverageValue', averageValue: '10' } },
    }));
    // 35 messages with a target of 10 per replica: ceil(35 / 10) = 4.
    await eventually('worker scaled to 4', () => JSON.parse(kubectlOk(['get', 'deployment', 'worker', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 4, 180_000, diagnostics);
    const shown = kubectlOk(['get', 'hpa', 'worker', '-n', NS]);
    assert.match(shown, /worker\s+Deployment\/worker\s+.*\/10 \(avg\)/);
    const raw = JSON.parse(kubectlOk(['get', '--raw', `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NS}/e2e_queue_depth?labelSelector=queue%3Djobs`]));
    assert.deepEqual(raw.items.map((i: any) => [i.metricName, i.metricLabels, i.value]), [['e2e_queue_depth', { queue: 'jobs' }, '35']]);
    exporter.setQueueDepth('jobs', 5);
    await eventually('worker scaled back to 1', () => JSON.parse(kubectlOk(['get', 'deployment', 'worker', '-n', NS, '-o', 'json'])).spec.replicas, (r) => r === 1, 180_000, diagnostics);
  });

  test('kubectl top pods and kubectl top nodes read metrics.k8s.io from the adapter', async () => {
    const pods = await eventually('kubectl top pods', () => cp.kubectl(['top', 'pods', '-n', NS]), (r) => r.status === 0 && /web-/.test(r.stdout), 60_000, diagnostics);
    // Every running pod reports 250m and 64Mi.
    for (const line of pods.stdout.trim().split('\n').slice(1)) assert.match(line, /^\S+\s+250m\s+64Mi\s*$/, pods.stdout);
    const nodes = await eventually('kubectl top nodes', () => cp.kubectl(['top', 'nodes']), (r) => r.status === 0 && /e2e-node-1/.test(r.stdout), 60_000, diagnostics);
    assert.match(nodes.stdout, /e2e-node-1\s+1500m\s+37%\s+2048Mi\s+25%/);
  });

  test('RBAC: no grant gets 403, the HPA-reader role gets 200, anonymous is bound to nothing deploy/ adds', async () => {
    const denied = cp.kubectl(['get', '--raw', POD_LOAD_PATH, '--as=bob']);
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr, /Forbidden|forbidden/);
    assert.match(denied.stderr, /User "bob" cannot get resource "pods\/pod_load" in API group "custom\.metrics\.k8s\.io" in the namespace "e2e"/);

    kubectlOk(['create', 'clusterrolebinding', 'e2e-alice-reads-custom-metrics', '--clusterrole=custom-metrics-reader', '--user=alice']);
    const allowed = await eventually('alice to read the metric', () => cp.kubectl(['get', '--raw', POD_LOAD_PATH, '--as=alice']), (r) => r.status === 0, 30_000);
    assert.equal(JSON.parse(allowed.stdout).kind, 'MetricValueList');

    // The adapter authorizes on its own too: the same identities, sent straight to it by a trusted front proxy.
    const proxyCert = { cert: readFileSync(pki.frontProxyClientCert, 'utf8'), key: readFileSync(pki.frontProxyClientKey, 'utf8') };
    const bob = await adapterGet(adapterPort, POD_LOAD_PATH, { ...proxyCert, headers: { 'X-Remote-User': 'bob', 'X-Remote-Group': 'system:authenticated' } }, pki.adapterCaPem);
    assert.equal(bob.status, 403, bob.body);
    assert.equal(JSON.parse(bob.body).reason, 'Forbidden');
    const alice = await adapterGet(adapterPort, POD_LOAD_PATH, { ...proxyCert, headers: { 'X-Remote-User': 'alice', 'X-Remote-Group': 'system:authenticated' } }, pki.adapterCaPem);
    assert.equal(alice.status, 200, alice.body);

    // Anonymous requests through kube-apiserver are refused.
    const anonymous = await new Promise<number>((resolve, reject) => {
      const req = request(`${cp.url}${POD_LOAD_PATH}`, { ca: readFileSync(pki.caCert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(anonymous, 403);
    // No binding gives system:anonymous or system:unauthenticated more than Kubernetes' own public-info role.
    for (const kind of ['clusterrolebindings', 'rolebindings']) {
      const list = JSON.parse(kubectlOk(['get', kind, '-A', '-o', 'json']));
      for (const b of list.items) {
        const anon = (b.subjects ?? []).some((s: any) => s.name === 'system:anonymous' || s.name === 'system:unauthenticated');
        if (anon) assert.equal(b.roleRef.name, 'system:public-info-viewer', `${kind} ${b.metadata.name} binds anonymous users to ${b.roleRef.name}`);
      }
    }
  });

  test('X-Remote-User headers without a valid front-proxy certificate are not trusted', async () => {
    const spoofed = { 'X-Remote-User': 'e2e-admin', 'X-Remote-Group': 'system:masters' };
    // No client certificate: the headers are ignored and the request is anonymous, which RBAC refuses.
    const noCert = await adapterGet(adapterPort, POD_LOAD_PATH, { headers: spoofed }, pki.adapterCaPem);
    assert.equal(noCert.status, 403, noCert.body);
    assert.match(JSON.parse(noCert.body).message, /User "system:anonymous" cannot get resource "pods\/pod_load"/);
    // A certificate from a CA kube-apiserver does not use for its front proxy: 401.
    const untrusted = await adapterGet(adapterPort, POD_LOAD_PATH, {
      cert: readFileSync(pki.untrustedClientCert, 'utf8'),
      key: readFileSync(pki.untrustedClientKey, 'utf8'),
      headers: spoofed,
    }, pki.adapterCaPem);
    assert.equal(untrusted.status, 401, untrusted.body);
    assert.equal(JSON.parse(untrusted.body).reason, 'Unauthorized');
    assert.equal(FRONT_PROXY_CLIENT_CN, 'front-proxy-client');
  });

  test('the adapter lists and watches kube-system/extension-apiserver-authentication with the RBAC deploy/ grants', () => {
    const log = readFileSync(adapterLog, 'utf8');
    assert.match(log, /listed kube-system\/extension-apiserver-authentication; watching it for changes/);
    assert.doesNotMatch(log, /not allowed to watch|watch of kube-system\/extension-apiserver-authentication failed/);
  });
});
