// The self-metrics listener over real HTTP on loopback: what Prometheus would scrape.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { parseHostPort, startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.ts';
import { METRIC_PREFIX as P, SelfMetrics } from '../../src/observability/self-metrics.ts';
import { readExposition, sampleValue } from '../harness/exposition-reader.ts';

const log = pino({ level: 'silent' });

function get(url: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics server', () => {
  const metrics = new SelfMetrics();
  let server: MetricsServer;

  before(async () => {
    metrics.observeRequest('custom.metrics.k8s.io', 200, 0.002);
    metrics.observePrometheusQuery('rules.yaml metrics[0] (cpu)', 'http://127.0.0.1:9090', 'success', 0.01);
    metrics.cacheResult('miss');
    metrics.configReload('success', 3);
    server = await startMetricsServer(metrics, '127.0.0.1:0', log);
  });
  after(() => server.close());

  it('listens on the port the OS chose and reports it', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(server.url, 'http://127.0.0.1:0');
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const res = await get(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const families = readExposition(res.body);
    assert.equal(families.get(`${P}requests_total`)?.type, 'counter');
    assert.equal(families.get(`${P}prometheus_query_duration_seconds`)?.type, 'histogram');
    assert.equal(families.get(`${P}process_resident_memory_bytes`)?.type, 'gauge');
    assert.equal(families.get(`${P}nodejs_eventloop_lag_p99_seconds`)?.type, 'gauge');
    assert.equal(sampleValue(families, `${P}requests_total`, { group: 'custom.metrics.k8s.io', code: '200' }), 1);
    assert.equal(sampleValue(families, `${P}query_cache_requests_total`, { result: 'miss' }), 1);
    assert.equal(sampleValue(families, `${P}config_rules`), 3);
    assert.ok(sampleValue(families, `${P}process_resident_memory_bytes`) > 0);
  });

  it('shows new observations on the next scrape, and ignores query strings', async () => {
    metrics.observeRequest('custom.metrics.k8s.io', 200, 0.002);
    const res = await get(`${server.url}/metrics?name[]=x`);
    assert.equal(sampleValue(readExposition(res.body), `${P}requests_total`, { group: 'custom.metrics.k8s.io', code: '200' }), 2);
  });

  it('answers HEAD without a body and refuses other methods', async () => {
    const head = await get(`${server.url}/metrics`, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const post = await get(`${server.url}/metrics`, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  it('answers 404 anywhere else', async () => {
    for (const path of ['/', '/metricsx', '/metrics/', '/apis/custom.metrics.k8s.io/v1beta2', '/healthz']) {
      const res = await get(`${server.url}${path}`);
      assert.equal(res.status, 404, path);
    }
  });
});

describe('metrics server binding', () => {
  it('listens on [::1] when IPv6 loopback is available', async (t) => {
    const probe = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen({ host: '::1', port: 0 }, () => probe.close(() => resolve(true)));
    });
    if (!ok) return t.skip('no IPv6 loopback here');
    const server = await startMetricsServer(new SelfMetrics({ processMetrics: false }), '[::1]:0', log);
    try {
      assert.match(server.url, /^http:\/\/\[::1\]:\d+$/);
      assert.equal((await get(`${server.url}/metrics`)).status, 200);
    } finally {
      await server.close();
    }
  });

  it('names the flag when the port is taken', async () => {
    const first = await startMetricsServer(new SelfMetrics({ processMetrics: false }), '127.0.0.1:0', log);
    try {
      const port = new URL(first.url).port;
      await assert.rejects(
        startMetricsServer(new SelfMetrics({ processMetrics: false }), `127.0.0.1:${port}`, log),
        /cannot serve metrics on 127\.0\.0\.1:\d+ \(--metrics-bind-address\): .*EADDRINUSE/,
      );
    } finally {
      await first.close();
    }
  });

  it('closes with a keep-alive scraper connected', async () => {
    const server = await startMetricsServer(new SelfMetrics({ processMetrics: false }), '127.0.0.1:0', log);
    const res = await fetch(`${server.url}/metrics`, { headers: { connection: 'keep-alive' } });
    await res.text();
    await server.close();
  });

  it('parses host:port forms', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseHostPort('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseHostPort('[::]:9100'), { host: '::', port: 9100 });
    assert.deepEqual(parseHostPort(':8080'), { host: undefined, port: 8080 });
    assert.deepEqual(parseHostPort('localhost:8080'), { host: 'localhost', port: 8080 });
    for (const bad of ['8080', '::1:8080', '[::1]8080', '[127.0.0.1]:80', '1.2.3.4:', '1.2.3.4:65536', '1.2.3.4:8o', '[::1']) {
      assert.throws(() => parseHostPort(bad), /invalid --metrics-bind-address/, bad);
    }
  });
});
