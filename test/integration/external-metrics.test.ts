/**
 * external.metrics.k8s.io against a REAL Prometheus with deterministic, backfilled data: SeriesDiscovery finds the
 * metrics of hand-built externalRules, PrometheusExternalMetricsProvider queries them through the real client and
 * QueryEngine, and the routes serve them from a minimal HTTPS Fastify app built here (the production app wires the
 * same pieces; this test pins the wire contract without the rest of the server).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { generateSelfSignedServingCert } from '../../src/api/certificates.ts';
import { registerExternalMetricsRoutes } from '../../src/api/external-metrics-routes.ts';
import { sendJson } from '../../src/api/json-response.ts';
import { NOT_FOUND_ROUTE, toStatus } from '../../src/api/status.ts';
import type { SeriesRule } from '../../src/config/model.ts';
import { QUERY_TEMPLATE_FIELDS } from '../../src/config/load.ts';
import { startPrometheus, type PrometheusProcess, type SeriesSpec } from '../../src/demo/prometheus-process.ts';
import { ResourceMapper } from '../../src/kubernetes/resource-mapper.ts';
import { PrometheusHttpClient } from '../../src/prometheus/http-client.ts';
import { QueryEngine } from '../../src/prometheus/query-engine.ts';
import { SeriesDiscovery } from '../../src/prometheus/series-discovery.ts';
import { PrometheusExternalMetricsProvider } from '../../src/providers/external.ts';
import { compileTemplate } from '../../src/rules/template.ts';
import { httpsGet, type HttpsResponse } from '../harness/https-get.ts';

const STEP = 15;
const BASE = '/apis/external.metrics.k8s.io/v1beta1';
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

function rule(
  origin: string,
  seriesQuery: string,
  metricsQuery: string,
  opts: { kind?: 'custom' | 'external'; matches?: string; as?: string; namespaceLabel?: string; namespaced?: boolean } = {},
): SeriesRule {
  const matches = new RegExp(opts.matches ?? '.*');
  return {
    origin,
    kind: opts.kind ?? 'external',
    seriesQuery,
    seriesFilters: [{ is: matches }],
    resources: {
      overrides: opts.namespaceLabel ? { [opts.namespaceLabel]: { resource: 'namespace' } } : {},
      template: null,
      namespaced: opts.namespaced ?? true,
    },
    name: { matches, as: opts.as ?? '$0' },
    metricsQuery: compileTemplate(metricsQuery, QUERY_TEMPLATE_FIELDS),
  };
}

const Q_DEPTH = '{__name__="queue_depth",queue!=""}';
const Q_LAG = '{__name__="topic_lag",topic!=""}';
/** Prometheus refuses a selector whose only matcher matches the empty string: this query always fails. */
const Q_BROKEN = '{queue=~".*"}';

const RULES: readonly SeriesRule[] = [
  rule('test externalRules[0]', Q_DEPTH, 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)', { namespaceLabel: 'namespace' }),
  rule('test externalRules[1]', Q_LAG, 'max(<<.Series>>{<<.LabelMatchers>>}) by (topic)', {
    matches: '^(.*)_lag$',
    as: '${1}_consumer_lag',
    namespaced: false,
  }),
  // All labels of every sample: shows that metricLabels carry them, __name__ included.
  rule('test externalRules[2]', Q_DEPTH, '<<.Series>>{<<.LabelMatchers>>}', { as: 'queue_depth_raw', namespaceLabel: 'namespace' }),
  rule('test externalRules[3]', Q_DEPTH, 'scalar(sum(<<.Series>>{<<.LabelMatchers>>}))', { as: 'queue_depth_scalar', namespaceLabel: 'namespace' }),
  rule('test externalRules[4]', Q_BROKEN, 'sum(<<.Series>>{<<.LabelMatchers>>})', { as: 'never_served', namespaced: false }),
  rule('test rules[0]', Q_DEPTH, 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)', { kind: 'custom', namespaceLabel: 'namespace' }),
];

