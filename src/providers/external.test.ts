/**
 * PrometheusExternalMetricsProvider with the real QueryEngine in front of a FAKE InstantQuerier that records the
 * PromQL it is sent and answers with canned samples.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino, type Logger } from 'pino';
import type { ExternalMetricRule } from '../config/model.ts';
import { QUERY_TEMPLATE_FIELDS } from '../config/load.ts';
import { AdapterError, BadRequestError, InternalError, NotFoundError, ServiceUnavailableError } from '../errors.ts';
import type { InstantQuerier, InstantQueryResult, Sample } from '../prometheus/http-client.ts';
import { QueryEngine } from '../prometheus/query-engine.ts';
import { parseSelector } from '../rules/selector.ts';
import { compileTemplate } from '../rules/template.ts';
import { PrometheusExternalMetricsProvider, renderExternalQuery } from './external.ts';

/** FAKE Prometheus: records every query and answers with `answer`, or fails with `error`. */
class FakeQuerier implements InstantQuerier {
  readonly queries: string[] = [];
  answer: Sample[] = [];
  error: Error | null = null;

  async query(promql: string): Promise<InstantQueryResult> {
    this.queries.push(promql);
    if (this.error) throw this.error;
    return { samples: this.answer, warnings: [] };
  }
}

function rule(metric: string, query: string, namespaceLabel: string | null, series = metric): ExternalMetricRule {
  return {
    metric,
    origin: `rules.yaml externalRules[0]`,
    series,
    query: compileTemplate(query, QUERY_TEMPLATE_FIELDS),
    namespaceLabel,
  };
}

const CONSUMER_LAG = rule('queue_consumer_lag', 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)', 'namespace');
const QUEUE_DEPTH = rule('queue_depth', 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)', null);

function logCapture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

function setup(rules: readonly ExternalMetricRule[] = [CONSUMER_LAG, QUEUE_DEPTH]) {
  const fake = new FakeQuerier();
  const engine = new QueryEngine(fake, { cacheTtlMs: 0, cacheMaxEntries: 10, now: () => 1_700_000_000_500 });
  const { log, lines } = logCapture();
  let current = rules;
  const provider = new PrometheusExternalMetricsProvider({ rules: () => current, engine, log });
  return { fake, provider, lines, setRules: (r: readonly ExternalMetricRule[]) => void (current = r) };
}

