/**
 * The Kubernetes API going away and coming back, with a FAKE Kubernetes API server
 * (test/harness/fake-kube-apiserver.ts: setDown(true) answers 503 and ends every watch). Label selectors keep
 * being answered from the watch caches, the outage is logged, staleness is reported, and the caches catch up
 * by themselves once the API is back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseServeArgs } from '../../src/cli/serve-options.ts';
import { startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { loadKubeConfig } from '../../src/kubernetes/kubeconfig.ts';
import { InformerObjectSource, type ObjectCacheStatus } from '../../src/kubernetes/object-cache.ts';
import { parseSelector } from '../../src/rules/selector.ts';
import { WELL_KNOWN_RESOURCES } from '../../src/rules/well-known-resources.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { httpsGet } from '../harness/https-get.ts';
import { addIntegrationObjects, counter, integrationSeries, START } from '../harness/dataset.ts';

const RULES = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const PODS = WELL_KNOWN_RESOURCES.find((r) => r.group === '' && r.resource === 'pods')!;
const WEB = parseSelector('app=web');

async function eventually<T>(what: string, fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  do {
    last = await fn();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  } while (Date.now() < deadline);
  assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
}

class LogLines {
  readonly lines: { level: 'info' | 'warn'; msg: string }[] = [];
  readonly log = {
    info: (msg: string) => this.lines.push({ level: 'info', msg }),
    warn: (msg: string) => this.lines.push({ level: 'warn', msg }),
  };
  matching(level: 'info' | 'warn', pattern: RegExp): string[] {
    return this.lines.filter((l) => l.level === level && pattern.test(l.msg)).map((l) => l.msg);
  }
}

describe('object caches during a Kubernetes API outage', () => {
  let kube: FakeKubeApiServer;
  let objects: InformerObjectSource;
  const logs = new LogLines();
  const podsStatus = (): ObjectCacheStatus => objects.status().find((s) => s.resource === 'pods')!;
  const names = async (): Promise<string[]> => (await objects.list(PODS, 'team-a', WEB)).map((o) => o.name);

  before(async () => {
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    // Short thresholds stand in for the production 60 s, so the test sees staleness in well under a second.
    objects = new InformerObjectSource(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }), {
      log: logs.log,
      staleAfterMs: 400,
      staleCheckIntervalMs: 25,
      initialBackoffMs: 100,
      maxBackoffMs: 400,
    });
  });
  after(async () => {
    await objects?.stop();
    await kube?.stop();
  });

  test('label selectors are answered from the cache while the API is down; staleness is logged once; it recovers', async () => {
    assert.deepEqual(await names(), ['web-1', 'web-2', 'web-3', 'web-4']);
    const fresh = await eventually('watching', podsStatus, (s) => s.watching);
    assert.equal(fresh.synced, true);
    assert.equal(fresh.stale, false);
    assert.equal(fresh.staleForMs, 0);
    assert.ok(fresh.lastSync && Math.abs(fresh.lastSync.getTime() - Date.now()) < 1000, 'lastSync is now while the watch is open');

    const wentDown = Date.now();
    kube.setDown(true);
    const dropped = await eventually('watch dropped', podsStatus, (s) => !s.watching);
    assert.ok(dropped.lastSync && Math.abs(dropped.lastSync.getTime() - wentDown) < 1000, 'lastSync is when the watch ended');
    // Served from memory: the API's 503 never reaches a caller that already has a synced cache.
    const listsBefore = kube.stats().lists;
    for (let i = 0; i < 5; i++) assert.deepEqual(await names(), ['web-1', 'web-2', 'web-3', 'web-4']);
    await eventually('outage logged', () => logs.matching('warn', /^watch of \/api\/v1\/pods failed .*; serving cached objects, retrying in \d+ ms$/), (l) => l.length > 0);

    const stale = await eventually('stale', podsStatus, (s) => s.stale);
    assert.ok(stale.staleForMs > 400);
    assert.equal(stale.lastSync?.getTime(), dropped.lastSync?.getTime(), 'lastSync stays at the last confirmation');
    assert.deepEqual(await names(), ['web-1', 'web-2', 'web-3', 'web-4'], 'a stale cache still answers');
    await new Promise((r) => setTimeout(r, 300));
    const staleWarnings = logs.matching('warn', /^the object cache for pods is stale/);
    assert.equal(staleWarnings.length, 1, `logged once per outage: ${staleWarnings.join(' | ')}`);
    assert.match(
      staleWarnings[0]!,
      /^the object cache for pods is stale: the Kubernetes API has not confirmed it for \d+\.\d s \(last sync \d{4}-\d\d-\d\dT[\d:.]+Z\); label selectors are still answered from it, so pods created, relabelled or deleted since then are not seen$/,
    );

    // Changed while down: the resumed watch delivers it. Added after: the open watch delivers it.
    kube.addPod('team-a', 'api-1', { app: 'web' });
    kube.setDown(false);
    await eventually('watching again', podsStatus, (s) => s.watching && !s.stale);
    kube.addPod('team-a', 'web-9', { app: 'web' });
    assert.deepEqual(
      await eventually('new pods visible', names, (n) => n.includes('web-9')),
      ['api-1', 'web-1', 'web-2', 'web-3', 'web-4', 'web-9'],
    );
    assert.equal(logs.matching('info', /^the object cache for pods is in sync with the Kubernetes API again$/).length, 1);
    assert.equal(kube.stats().lists, listsBefore, 'the watch resumed from its resourceVersion: no relist needed');
    kube.addPod('team-a', 'api-1', { app: 'api' });
    kube.remove('v1', 'Pod', 'team-a', 'web-9');
    await eventually('back to the original pods', names, (n) => n.length === 4);
  });

  test('an outage long enough for the watch history to expire ends in a relist, still without a restart', async () => {
    await eventually('watching', podsStatus, (s) => s.watching);
    const lists = kube.stats().lists;
    kube.setDown(true);
    await eventually('watch dropped', podsStatus, (s) => !s.watching);
    kube.addPod('team-a', 'web-8', { app: 'web' });
    kube.expireHistory();
    kube.setDown(false);
    assert.deepEqual(await eventually('relisted', names, (n) => n.includes('web-8')), ['web-1', 'web-2', 'web-3', 'web-4', 'web-8']);
    assert.ok(kube.stats().lists > lists, 'a 410 after the outage made the cache list again');
    kube.remove('v1', 'Pod', 'team-a', 'web-8');
    await eventually('web-8 gone', names, (n) => !n.includes('web-8'));
  });

  test('a cache that never listed fails requests with 503 and says so in the log, then syncs once the API is up', async () => {
    const down = await startFakeKubeApiServer();
    down.addNamespace('team-a');
    down.addPod('team-a', 'web-1', { app: 'web' });
    down.setDown(true);
    const never = new LogLines();
    const source = new InformerObjectSource(loadKubeConfig({ kubeconfig: down.kubeconfigPath }), {
      log: never.log,
      syncTimeoutMs: 200,
      staleAfterMs: 300,
      staleCheckIntervalMs: 25,
      initialBackoffMs: 100,
      maxBackoffMs: 200,
    });
    try {
      await assert.rejects(source.list(PODS, 'team-a', WEB), (err: any) => err.code === 503 && /has not synced with the Kubernetes API yet/.test(err.message));
      const s = source.status()[0]!;
      assert.equal(s.synced, false);
      assert.equal(s.lastSync, null);
      await eventually('never-synced warning', () => never.matching('warn', /^the object cache for pods has not been able to list from the Kubernetes API for [\d.]+ s; requests that need it fail with 503$/), (l) => l.length === 1);
      assert.ok(never.matching('warn', /^watch of \/api\/v1\/pods failed .*; requests that need it fail with 503 until it lists, retrying in \d+ ms$/).length > 0);
      down.setDown(false);
      assert.deepEqual(await eventually('listed', async () => (await source.list(PODS, 'team-a', WEB).catch(() => [])).map((o) => o.name), (n) => n.length === 1), ['web-1']);
      assert.equal(source.status()[0]!.synced, true);
    } finally {
      await source.stop();
      await down.stop();
    }
  });
});

describe('the adapter during a Kubernetes API outage', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let server: RunningServer;
  const logLines: { level: number; msg: string }[] = [];

  before(async () => {
    prometheus = await startPrometheus({
      series: [...integrationSeries(), counter('test_cpu_seconds_total', { namespace: 'team-a', pod: 'late-1', container: 'app' }, 0.3)],
      fromSeconds: START,
      toSeconds: START + 4 * 3600,
      stepSeconds: 15,
    });
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    // The product's wiring, as startTestAdapter builds it, with a logger the test can read.
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as { level: number; msg: string });
        done();
      },
    });
    server = await startServer(
      {
        ...parseServeArgs(['--bind-address=127.0.0.1', '--secure-port=0', '--insecure-disable-auth', '--prometheus-timeout=5s', '--query-cache-ttl=0']),
        config: RULES,
        prometheusUrl: prometheus.url,
        kubeconfig: kube.kubeconfigPath,
      },
      pino({ level: 'info' }, sink),
    );
  });
  after(async () => {
    await server?.close();
    await kube?.stop();
    await prometheus?.stop();
  });

  const get = (path: string) => httpsGet(`${server.url}${path}`, { rejectUnauthorized: false });
  const read = async (): Promise<[string, string][]> => {
    const res = await get(`${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`);
    assert.equal(res.status, 200, res.text);
    return res.json.items.map((i: any) => [i.describedObject.name, i.value]);
  };

  test('label-selector reads keep answering, the outage is logged, and a pod added after it shows up without a restart', async () => {
    const before = [['web-1', '250m'], ['web-2', '500m'], ['web-3', '1500m']];
    assert.deepEqual(await read(), before);

    kube.setDown(true);
    await eventually(
      'outage logged as a warning',
      () => logLines.filter((l) => l.level === 40 && /^watch of \/api\/v1\/pods failed .*serving cached objects/.test(l.msg)),
      (l) => l.length > 0,
    );
    for (let i = 0; i < 5; i++) assert.deepEqual(await read(), before, 'answered from the watch cache during the outage');
    for (const path of ['/healthz', '/livez', '/readyz']) assert.equal((await get(path)).status, 200, path);
    const refused = kube.stats().requests.filter((r) => r.verb === 'watch').length;
    assert.ok(refused > 0);

    kube.setDown(false);
    kube.addPod('team-a', 'late-1', { app: 'web' });
    assert.deepEqual(
      await eventually('late-1 appears', read, (items) => items.some(([n]) => n === 'late-1')),
      [['late-1', '300m'], ...before],
    );
  });
});
