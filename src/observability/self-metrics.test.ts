import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readExposition, sampleValue } from '../../test/harness/exposition-reader.ts';
import { BadRequestError, InternalError, ServiceUnavailableError, TimeoutError } from '../errors.ts';
import { apiGroupOfPath, METRIC_PREFIX, queryOutcome, SelfMetrics } from './self-metrics.ts';

const P = METRIC_PREFIX;

async function scrape(m: SelfMetrics) {
  return readExposition(await m.scrape());
}

describe('SelfMetrics', () => {
  it('records requests by group and code in a counter and a histogram', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    m.observeRequest('custom.metrics.k8s.io', 200, 0.003);
    m.observeRequest('custom.metrics.k8s.io', 200, 0.2);
    m.observeRequest('external.metrics.k8s.io', 503, 2);
    const f = await scrape(m);
    assert.equal(f.get(`${P}requests_total`)?.type, 'counter');
    assert.equal(f.get(`${P}requests_duration_seconds`)?.type, 'histogram');
    assert.equal(sampleValue(f, `${P}requests_total`, { group: 'custom.metrics.k8s.io', code: '200' }), 2);
    assert.equal(sampleValue(f, `${P}requests_total`, { group: 'external.metrics.k8s.io', code: '503' }), 1);
    const h = { group: 'custom.metrics.k8s.io', code: '200' };
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_count`, h), 2);
    assert.ok(Math.abs(sampleValue(f, `${P}requests_duration_seconds_sum`, h) - 0.203) < 1e-9);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_bucket`, { ...h, le: '0.0005' }), 0);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_bucket`, { ...h, le: '0.005' }), 1);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_bucket`, { ...h, le: '0.25' }), 2);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_bucket`, { ...h, le: '10' }), 2);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_bucket`, { ...h, le: '+Inf' }), 2);
  });

  it('labels nonsense status codes and negative durations safely', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    m.observeRequest('', 42, -1);
    const f = await scrape(m);
    assert.equal(sampleValue(f, `${P}requests_total`, { group: 'unknown', code: 'invalid' }), 1);
    assert.equal(sampleValue(f, `${P}requests_duration_seconds_sum`, { group: 'unknown', code: 'invalid' }), 0);
  });

  it('records Prometheus queries by rule, backend and outcome', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    m.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://prom:9090', 'success', 0.004);
    m.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://prom:9090', 'timeout', 30);
    m.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://prom:9090', 'success', 0.006);
    const f = await scrape(m);
    const ok = { rule: 'rules.yaml metrics[0] (cpu)', backend: 'http://prom:9090', outcome: 'success' };
    assert.equal(sampleValue(f, `${P}prometheus_queries_total`, ok), 2);
    assert.equal(sampleValue(f, `${P}prometheus_queries_total`, { ...ok, outcome: 'timeout' }), 1);
    assert.equal(sampleValue(f, `${P}prometheus_query_duration_seconds_bucket`, { ...ok, le: '0.005' }), 1);
    assert.equal(sampleValue(f, `${P}prometheus_query_duration_seconds_bucket`, { ...ok, le: '0.01' }), 2);
    assert.equal(sampleValue(f, `${P}prometheus_query_duration_seconds_bucket`, { ...ok, outcome: 'timeout', le: '10' }), 0);
    assert.equal(sampleValue(f, `${P}prometheus_query_duration_seconds_bucket`, { ...ok, outcome: 'timeout', le: '30' }), 1);
  });

  it('counts cache results, exporting every result from the start', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    let f = await scrape(m);
    for (const result of ['hit', 'miss', 'coalesced']) assert.equal(sampleValue(f, `${P}query_cache_requests_total`, { result }), 0);
    m.cacheResult('hit');
    m.cacheResult('hit');
    m.cacheResult('coalesced');
    f = await scrape(m);
    assert.equal(sampleValue(f, `${P}query_cache_requests_total`, { result: 'hit' }), 2);
    assert.equal(sampleValue(f, `${P}query_cache_requests_total`, { result: 'miss' }), 0);
    assert.equal(sampleValue(f, `${P}query_cache_requests_total`, { result: 'coalesced' }), 1);
  });

  it('replaces the per-rule discovery gauges on each relist and counts failed relists', async () => {
    let now = 1_700_000_000_000;
    const m = new SelfMetrics({ processMetrics: false, now: () => now });
    let f = await scrape(m);
    assert.equal(sampleValue(f, `${P}discovery_relist_failures_total`), 0);
    assert.equal(sampleValue(f, `${P}discovery_last_success_timestamp_seconds`), 0);

    m.observeRelist(0.3, [
      { rule: 'a.yaml rules[0]', series: 120, metrics: 4 },
      { rule: 'a.yaml rules[1]', series: 7, metrics: 1 },
    ], true);
    f = await scrape(m);
    assert.equal(sampleValue(f, `${P}discovery_series`, { rule: 'a.yaml rules[0]' }), 120);
    assert.equal(sampleValue(f, `${P}discovery_metrics`, { rule: 'a.yaml rules[1]' }), 1);
    assert.equal(sampleValue(f, `${P}discovery_last_success_timestamp_seconds`), 1_700_000_000);
    assert.equal(sampleValue(f, `${P}discovery_relist_duration_seconds_count`), 1);

    now += 60_000;
    m.observeRelist(12, [{ rule: 'a.yaml rules[1]', series: 9, metrics: 2 }], false);
    f = await scrape(m);
    assert.deepEqual(
      f.get(`${P}discovery_series`)?.samples.map((s) => [s.labels, s.value]),
      [[{ rule: 'a.yaml rules[1]' }, 9]],
    );
    assert.equal(sampleValue(f, `${P}discovery_relist_failures_total`), 1);
    assert.equal(sampleValue(f, `${P}discovery_last_success_timestamp_seconds`), 1_700_000_000, 'a failed relist is not a success');
    assert.equal(sampleValue(f, `${P}discovery_relist_duration_seconds_count`), 2);
    assert.equal(sampleValue(f, `${P}discovery_relist_duration_seconds_bucket`, { le: '10' }), 1);
  });

  it('counts config reloads and keeps the last success time across failures', async () => {
    let now = 1_700_000_000_500;
    const m = new SelfMetrics({ processMetrics: false, now: () => now });
    m.configReload('success', 12);
    now += 30_000;
    m.configReload('failure', 12);
    const f = await scrape(m);
    assert.equal(sampleValue(f, `${P}config_reloads_total`, { outcome: 'success' }), 1);
    assert.equal(sampleValue(f, `${P}config_reloads_total`, { outcome: 'failure' }), 1);
    assert.equal(sampleValue(f, `${P}config_last_reload_success_timestamp_seconds`), 1_700_000_000.5);
    assert.equal(sampleValue(f, `${P}config_rules`), 12);
  });

  it('records value ages in buckets from 1 s to 1 h, clamping clock skew to 0', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    m.observeValueAge('r', 3);
    m.observeValueAge('r', 4000);
    m.observeValueAge('r', -2);
    const f = await scrape(m);
    const buckets = f.get(`${P}value_age_seconds`)!.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le);
    assert.deepEqual(buckets, ['1', '2', '5', '10', '15', '30', '60', '120', '300', '600', '1800', '3600', '+Inf']);
    assert.equal(sampleValue(f, `${P}value_age_seconds_bucket`, { rule: 'r', le: '1' }), 1);
    assert.equal(sampleValue(f, `${P}value_age_seconds_bucket`, { rule: 'r', le: '5' }), 2);
    assert.equal(sampleValue(f, `${P}value_age_seconds_bucket`, { rule: 'r', le: '3600' }), 2);
    assert.equal(sampleValue(f, `${P}value_age_seconds_count`, { rule: 'r' }), 3);
  });

  it('sets the object cache and Prometheus concurrency gauges, sampled on scrape', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    let inflight = 3;
    m.onScrape(() => m.prometheusInflight(inflight));
    m.onScrape(() => {
      throw new Error('broken hook');
    });
    m.prometheusQueued(5);
    m.objectCacheStaleness('pods', 4.5);
    m.objectCacheStaleness('deployments.apps', 0);
    let f = await scrape(m);
    assert.equal(sampleValue(f, `${P}prometheus_inflight_queries`), 3);
    assert.equal(sampleValue(f, `${P}prometheus_queued_queries`), 5);
    assert.equal(sampleValue(f, `${P}object_cache_staleness_seconds`, { resource: 'pods' }), 4.5);
    assert.equal(sampleValue(f, `${P}object_cache_staleness_seconds`, { resource: 'deployments.apps' }), 0);
    inflight = 0;
    f = await scrape(m);
    assert.equal(sampleValue(f, `${P}prometheus_inflight_queries`), 0);
  });

  it('folds label values past the cap into "other", per metric', async () => {
    const m = new SelfMetrics({ processMetrics: false, maxLabelValues: 3 });
    for (let i = 0; i < 10; i++) m.observePrometheusQuery(`rule-${i}`, 'b', 'success', 0.01);
    m.observePrometheusQuery('rule-1', 'b', 'error', 0.01);
    for (let i = 5; i < 10; i++) m.observeValueAge(`rule-${i}`, 1);
    m.observeRelist(1, Array.from({ length: 6 }, (_, i) => ({ rule: `rule-${i}`, series: 10, metrics: 1 })), true);
    const f = await scrape(m);
    const rules = (name: string) => [...new Set(f.get(name)!.samples.map((s) => s.labels.rule))].sort();

    assert.deepEqual(rules(`${P}prometheus_queries_total`), ['other', 'rule-0', 'rule-1', 'rule-2']);
    assert.equal(sampleValue(f, `${P}prometheus_queries_total`, { rule: 'other' }), 7);
    assert.equal(sampleValue(f, `${P}prometheus_queries_total`, { rule: 'rule-1', outcome: 'error' }), 1, 'an admitted value keeps its own series');
    // Each metric has its own budget: value ages saw other rules first.
    assert.deepEqual(rules(`${P}value_age_seconds`), ['other', 'rule-5', 'rule-6', 'rule-7']);
    // Gauges fold by summing, so totals stay right.
    assert.deepEqual(rules(`${P}discovery_series`), ['other', 'rule-0', 'rule-1', 'rule-2']);
    assert.equal(sampleValue(f, `${P}discovery_series`, { rule: 'other' }), 30);
    assert.equal(sampleValue(f, `${P}discovery_metrics`, { rule: 'other' }), 3);
  });

  it('shortens huge label values', async () => {
    const m = new SelfMetrics({ processMetrics: false });
    m.observeValueAge('x'.repeat(10_000), 1);
    const f = await scrape(m);
    const rule = f.get(`${P}value_age_seconds`)!.samples[0]!.labels.rule!;
    assert.equal(rule.length, 256);
    assert.ok(rule.endsWith('...'));
  });

  it('exports the Node process metrics with the adapter prefix, in its own registry', async () => {
    const m = new SelfMetrics();
    const f = await scrape(m);
    for (const name of ['process_cpu_seconds_total', 'process_start_time_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(f.has(`${P}${name}`), `${P}${name} is missing`);
    }
    for (const name of f.keys()) assert.ok(name.startsWith(P), `${name} has no prefix`);
    const { register } = await import('prom-client');
    assert.equal(register.getSingleMetric(`${P}requests_total`), undefined, 'the global registry stays untouched');
    // Two instances in one process (tests, a restart in place) must not collide.
    assert.ok(new SelfMetrics().registry !== m.registry);
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  });
});

