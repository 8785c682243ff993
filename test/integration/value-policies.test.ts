/**
 * Per-rule value policies (`noData`, `nan`, `inf`, `fallback`) and `cacheTtl`, end to end: the adapter's real
 * wiring, a real Prometheus with the integration dataset (pod nan-1's ratio is 0/0, web-4 has no data) and
 * the FAKE Kubernetes API.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleFile } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import type { PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import type { TestAdapter } from '../harness/adapter.ts';
import { startIntegrationStack, writeRuleFile, type IntegrationStack } from '../harness/stack.ts';

const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const RATIO = 'sum by (<<.GroupBy>>) (test_ratio_numerator{<<.LabelMatchers>>}) / sum by (<<.GroupBy>>) (test_ratio_denominator{<<.LabelMatchers>>})';
// web-1's numerator is 1 (so 1/0 is +Inf) and nan-1's is 0 (so 0/0 is NaN).
const INF = 'sum by (<<.GroupBy>>) (test_ratio_numerator{<<.LabelMatchers>>}) / 0';

const RULES = `metrics:
  - name: ratio_default
    resource: pods
    query: ${RATIO}
  - name: ratio_zero
    resource: pods
    noData: zero
    nan: zero
    query: ${RATIO}
  - name: ratio_fallback
    resource: pods
    noData: fallback
    nan: fallback
    fallback: 7
    query: ${RATIO}
  - name: ratio_nodata_only
    resource: pods
    noData: zero
    query: ${RATIO}
  - name: inf_fallback
    resource: pods
    inf: fallback
    fallback: -1
    query: ${INF}
  - name: inf_default
    resource: pods
    query: ${INF}
  - name: ratio_cached
    resource: pods
    cacheTtl: 2m
    query: ${RATIO}
`;

describe('per-rule value policies', () => {
  let stack: IntegrationStack;
  let prometheus: PrometheusProcess;
  let adapter: TestAdapter;
  let metricsUrl: string;

  before(async () => {
    // No cache by default: only the rule with cacheTtl may reuse an answer.
    stack = await startIntegrationStack({ config: writeRuleFile(RULES), adapter: { queryCacheTtlMs: 0 } });
    ({ prometheus, adapter, metricsUrl } = stack);
  });
  after(async () => stack?.close());

  const one = async (pod: string, metric: string): Promise<{ status: number; value?: string }> => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/${pod}/${metric}`);
    return res.status === 200 ? { status: 200, value: res.json.items[0].value } : { status: res.status };
  };
  const list = async (selector: string, metric: string): Promise<[string, string][]> => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/${metric}?labelSelector=${encodeURIComponent(selector)}`);
    assert.equal(res.status, 200, res.text);
    return res.json.items.map((i: { describedObject: { name: string }; value: string }) => [i.describedObject.name, i.value]);
  };

  test('the default is unchanged: no data is 404, NaN is 500, both left out of lists', async () => {
    assert.deepEqual(await one('web-4', 'ratio_default'), { status: 404 });
    assert.deepEqual(await one('nan-1', 'ratio_default'), { status: 500 });
    assert.deepEqual(await list('app in (web,nan)', 'ratio_default'), [['web-1', '250m']]);
  });

  test('zero: a named object and every object of a * read get 0', async () => {
    assert.deepEqual(await one('web-4', 'ratio_zero'), { status: 200, value: '0' });
    assert.deepEqual(await one('nan-1', 'ratio_zero'), { status: 200, value: '0' });
    assert.deepEqual(await one('web-1', 'ratio_zero'), { status: 200, value: '250m' });
    assert.deepEqual(await list('app in (web,nan)', 'ratio_zero'), [
      ['nan-1', '0'], ['web-1', '250m'], ['web-2', '0'], ['web-3', '0'], ['web-4', '0'],
    ]);
  });

  test('fallback: the fallback value instead', async () => {
    assert.deepEqual(await one('web-4', 'ratio_fallback'), { status: 200, value: '7' });
    assert.deepEqual(await one('nan-1', 'ratio_fallback'), { status: 200, value: '7' });
    assert.deepEqual(await list('app in (web,nan)', 'ratio_fallback'), [
      ['nan-1', '7'], ['web-1', '250m'], ['web-2', '7'], ['web-3', '7'], ['web-4', '7'],
    ]);
  });

  test('noData does not cover a NaN sample: nan keeps its own (default) policy', async () => {
    assert.deepEqual(await one('web-4', 'ratio_nodata_only'), { status: 200, value: '0' });
    assert.deepEqual(await one('nan-1', 'ratio_nodata_only'), { status: 500 });
    assert.deepEqual(await list('app=nan', 'ratio_nodata_only'), []);
  });

  test('inf: fallback replaces +Inf but not NaN', async () => {
    assert.deepEqual(await one('web-1', 'inf_default'), { status: 500 });
    assert.deepEqual(await one('web-1', 'inf_fallback'), { status: 200, value: '-1' });
    assert.deepEqual(await one('nan-1', 'inf_fallback'), { status: 500 });
    assert.deepEqual(await list('app in (web,nan)', 'inf_fallback'), [['web-1', '-1']]);
  });

  test('cacheTtl gives a rule its own cache, here with --query-cache-ttl off', async () => {
    const counts = async (): Promise<{ hit: number; miss: number }> => {
      const text = await (await fetch(metricsUrl)).text();
      const value = (result: string): number =>
        Number(new RegExp(`^prometheus_metrics_adapter_query_cache_requests_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? '0');
      return { hit: value('hit'), miss: value('miss') };
    };
    let before = await counts();
    for (let i = 0; i < 3; i++) await list('app=web', 'ratio_default');
    let now = await counts();
    assert.deepEqual({ hit: now.hit - before.hit, miss: now.miss - before.miss }, { hit: 0, miss: 3 });
    before = now;
    for (let i = 0; i < 3; i++) await list('app=web', 'ratio_cached');
    now = await counts();
    assert.deepEqual({ hit: now.hit - before.hit, miss: now.miss - before.miss }, { hit: 2, miss: 1 });
  });
});

describe('value policies: load errors', () => {
  const problems = (rule: string): string[] => {
    try {
      parseRuleFile('/rules/p.yaml', `metrics:\n  - name: x\n    resource: pods\n    query: up\n${rule}`);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return [...err.problems];
    }
    assert.fail('the file loaded');
  };

  test('fallback is required by a fallback policy, and only then allowed', () => {
    assert.deepEqual(problems('    nan: fallback\n'), ['line 5: metrics[0] (x): fallback: required by nan: fallback']);
    assert.deepEqual(problems('    noData: zero\n    fallback: 3\n'), ['line 6: metrics[0] (x): fallback: set, but none of noData, nan, inf is `fallback`']);
    assert.deepEqual(problems('    inf: maybe\n'), ['line 5: metrics[0] (x): inf: must be one of error, zero, fallback']);
    assert.deepEqual(problems('    cacheTtl: soon\n'), ['line 5: metrics[0] (x): cacheTtl: must match pattern "^([0-9]+(ms|s|m|h|d|w|y))+$"']);
  });

  test('policies resolve to the values served', () => {
    const file = parseRuleFile(
      '/rules/p.yaml',
      'metrics:\n  - name: x\n    resource: pods\n    query: up\n    noData: fallback\n    nan: zero\n    inf: error\n    fallback: 2.5\n    cacheTtl: 1m30s\n  - name: y\n    resource: pods\n    query: up\n',
    );
    assert.deepEqual(file.metrics[0]!.substitute, { noData: 2.5, nan: 0 });
    assert.equal(file.metrics[0]!.cacheTtlMs, 90_000);
    assert.equal(file.metrics[1]!.substitute, undefined);
    assert.equal(file.metrics[1]!.cacheTtlMs, undefined);
  });
});
