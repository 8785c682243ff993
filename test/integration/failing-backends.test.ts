/**
 * Prometheus failing in the ways production backends fail, end to end: the adapter's real wiring
 * (startTestAdapter), a real Prometheus, and between them a FAKE, fault-injecting proxy
 * (test/harness/fault-proxy.ts). For each fault: the Status a client gets, health checks keep answering
 * while it lasts, and the same request succeeds once it is cleared, without a restart.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { httpsGet } from '../harness/https-get.ts';
import { pino } from 'pino';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { addIntegrationObjects, integrationSeries, START } from '../harness/dataset.ts';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../harness/fault-proxy.ts';

const RULES = new URL('../fixtures/rules/failing-backends.yaml', import.meta.url).pathname;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const READ = `${V2}/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb`;
const CPU_RULE = `${RULES} metrics[0] (cpu_1m)`;
const BROKEN_RULE = `${RULES} metrics[1] (broken_promql)`;
const HEALTH = ['/healthz', '/livez', '/readyz'];

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A GET that also says how long the server took once the TLS connection was up (hundreds of handshakes at once would dominate otherwise). */
const timedGet = (url: string) => httpsGet(url, { rejectUnauthorized: false });

describe('failing Prometheus backends', () => {
  let prometheus: PrometheusProcess;
  let kube: FakeKubeApiServer;

  before(async () => {
    prometheus = await startPrometheus({ series: integrationSeries(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
  });
  after(async () => {
    await kube?.stop();
    await prometheus?.stop();
  });

  describe('one fault at a time', () => {
    const TIMEOUT_MS = 1500;
    let proxy: FaultProxy;
    let adapter: TestAdapter;
    // The adapter's warnings and errors, as JSON lines.
    const logged: Record<string, unknown>[] = [];

    before(async () => {
      proxy = await startFaultProxy(prometheus.url, { slowDelayMs: TIMEOUT_MS + 1000 });
      // No result cache: every read must reach the backend, or a cached answer would hide the fault.
      adapter = await startTestAdapter(
        {
          config: RULES,
          prometheusUrl: proxy.url,
          kubeconfig: kube.kubeconfigPath,
          queryCacheTtlMs: 0,
          prometheusTimeoutMs: TIMEOUT_MS,
        },
        pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) }),
      );
      const healthy = await adapter.get(READ);
      assert.equal(healthy.status, 200, healthy.text);
    });
    after(async () => {
      await adapter?.close();
      await proxy?.stop();
    });

    /** Health endpoints answer 200 while `pending` (a read stuck on the fault) has not settled yet. */
    async function assertHealthyWhile(pending: Promise<unknown>): Promise<void> {
      let settled = false;
      void pending.finally(() => (settled = true));
      await Promise.all(
        HEALTH.map(async (path) => {
          const res = await adapter.get(path);
          assert.equal(res.status, 200, `${path} during the fault: ${res.text}`);
          assert.equal(res.text, 'ok');
          assert.equal(settled, false, `${path} was answered while the read was still stuck on the fault`);
        }),
      );
    }

    async function assertRecovers(): Promise<void> {
      const res = await adapter.get(READ);
      assert.equal(res.status, 200, `after the fault is cleared: ${res.text}`);
      assert.deepEqual(res.json.items.map((i: any) => [i.describedObject.name, i.value]), [['web-1', '250m'], ['web-2', '500m'], ['web-3', '1500m']]);
    }

    const cases: { mode: FaultMode; code: number; reason: string; message: (url: string) => RegExp; slow?: boolean }[] = [
      {
        mode: 'slow',
        code: 504,
        reason: 'Timeout',
        message: (u) => new RegExp(`^Prometheus at ${escape(u)} did not answer within ${TIMEOUT_MS} ms \\(--prometheus-timeout\\); rule ${escape(CPU_RULE)}$`),
        slow: true,
      },
      {
        mode: 'hang',
        code: 504,
        reason: 'Timeout',
        message: (u) => new RegExp(`^Prometheus at ${escape(u)} did not answer within ${TIMEOUT_MS} ms \\(--prometheus-timeout\\); rule ${escape(CPU_RULE)}$`),
        slow: true,
      },
      {
        // Bytes keep coming, so no idle timeout fires; only a deadline on the whole call ends it.
        mode: 'trickle',
        code: 504,
        reason: 'Timeout',
        message: (u) => new RegExp(`^Prometheus at ${escape(u)} did not answer within ${TIMEOUT_MS} ms \\(--prometheus-timeout\\); rule ${escape(CPU_RULE)}$`),
        slow: true,
      },
      {
        mode: 'http-500',
        code: 503,
        reason: 'ServiceUnavailable',
        message: (u) => new RegExp(`^Prometheus at ${escape(u)} failed: HTTP 500 \\(internal: fault proxy: storage failure\\); rule ${escape(CPU_RULE)}$`),
      },
      {
        mode: 'prometheus-timeout',
        code: 504,
        reason: 'Timeout',
        message: (u) =>
          new RegExp(`^Prometheus at ${escape(u)} timed out evaluating the query \\(timeout: query timed out in query execution\\); rule ${escape(CPU_RULE)}$`),
      },
      {
        mode: 'bad-data',
        code: 500,
        reason: 'InternalError',
        message: (u) =>
          new RegExp(
            `^Prometheus at ${escape(u)} rejected the query \\(bad_data: invalid parameter "query": 1:9: parse error: unexpected end of input \\(fault proxy\\)\\); rule ${escape(CPU_RULE)}$`,
          ),
      },
      {
        mode: 'malformed-json',
        code: 503,
        reason: 'ServiceUnavailable',
        message: (u) =>
          new RegExp(`^Prometheus at ${escape(u)} answered HTTP 200 with a body that is not a JSON API response: ".*"; rule ${escape(CPU_RULE)}$`),
      },
    ];

    for (const c of cases) {
      test(`${c.mode}: ${c.code} ${c.reason} naming the backend and the rule; health checks answer; then it recovers`, async () => {
        proxy.setMode(c.mode);
        const pending = timedGet(`${adapter.url}${READ}`);
        try {
          if (c.slow) await assertHealthyWhile(pending);
          const res = await pending;
          const took = res.serverMs;
          assert.equal(res.status, c.code, res.text);
          assert.equal(res.json.kind, 'Status');
          assert.equal(res.json.status, 'Failure');
          assert.equal(res.json.code, c.code);
          assert.equal(res.json.reason, c.reason);
          assert.match(res.json.message, c.message(proxy.url));
          assert.equal(res.headers['retry-after'], undefined, 'a broken backend is no reason to retry at once');
          if (c.slow) assert.ok(took >= TIMEOUT_MS - 50 && took < TIMEOUT_MS + 1000, `the fault cost the request ${took} ms`);
          for (const path of HEALTH) assert.equal((await adapter.get(path)).status, 200, path);
        } finally {
          // Identical reads are merged: a read still stuck on this fault would answer the next test's read too.
          await pending.catch(() => undefined);
          proxy.setMode('pass');
        }
        await assertRecovers();
      });
    }

    test('connection refused (the proxy is closed): 503 ServiceUnavailable; it recovers once the port listens again', async () => {
      await proxy.close();
      try {
        logged.length = 0;
        const res = await adapter.get(READ);
        assert.equal(res.status, 503, res.text);
        assert.equal(res.json.reason, 'ServiceUnavailable');
        assert.match(res.json.message, new RegExp(`^Prometheus at ${escape(proxy.url)} is unreachable: ECONNREFUSED .*; rule ${escape(CPU_RULE)}$`));
        // One warning for the failed request, naming the query that failed it; not one more from the provider.
        assert.equal(logged.length, 1, JSON.stringify(logged));
        const line = logged[0]!;
        assert.equal(line['msg'], 'request failed');
        assert.equal(line['code'], 503);
        assert.equal(line['url'], READ);
        const failed = line['failedQueries'] as { rule: string; query: string; error: string }[];
        assert.equal(failed.length, 1);
        assert.equal(failed[0]!.rule, CPU_RULE);
        assert.match(failed[0]!.query, /team-a/);
        assert.match(failed[0]!.error, /is unreachable: ECONNREFUSED/);
        for (const path of HEALTH) assert.equal((await adapter.get(path)).status, 200, path);
      } finally {
        await proxy.reopen();
      }
      await assertRecovers();
    });

    test('a rule with PromQL Prometheus cannot parse: 500 InternalError with its parse error; other rules keep working', async () => {
      const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/broken_promql`);
      assert.equal(res.status, 500, res.text);
      assert.equal(res.json.reason, 'InternalError');
      assert.match(
        res.json.message,
        new RegExp(`^Prometheus at ${escape(proxy.url)} rejected the query \\(bad_data: invalid parameter "query": 1:\\d+: parse error: .+\\); rule ${escape(BROKEN_RULE)}$`),
      );
      await assertRecovers();
    });
  });

  describe('a slow backend under load', () => {
    const TIMEOUT_MS = 2000;
    const MAX_CONCURRENT = 4;
    const MAX_QUEUED = 16;
    let proxy: FaultProxy;
    let adapter: TestAdapter;

    before(async () => {
      proxy = await startFaultProxy(prometheus.url, { slowDelayMs: TIMEOUT_MS + 1000 });
      adapter = await startTestAdapter({
        config: RULES,
        prometheusUrl: proxy.url,
        kubeconfig: kube.kubeconfigPath,
        queryCacheTtlMs: 0,
        prometheusTimeoutMs: TIMEOUT_MS,
        prometheusMaxConcurrentQueries: MAX_CONCURRENT,
        prometheusMaxQueuedQueries: MAX_QUEUED,
      });
      // Warm the object cache, so every request below goes straight to the queries.
      assert.equal((await adapter.get(READ)).status, 200);
    });
    after(async () => {
      await adapter?.close();
      await proxy?.stop();
    });

    test('200 concurrent different queries never exceed the concurrency limit at the backend, and the excess fails fast', async () => {
      proxy.setMode('slow');
      proxy.resetStats();
      const N = 200;
      let healthAnsweredAt: number | undefined;
      const answers = await Promise.all([
        ...Array.from({ length: N }, async (_, i) => {
          // A different metric selector per request: a different query, so nothing is merged or cached.
          const res = await timedGet(`${adapter.url}${READ}&metricLabelSelector=container%3Dc${i}`);
          return { res, ms: res.serverMs, at: performance.now() };
        }),
        (async () => {
          await new Promise((r) => setTimeout(r, 300));
          const res = await adapter.get('/healthz');
          assert.equal(res.status, 200);
          healthAnsweredAt = performance.now();
          return null;
        })(),
      ]);
      proxy.setMode('pass');
      const results = answers.filter((a) => a !== null);

      const stats = proxy.stats();
      assert.ok(stats.maxInFlight <= MAX_CONCURRENT, `at most ${MAX_CONCURRENT} in flight at the backend, saw ${stats.maxInFlight}`);
      assert.ok(stats.maxInFlight >= 1);

      const refused = results.filter((r) => r.res.status === 503);
      const timedOut = results.filter((r) => r.res.status === 504);
      assert.equal(refused.length + timedOut.length, N, `every request ends in 503 or 504: ${results.map((r) => r.res.status).join(',')}`);
      // Requests only reach the backend with a slot, and only admitted requests (slot or queue place) time out.
      assert.ok(stats.requests <= timedOut.length, `${stats.requests} backend requests for ${timedOut.length} admitted`);
      assert.ok(timedOut.length <= N - refused.length);
      assert.ok(refused.length >= N - MAX_CONCURRENT - MAX_QUEUED - 30, `most of the excess is refused: ${refused.length}`);
      for (const { res, ms } of refused) {
        assert.equal(res.json.reason, 'ServiceUnavailable');
        assert.match(
          res.json.message,
          new RegExp(`^too many Prometheus queries waiting; retry later: ${MAX_CONCURRENT} queries to Prometheus at ${escape(proxy.url)} are in flight and ${MAX_QUEUED} more are queued`),
        );
        assert.match(res.json.message, new RegExp(`; rule ${escape(CPU_RULE)}$`));
        assert.equal(res.headers['retry-after'], '1');
        assert.deepEqual(res.json.details, { retryAfterSeconds: 1 });
        // Refused as soon as the server read them, long before any slot could free up: they did not wait in a queue.
        assert.ok(ms < TIMEOUT_MS, `refused ${ms} ms after connecting`);
      }
      let inFlightTimeouts = 0;
      for (const { res, ms } of timedOut) {
        assert.equal(res.json.reason, 'Timeout');
        if (res.json.message.startsWith(`Prometheus at ${proxy.url} did not answer within`)) inFlightTimeouts++;
        else assert.match(res.json.message, new RegExp(`^waited the whole ${TIMEOUT_MS} ms budget \\(--prometheus-timeout\\) for one of the ${MAX_CONCURRENT} query slots`));
        // Waiting counts against the timeout: an admitted request, queued or not, ends after one budget.
        assert.ok(ms >= TIMEOUT_MS - 50 && ms < TIMEOUT_MS + 5000, `an admitted request ended ${ms} ms after connecting`);
      }
      assert.ok(inFlightTimeouts >= 1);
      const overloadEnded = Math.max(...timedOut.map((t) => t.at));
      assert.ok(healthAnsweredAt !== undefined && healthAnsweredAt < overloadEnded, '/healthz was answered while the overload lasted');

      const after = await adapter.get(`${READ}&metricLabelSelector=container%3Dapp`);
      assert.equal(after.status, 200, after.text);
      assert.deepEqual(after.json.items.map((i: any) => i.value), ['200m', '450m', '1500m']);
    });
  });
});