describe('external metrics against a real Prometheus', () => {
  const now = Math.floor(Date.now() / 1000 / STEP) * STEP;
  const from = now - 1800;
  const series: SeriesSpec[] = [
    { name: 'queue_depth', type: 'gauge', labels: { namespace: 'team-a', queue: 'orders' }, value: () => 5 },
    { name: 'queue_depth', type: 'gauge', labels: { namespace: 'team-a', queue: 'billing' }, value: () => 7.5 },
    { name: 'queue_depth', type: 'gauge', labels: { namespace: 'team-b', queue: 'orders' }, value: () => 11 },
    { name: 'queue_depth', type: 'gauge', labels: { namespace: 'team-c', queue: 'broken' }, value: () => Number.NaN },
    { name: 'topic_lag', type: 'gauge', labels: { topic: 'orders' }, value: () => 1200 },
    { name: 'topic_lag', type: 'gauge', labels: { topic: 'payments' }, value: () => 0.25 },
  ];
  let prom: PrometheusProcess;
  let client: PrometheusHttpClient;
  let discovery: SeriesDiscovery;
  let app: FastifyInstance;
  let url: string;
  let ca: string;

  const get = (path: string): Promise<HttpsResponse> => httpsGet(`${url}${path}`, { ca });

  before(async () => {
    prom = await startPrometheus({ series, fromSeconds: from, toSeconds: now + 3600, stepSeconds: STEP });
    client = new PrometheusHttpClient({ url: prom.url, timeoutMs: 10_000, verb: 'GET' });
    const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    discovery = new SeriesDiscovery({
      client,
      rules: RULES,
      resolver: () => ResourceMapper.wellKnown(),
      relistIntervalMs: 3_600_000,
      maxAgeMs: 20 * 60_000,
      log,
    });
    await discovery.runOnce();
    const provider = new PrometheusExternalMetricsProvider({
      rules: () => discovery.current().external,
      engine: new QueryEngine(client, { cacheTtlMs: 0, cacheMaxEntries: 100 }),
      log,
    });

    const cert = await generateSelfSignedServingCert({ hosts: ['localhost'], ips: ['127.0.0.1'] });
    ca = cert.certPem;
    app = Fastify({ https: { key: cert.keyPem, cert: cert.certPem } });
    app.setErrorHandler((error, request, reply) => {
      const status = toStatus(error);
      return sendJson(request, reply, status.code, status);
    });
    app.setNotFoundHandler((request, reply) => sendJson(request, reply, 404, NOT_FOUND_ROUTE));
    registerExternalMetricsRoutes(app, provider);
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await app?.close();
    await prom?.stop();
  });

  /** The evaluation time of a list, checked to be a second-precision RFC 3339 time close to now. */
  function timestampOf(res: HttpsResponse): string {
    const ts = res.json?.items?.[0]?.timestamp as string;
    assert.match(ts, RFC3339_SECONDS);
    assert.ok(Math.abs(Date.parse(ts) - Date.now()) < 60_000, `timestamp ${ts} is the evaluation time`);
    return ts;
  }

  function list(items: unknown[]): object {
    return { kind: 'ExternalMetricValueList', apiVersion: 'external.metrics.k8s.io/v1beta1', metadata: {}, items };
  }

  describe('SeriesDiscovery', () => {
    it('names every external metric of the rules that answered, and reports the query that failed', () => {
      const result = discovery.current();
      assert.deepEqual(result.external.map((r) => r.metric).sort(), [
        'queue_depth',
        'queue_depth_raw',
        'queue_depth_scalar',
        'topic_consumer_lag',
      ]);
      assert.deepEqual(
        result.external.map((r) => [r.metric, r.series, r.namespaceLabel]).sort(),
        [
          ['queue_depth', 'queue_depth', 'namespace'],
          ['queue_depth_raw', 'queue_depth', 'namespace'],
          ['queue_depth_scalar', 'queue_depth', 'namespace'],
          ['topic_consumer_lag', 'topic_lag', null],
        ],
      );
      // The custom rule sharing the queue_depth series query got its metric from the same call.
      assert.ok(result.custom.some((m) => m.metric === 'queue_depth'), JSON.stringify(result.custom.map((m) => m.metric)));
      assert.deepEqual(
        result.perQuery.map(({ query, series: n, ok }) => ({ query, series: n, ok })),
        [
          { query: Q_DEPTH, series: 4, ok: true },
          { query: Q_LAG, series: 2, ok: true },
          { query: Q_BROKEN, series: 0, ok: false },
        ],
      );
      const broken = result.perQuery[2]!;
      assert.match(broken.error ?? '', /bad_data/);
      assert.ok(broken.error?.includes(prom.url), broken.error);
      assert.ok(result.lastSuccess instanceof Date);
    });

    it('only finds series with samples in [now - maxAge, now]', async () => {
      const at = (nowMs: number, maxAgeMs: number) =>
        new SeriesDiscovery({
          client,
          rules: RULES.slice(0, 2),
          resolver: () => ResourceMapper.wellKnown(),
          relistIntervalMs: 3_600_000,
          maxAgeMs,
          now: () => nowMs,
          log: pino({ level: 'silent' }),
        }).runOnce();
      // An hour before the first sample, looking back 20 minutes: nothing.
      const early = await at((from - 3600) * 1000, 20 * 60_000);
      assert.deepEqual(early.perQuery.map((q) => [q.ok, q.series]), [[true, 0], [true, 0]]);
      assert.deepEqual(early.external, []);
      // The same moment looking back two hours reaches past the first sample.
      const wide = await at((from + 60) * 1000, 2 * 3_600_000);
      assert.deepEqual(wide.perQuery.map((q) => [q.ok, q.series]), [[true, 4], [true, 2]]);
      // Two hours after the last sample, looking back 20 minutes: gone again.
      const late = await at((now + 3600 + 7200) * 1000, 20 * 60_000);
      assert.deepEqual(late.external, []);
    });
  });

  describe('HTTP', () => {
    it('serves the group document', async () => {
      const res = await get('/apis/external.metrics.k8s.io');
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(res.json, {
        kind: 'APIGroup',
        apiVersion: 'v1',
        name: 'external.metrics.k8s.io',
        versions: [{ groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' }],
        preferredVersion: { groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' },
      });
    });

    it('serves the discovery document: one namespaced ExternalMetricValueList per metric', async () => {
      const res = await get(BASE);
      assert.equal(res.status, 200);
      assert.ok(res.text.endsWith('}\n'), 'compact JSON with a trailing newline');
      const names = discovery.current().external.map((r) => r.metric);
      assert.deepEqual(res.json, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'external.metrics.k8s.io/v1beta1',
        resources: names.map((name) => ({ name, singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] })),
      });
      assert.deepEqual([...names].sort(), ['queue_depth', 'queue_depth_raw', 'queue_depth_scalar', 'topic_consumer_lag']);
      assert.deepEqual((await get(`${BASE}/`)).json, res.json);
    });

    it('answers a namespaced metric with one item per sample of the namespace', async () => {
      const res = await get(`${BASE}/namespaces/team-a/queue_depth`);
      assert.equal(res.status, 200, res.text);
      const ts = timestampOf(res);
      assert.deepEqual(
        res.json,
        list([
          { metricName: 'queue_depth', metricLabels: { queue: 'billing' }, timestamp: ts, value: '7500m' },
          { metricName: 'queue_depth', metricLabels: { queue: 'orders' }, timestamp: ts, value: '5' },
        ]),
      );
      const other = await get(`${BASE}/namespaces/team-b/queue_depth`);
      assert.deepEqual(other.json, list([{ metricName: 'queue_depth', metricLabels: { queue: 'orders' }, timestamp: timestampOf(other), value: '11' }]));
      // A namespace without series: 200 and no items (the HPA reports that itself).
      assert.deepEqual((await get(`${BASE}/namespaces/team-z/queue_depth`)).json, list([]));
    });

    it('applies labelSelector requirements of every kind Prometheus can express', async () => {
      const cases: [string, string[]][] = [
        ['queue%3Dorders', ['orders']],
        ['queue%3D%3Dorders', ['orders']],
        ['queue%21%3Dorders', ['billing']],
        ['queue+in+%28billing%2Corders%29', ['billing', 'orders']],
        ['queue+notin+%28orders%29', ['billing']],
        ['queue', ['billing', 'orders']],
        ['%21queue', []],
        ['queue%3Dorders%2Cqueue%21%3Dbilling', ['orders']],
      ];
      for (const [selector, queues] of cases) {
        const res = await get(`${BASE}/namespaces/team-a/queue_depth?labelSelector=${selector}`);
        assert.equal(res.status, 200, `${selector}: ${res.text}`);
        assert.deepEqual(
          res.json.items.map((i: { metricLabels: { queue: string } }) => i.metricLabels.queue),
          queues,
          decodeURIComponent(selector.replace(/\+/g, ' ')),
        );
      }
    });

    it('leaves the namespace out for a rule with namespaced: false', async () => {
      for (const ns of ['team-a', 'anything']) {
        const res = await get(`${BASE}/namespaces/${ns}/topic_consumer_lag`);
        assert.equal(res.status, 200, res.text);
        const ts = timestampOf(res);
        assert.deepEqual(
          res.json,
          list([
            { metricName: 'topic_consumer_lag', metricLabels: { topic: 'orders' }, timestamp: ts, value: '1200' },
            { metricName: 'topic_consumer_lag', metricLabels: { topic: 'payments' }, timestamp: ts, value: '250m' },
          ]),
        );
      }
      const one = await get(`${BASE}/namespaces/default/topic_consumer_lag?labelSelector=topic%3Dpayments`);
      assert.deepEqual(one.json, list([{ metricName: 'topic_consumer_lag', metricLabels: { topic: 'payments' }, timestamp: timestampOf(one), value: '250m' }]));
    });

    it('carries every label of the sample, sorted, and a scalar as an item without labels', async () => {
      const raw = await get(`${BASE}/namespaces/team-a/queue_depth_raw?labelSelector=queue%3Dorders`);
      assert.equal(raw.status, 200, raw.text);
      assert.deepEqual(
        raw.json,
        list([
          {
            metricName: 'queue_depth_raw',
            metricLabels: { __name__: 'queue_depth', namespace: 'team-a', queue: 'orders' },
            timestamp: timestampOf(raw),
            value: '5',
          },
        ]),
      );
      assert.ok(raw.text.includes('"metricLabels":{"__name__":"queue_depth","namespace":"team-a","queue":"orders"}'), raw.text);

      const scalar = await get(`${BASE}/namespaces/team-a/queue_depth_scalar`);
      assert.equal(scalar.status, 200, scalar.text);
      assert.deepEqual(scalar.json, list([{ metricName: 'queue_depth_scalar', metricLabels: {}, timestamp: timestampOf(scalar), value: '12500m' }]));
    });

    it('answers 500 explaining why when every sample is NaN', async () => {
      const res = await get(`${BASE}/namespaces/team-c/queue_depth`);
      assert.equal(res.status, 500);
      assert.deepEqual(res.json, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message:
          'the external metric queue_depth for namespace team-c is NaN or infinite in every one of its 1 sample(s); ' +
          'no value is reported rather than a made-up one (rule test externalRules[0] (queue_depth))',
        reason: 'InternalError',
        code: 500,
      });
    });

    it('answers an unknown metric, and one whose series query failed, with 404', async () => {
      for (const metric of ['nope', 'never_served']) {
        const res = await get(`${BASE}/namespaces/team-a/${metric}`);
        assert.equal(res.status, 404);
        assert.deepEqual(res.json, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `the server could not find the metric ${metric} for namespace team-a`,
          reason: 'NotFound',
          code: 404,
        });
      }
    });

    it('answers other path shapes with 404', async () => {
      for (const path of [`${BASE}/queue_depth`, `${BASE}/namespaces/team-a`, `${BASE}/namespaces/team-a/queue_depth/x`, `${BASE}/pods/a/b`]) {
        const res = await get(path);
        assert.equal(res.status, 404, path);
        assert.deepEqual(
          { ...res.json, details: undefined },
          { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', code: 404, details: undefined },
          path,
        );
      }
    });

    it('answers 400 for a bad namespace, a bad metric name and selectors it cannot use', async () => {
      const cases: [string, RegExp][] = [
        [`${BASE}/namespaces/Team_A/queue_depth`, /invalid namespace "Team_A"/],
        [`${BASE}/namespaces/team-a/queue%22depth`, /invalid metric name "queue"depth"/],
        [`${BASE}/namespaces/team-a/queue_depth?labelSelector=queue%3E3`, /invalid labelSelector for external metric queue_depth: .*not supported by Prometheus/],
        [`${BASE}/namespaces/team-a/queue_depth?labelSelector=queue+in+%28`, /invalid labelSelector/],
        [`${BASE}/namespaces/team-a/queue_depth?labelSelector=app.kubernetes.io%2Fname%3Dx`, /not a usable Prometheus label name/],
      ];
      for (const [path, message] of cases) {
        const res = await get(path);
        assert.equal(res.status, 400, `${path}: ${res.text}`);
        assert.equal(res.json.reason, 'BadRequest');
        assert.equal(res.json.code, 400);
        assert.match(res.json.message, message, path);
      }
    });

    it('sums to what Prometheus computes, as the HPA would', async () => {
      const res = await get(`${BASE}/namespaces/team-a/queue_depth`);
      const milli = res.json.items.map((i: { value: string }) => (i.value.endsWith('m') ? Number(i.value.slice(0, -1)) : Number(i.value) * 1000));
      assert.equal(milli.reduce((a: number, b: number) => a + b, 0), 12_500);
    });
  });
});
