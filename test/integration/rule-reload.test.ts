/**
 * Live reload of the rule file while requests are served: a real Prometheus, the FAKE Kubernetes API
 * (test/harness/fake-kube-apiserver.ts) and the adapter's real wiring, with the rule file in a temp directory
 * that is rewritten the way a ConfigMap update is (a new file renamed into place).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { freeLoopbackPort, startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { parseServeArgs } from '../../src/cli/serve-options.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { httpsGet } from '../harness/https-get.ts';
import { addIntegrationObjects, integrationSeries, START } from '../harness/dataset.ts';

const FIXTURE = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const SERVED_THROUGHOUT = `${V2}/namespaces/team-a/pods/*/memory_bytes`;

const ADDED_RULE = `
  - name: memory_copy
    resource: pods
    query: sum by (<<.GroupBy>>) (test_memory_bytes{<<.LabelMatchers>>})
`;
const BROKEN_RULE = `
  - name: broken
    resource: pods
    query: sum by (<<.GroupBy>>) (test_memory_bytes{<<.NoSuchField>>})
  - name: memory_copy2
    resource: pods
    query: sum by (<<.GroupBy>>) (test_memory_bytes{<<.LabelMatchers>>})
`;

/** Removes the `ratio` rule (the fixture's last one) and appends `extra`. */
function withoutRatio(base: string, extra: string): string {
  const at = base.indexOf('  - name: ratio');
  assert.ok(at > 0, 'the fixture ends with the ratio rule');
  return base.slice(0, at) + extra.replace(/^\n/, '');
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

describe('rule file reload while serving', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;
  let server: RunningServer;
  let dir: string;
  let file: string;
  let base: string;
  let metricsUrl: string;
  const logs: string[] = [];
  const failures: string[] = [];
  let requests = 0;
  let looping = true;
  let loops: Promise<void>[] = [];

  const get = (path: string) => httpsGet(`${server.url}${path}`, { rejectUnauthorized: false });
  /** What a ConfigMap update does: the new content appears at once, never half-written. */
  const replaceFile = async (text: string): Promise<void> => {
    await writeFile(join(dir, '.next'), text);
    await rename(join(dir, '.next'), file);
  };
  const reloads = async (outcome: string): Promise<number> => {
    const text = await (await fetch(metricsUrl)).text();
    return Number(new RegExp(`^prometheus_metrics_adapter_config_reloads_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  };
  const gauge = async (name: string): Promise<number> => {
    const text = await (await fetch(metricsUrl)).text();
    return Number(new RegExp(`^prometheus_metrics_adapter_${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  };

  before(async () => {
    prometheus = await startPrometheus({ series: integrationSeries(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    dir = await mkdtemp(join(tmpdir(), 'rule-reload-'));
    file = join(dir, 'rules.yaml');
    base = await readFile(FIXTURE, 'utf8');
    await writeFile(file, base);
    const port = await freeLoopbackPort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    server = await startServer(
      {
        ...parseServeArgs(['--bind-address=127.0.0.1', '--secure-port=0', '--insecure-disable-auth', '--prometheus-timeout=5s']),
        config: file,
        prometheusUrl: prometheus.url,
        kubeconfig: kube.kubeconfigPath,
        metricsBindAddress: `127.0.0.1:${port}`,
        // Keep every request on the way to Prometheus, so each one runs against whatever rules are current.
        queryCacheTtlMs: 0,
      },
      log,
    );
    // Two loops of ~10 requests/s each: about 20 requests/s against a metric every version of the file has.
    const loop = async (): Promise<void> => {
      while (looping) {
        requests++;
        try {
          const res = await get(SERVED_THROUGHOUT);
          if (res.status !== 200 || res.json.items.length !== 2) failures.push(`${res.status}: ${res.text.slice(0, 200)}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    loops = [loop(), loop()];
  });
  after(async () => {
    looping = false;
    await Promise.all(loops);
    await server?.close();
    await kube?.stop();
    await prometheus?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('start-up counts as one successful load', async () => {
    assert.equal(await reloads('success'), 1);
    assert.equal(await reloads('failure'), 0);
    assert.equal(await gauge('config_rules'), 8);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/ratio`)).status, 200);
  });

  test('a good new file is picked up by the watch: the added metric answers, the removed one is 404', async () => {
    const before = requests;
    await replaceFile(withoutRatio(base, ADDED_RULE));
    await waitFor('memory_copy is served', async () => (await get(`${V2}/namespaces/team-a/pods/*/memory_copy`)).status === 200);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/ratio`)).status, 404);
    assert.equal(await reloads('success'), 2);
    assert.equal(await gauge('config_rules'), 8);
    assert.ok((await gauge('config_last_reload_success_timestamp_seconds')) > Date.now() / 1000 - 30);
    assert.ok(logs.some((l) => l.includes('rule file reloaded')));
    assert.ok(requests > before, 'requests were served during the reload');
    assert.deepEqual(failures, []);
  });

  test('a file with a YAML syntax error is rejected, logged, and the last good rules keep serving', async () => {
    await replaceFile(`${withoutRatio(base, ADDED_RULE)}\n  - name: [unclosed\n`);
    await waitFor('the failure is counted', async () => (await reloads('failure')) === 1);
    const rejected = logs.find((l) => l.includes('rule file rejected'));
    assert.ok(rejected, 'the rejection is logged');
    assert.equal(JSON.parse(rejected).level, 50, 'at error level');
    assert.match(rejected, /line \d+/, 'with the place of the problem');
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/memory_copy`)).status, 200);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/ratio`)).status, 404);
    assert.equal(await reloads('success'), 2);
    // Polls and further events do not report the same bad content again.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await reloads('failure'), 1);
    assert.deepEqual(failures, []);
  });

  test('a file with one bad rule among good ones serves the good ones and reports the bad one', async () => {
    await replaceFile(withoutRatio(base, ADDED_RULE + BROKEN_RULE));
    await waitFor('memory_copy2 is served', async () => (await get(`${V2}/namespaces/team-a/pods/*/memory_copy2`)).status === 200);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/memory_copy`)).status, 200);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/broken`)).status, 404);
    const skipped = logs.find((l) => l.includes('rule skipped'));
    assert.ok(skipped, 'the skipped rule is logged');
    assert.match(skipped, /metrics\[8\] \(broken\)/);
    assert.match(skipped, /NoSuchField/);
    assert.equal(await reloads('success'), 3);
    assert.equal(await gauge('config_rules'), 9);
    assert.deepEqual(failures, []);
  });

  test('reloadRules (the SIGHUP path) loads a changed file, and says when nothing changed or the file is bad', async () => {
    assert.equal(await server.reloadRules(), 'unchanged');
    await replaceFile(base);
    // Renamed into place, the file is complete, so the explicit reload gets there before the watch's debounce.
    assert.equal(await server.reloadRules(), 'reloaded');
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/ratio`)).status, 200);
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/memory_copy`)).status, 404);
    assert.equal(await reloads('success'), 4);

    await replaceFile('metrics: {');
    assert.equal(await server.reloadRules(), 'rejected');
    // Asked twice, judged twice: an explicit reload always says why.
    assert.equal(await server.reloadRules(), 'rejected');
    assert.equal((await get(`${V2}/namespaces/team-a/pods/*/ratio`)).status, 200);
    assert.ok((await reloads('failure')) >= 3);
    assert.deepEqual(failures, []);
    assert.ok(requests >= 20, `${requests} requests ran during the reloads`);
  });
});