async function rejection(promise: Promise<unknown>): Promise<AdapterError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AdapterError, `expected an AdapterError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('external metrics: query rendering', () => {
  it('renders the reference examples exactly (namespaced and namespaced: false)', async () => {
    const { fake, provider } = setup();
    await provider.getExternalMetric('default', 'queue_consumer_lag', parseSelector('name=q1'));
    await provider.getExternalMetric('default', 'queue_depth', parseSelector('topic=orders'));
    await provider.getExternalMetric('default', 'queue_depth', parseSelector(''));
    await provider.getExternalMetric('team-a', 'queue_consumer_lag', parseSelector(''));
    assert.deepEqual(fake.queries, [
      'sum(queue_consumer_lag{name="q1",namespace="default"}) by (name)',
      'sum(queue_depth{topic="orders"}) by (name)',
      'sum(queue_depth{}) by (name)',
      'sum(queue_consumer_lag{namespace="team-a"}) by (name)',
    ]);
  });

  it('turns every selector operator Prometheus can express into a matcher, sorted by key', async () => {
    const { fake, provider } = setup();
    await provider.getExternalMetric(
      'ns1',
      'queue_consumer_lag',
      parseSelector('zone notin (b,a),topic in (orders),!deprecated,env,app!=web,name=q.1'),
    );
    assert.deepEqual(fake.queries, [
      'sum(queue_consumer_lag{app!="web",deprecated="",env!="",name="q.1",topic=~"orders",zone!~"a|b",namespace="ns1"}) by (name)',
    ]);
  });

  it('escapes regex metacharacters in in/notin values, so a value is never a pattern', () => {
    assert.equal(
      renderExternalQuery(QUEUE_DEPTH, 'x', parseSelector('topic in (a.b,c-d)')),
      'sum(queue_depth{topic=~"a\\\\.b|c-d"}) by (name)',
    );
  });

  it('offers .GroupBy empty, .GroupBySlice empty and .LabelValuesByName with the selector values and the namespace', () => {
    const r = rule(
      'm',
      '<<.Series>>|<<.GroupBy>>|<<.GroupBySlice>>|<<index .LabelValuesByName "topic">>|<<index .LabelValuesByName "ns">>|<<.LabelValuesByName>>',
      'ns',
      'series_name',
    );
    assert.equal(
      renderExternalQuery(r, 'prod', parseSelector('topic in (a,b),env')),
      'series_name||[]|a|b|prod|map[env: ns:prod topic:a|b]',
    );
  });

  it('rejects > and < with 400 and names the metric', async () => {
    const { fake, provider } = setup();
    const err = await rejection(provider.getExternalMetric('default', 'queue_depth', parseSelector('partition>3')));
    assert.ok(err instanceof BadRequestError);
    assert.equal(err.code, 400);
    assert.match(err.message, /invalid labelSelector for external metric queue_depth/);
    assert.match(err.message, /not supported by Prometheus/);
    assert.deepEqual(fake.queries, []);
  });

  it('rejects a selector key Prometheus cannot name with 400', async () => {
    const { provider } = setup();
    const err = await rejection(provider.getExternalMetric('default', 'queue_depth', parseSelector('app.kubernetes.io/name=x')));
    assert.equal(err.code, 400);
    assert.match(err.message, /not a usable Prometheus label name/);
  });
});

describe('external metrics: lookup and values', () => {
  it('lists each metric once, in rule order, first rule winning a duplicate name', async () => {
    const second = rule('queue_depth', 'max(<<.Series>>{<<.LabelMatchers>>})', null);
    const { fake, provider } = setup([QUEUE_DEPTH, CONSUMER_LAG, second]);
    assert.deepEqual(provider.listAllExternalMetrics(), ['queue_depth', 'queue_consumer_lag']);
    await provider.getExternalMetric('default', 'queue_depth', []);
    assert.deepEqual(fake.queries, ['sum(queue_depth{}) by (name)']);
  });

  it('sees a new rule list at once', () => {
    const { provider, setRules } = setup([QUEUE_DEPTH]);
    assert.deepEqual(provider.listAllExternalMetrics(), ['queue_depth']);
    setRules([]);
    assert.deepEqual(provider.listAllExternalMetrics(), []);
    setRules([CONSUMER_LAG]);
    assert.deepEqual(provider.listAllExternalMetrics(), ['queue_consumer_lag']);
  });

  it('answers an unknown metric with 404 naming metric and namespace, without querying', async () => {
    const { fake, provider } = setup();
    const err = await rejection(provider.getExternalMetric('team-a', 'nope', []));
    assert.ok(err instanceof NotFoundError);
    assert.equal(err.message, 'the server could not find the metric nope for namespace team-a');
    assert.deepEqual(fake.queries, []);
  });

  it('returns one value per sample with all of its labels and its timestamp, in label order', async () => {
    const { fake, provider } = setup();
    fake.answer = [
      { labels: { name: 'q2', __name__: 'x' }, value: 0.25, timestamp: 1_700_000_000 },
      { labels: { name: 'q1', zone: 'b' }, value: 6, timestamp: 1_700_000_000 },
      { labels: { name: 'q1' }, value: 5, timestamp: 1_700_000_000 },
    ];
    const expected = [
      { metric: 'queue_consumer_lag', labels: { name: 'q2', __name__: 'x' }, timestamp: 1_700_000_000, value: 0.25 },
      { metric: 'queue_consumer_lag', labels: { name: 'q1' }, timestamp: 1_700_000_000, value: 5 },
      { metric: 'queue_consumer_lag', labels: { name: 'q1', zone: 'b' }, timestamp: 1_700_000_000, value: 6 },
    ];
    assert.deepEqual(await provider.getExternalMetric('default', 'queue_consumer_lag', []), expected);
    // Whatever order Prometheus answers in.
    fake.answer = [...fake.answer].reverse();
    assert.deepEqual(await provider.getExternalMetric('default', 'queue_consumer_lag', []), expected);
  });

  it('returns a scalar as one value without labels, and an empty vector as no values', async () => {
    const { fake, provider } = setup();
    fake.answer = [{ labels: {}, value: 3, timestamp: 1_700_000_000 }];
    assert.deepEqual(await provider.getExternalMetric('default', 'queue_depth', []), [
      { metric: 'queue_depth', labels: {}, timestamp: 1_700_000_000, value: 3 },
    ]);
    fake.answer = [];
    assert.deepEqual(await provider.getExternalMetric('default', 'queue_depth', []), []);
  });

  it('skips NaN and ±Inf samples and logs how many', async () => {
    const { fake, provider, lines } = setup();
    fake.answer = [
      { labels: { name: 'a' }, value: Number.NaN, timestamp: 1 },
      { labels: { name: 'b' }, value: 2, timestamp: 1 },
      { labels: { name: 'c' }, value: Number.POSITIVE_INFINITY, timestamp: 1 },
      { labels: { name: 'd' }, value: Number.NEGATIVE_INFINITY, timestamp: 1 },
    ];
    assert.deepEqual(await provider.getExternalMetric('default', 'queue_depth', []), [
      { metric: 'queue_depth', labels: { name: 'b' }, timestamp: 1, value: 2 },
    ]);
    const skipped = lines.find((l) => l['msg'] === 'skipping non-finite samples');
    assert.equal(skipped?.['skipped'], 3);
  });

  it('answers 500 explaining it when every sample is non-finite', async () => {
    const { fake, provider } = setup();
    fake.answer = [
      { labels: { name: 'a' }, value: Number.NaN, timestamp: 1 },
      { labels: {}, value: Number.POSITIVE_INFINITY, timestamp: 1 },
    ];
    const err = await rejection(provider.getExternalMetric('default', 'queue_depth', parseSelector('topic=x')));
    assert.ok(err instanceof InternalError);
    assert.equal(
      err.message,
      'the external metric queue_depth for namespace default with selector topic=x is NaN or infinite in every one of ' +
        'its 2 sample(s); no value is reported rather than a made-up one (rule rules.yaml externalRules[0])',
    );
  });

  it('keeps the status of a Prometheus failure and names the rule', async () => {
    const { fake, provider } = setup();
    fake.error = new ServiceUnavailableError('Prometheus at http://p is unreachable: ECONNREFUSED');
    const err = await rejection(provider.getExternalMetric('default', 'queue_depth', []));
    assert.equal(err.code, 503);
    assert.equal(err.message, 'Prometheus at http://p is unreachable: ECONNREFUSED; rule rules.yaml externalRules[0]');
  });

  it('reports a template that renders nothing as a 500 naming the rule', async () => {
    const { provider } = setup([rule('blank', '  <<.GroupBy>>  ', null)]);
    const err = await rejection(provider.getExternalMetric('default', 'blank', []));
    assert.equal(err.code, 500);
    assert.match(err.message, /rules\.yaml externalRules\[0\]: the query template rendered an empty query/);
  });
});
