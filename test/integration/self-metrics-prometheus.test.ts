// A real Prometheus scrapes the self-metrics listener and evaluates every query of
// deploy/grafana-dashboard.json: the exposition is accepted by Prometheus's own parser, and every panel's PromQL
// is valid and returns data for an adapter that is doing a bit of everything.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { queryPrometheus, startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.ts';
import { SelfMetrics } from '../../src/observability/self-metrics.ts';

const DASHBOARD = new URL('../../deploy/grafana-dashboard.json', import.meta.url);
/** What Grafana would put in place of the dashboard's variables; startPrometheus names its scrape job `workload`. */
const VARIABLES: Record<string, string> = {
  $__rate_interval: '1m',
  $__range: '1h',
  $job: 'workload',
  $instance: '.*',
  $rule: '.*',
};

interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; query: { query: string } }[] };
}

function substitute(expr: string): string {
  // Longest names first, so $__range is not read as a prefix of something else.
  let out = expr;
  for (const name of Object.keys(VARIABLES).sort((a, b) => b.length - a.length)) out = out.replaceAll(name, VARIABLES[name]!);
  assert.ok(!out.includes('$'), `unknown variable in ${expr}`);
  return out;
}

/** A little of everything a working adapter records, with both good and bad outcomes. */
function activity(m: SelfMetrics, tick: number): void {
  m.observeRequest('custom.metrics.k8s.io', 200, 0.002 + (tick % 5) * 0.001);
  m.observeRequest('custom.metrics.k8s.io', 404, 0.001);
  m.observeRequest('external.metrics.k8s.io', 503, 0.05);
  m.observeRequest('health', 200, 0.0001);
  m.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://prometheus:9090', 'success', 0.003);
  m.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://prometheus:9090', 'timeout', 30);
  m.cacheResult('hit');
  m.cacheResult('miss');
  m.cacheResult('coalesced');
  m.observeRelist(0.2, [{ rule: 'adapter.yaml rules[0]', series: 40, metrics: 3 }], tick % 2 === 0);
  m.configReload(tick % 3 === 0 ? 'failure' : 'success', 4);
  m.observeValueAge('rules.yaml metrics[0] (cpu)', 20);
  m.objectCacheStaleness('pods', 1.5);
  m.prometheusInflight(tick % 3);
  m.prometheusQueued(tick % 2);
}

describe('the Grafana dashboard against a Prometheus scraping the self-metrics', () => {
  const metrics = new SelfMetrics();
  let server: MetricsServer;
  let prom: PrometheusProcess;
  let timer: NodeJS.Timeout;
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

  before(async () => {
    let tick = 0;
    activity(metrics, tick++);
    timer = setInterval(() => activity(metrics, tick++), 200);
    server = await startMetricsServer(metrics, '127.0.0.1:0', pino({ level: 'silent' }));
    const now = Math.floor(Date.now() / 1000);
    // startPrometheus backfills; one old sample keeps the TSDB from being empty without touching recent time.
    prom = await startPrometheus({
      series: [{ name: 'backfill_placeholder', type: 'gauge', labels: {}, value: () => 1 }],
      fromSeconds: now - 7 * 86400,
      toSeconds: now - 7 * 86400,
      stepSeconds: 15,
      scrape: { targets: [new URL(server.url).host], intervalSeconds: 1 },
    });
    // rate() needs two samples in its window, and a counter needs to have grown between them.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const scrapes = await queryPrometheus(prom.url, 'count_over_time(up{job="workload"}[1m])');
      if (Number(scrapes[0]?.value[1] ?? 0) >= 3) break;
      assert.ok(Date.now() < deadline, `Prometheus did not scrape ${server.url} three times in a minute:\n${prom.logTail()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  after(async () => {
    clearInterval(timer);
    await prom?.stop();
    await server?.close();
  });

  it('Prometheus accepts the exposition and every dashboard query returns data', async () => {
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: substitute(t.expr) })));
    assert.ok(queries.length >= 20);
    const up = await queryPrometheus(prom.url, 'up{job="workload"}');
    assert.equal(up[0]?.value[1], '1', `Prometheus could not scrape ${server.url}/metrics:\n${prom.logTail()}`);
    const empty: string[] = [];
    for (const q of queries) {
      // A syntax error or a type mismatch (an instant function on a range, say) throws here, with Prometheus's message.
      const result = await queryPrometheus(prom.url, q.expr);
      if (!result.some((s) => Number.isFinite(Number(s.value[1])))) empty.push(`${q.title}: ${q.expr}`);
    }
    assert.deepEqual(empty, [], 'queries without a finite value');
  });

  it('the template variables find their values', async () => {
    for (const v of dashboard.templating.list) {
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/s.exec(v.query.query);
      assert.ok(m, v.query.query);
      const result = await queryPrometheus(prom.url, substitute(m[1]!));
      assert.ok(result.some((s) => (s.metric[m[2]!] ?? '') !== ''), `$${v.name}: no ${m[2]} in ${m[1]}`);
    }
  });
});