describe('apiGroupOfPath', () => {
  it('maps request URLs to a fixed set of groups', () => {
    const cases: [string, string][] = [
      ['/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu?labelSelector=a%3Db', 'custom.metrics.k8s.io'],
      ['/apis/custom.metrics.k8s.io/v1beta1', 'custom.metrics.k8s.io'],
      ['/apis/external.metrics.k8s.io/v1beta1/namespaces/x/queue', 'external.metrics.k8s.io'],
      ['/apis/metrics.k8s.io/v1beta1/nodes', 'metrics.k8s.io'],
      ['/apis', 'discovery'],
      ['/api/v1', 'discovery'],
      ['/openapi/v2', 'discovery'],
      ['/readyz', 'health'],
      ['/healthz?verbose', 'health'],
      ['/apis/evil.example.com/v1/x', 'other'],
      ['/random/path', 'other'],
    ];
    for (const [url, group] of cases) assert.equal(apiGroupOfPath(url), group, url);
  });
});

describe('queryOutcome', () => {
  it('follows the error classes the Prometheus client throws', () => {
    assert.equal(queryOutcome(null), 'success');
    assert.equal(queryOutcome(undefined), 'success');
    assert.equal(queryOutcome(new TimeoutError('t')), 'timeout');
    assert.equal(queryOutcome(new ServiceUnavailableError('u')), 'unavailable');
    assert.equal(queryOutcome(new InternalError('rejected')), 'bad_query');
    assert.equal(queryOutcome(new BadRequestError('b')), 'error');
    assert.equal(queryOutcome(new Error('boom')), 'error');
  });
});
