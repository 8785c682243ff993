/** The adapter's own metrics, as served on --metrics-bind-address while it answers real requests. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TestAdapter } from '../harness/adapter.ts';
import { startIntegrationStack, type IntegrationStack } from '../harness/stack.ts';

const RULES = new URL('../fixtures/rules/integration.yaml', import.meta.url).pathname;

describe('self-metrics', () => {
  let stack: IntegrationStack;
  let adapter: TestAdapter;
  let metricsUrl: string;
  before(async () => {
    stack = await startIntegrationStack({ config: RULES });
    ({ adapter, metricsUrl } = stack);
  });
  after(async () => stack?.close());

  it('counts requests by group and code, Prometheus queries by rule and outcome, and cache results', async () => {
    const path = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/cpu_1m?labelSelector=app%3Dweb';
    for (let i = 0; i < 3; i++) assert.equal((await adapter.get(path)).status, 200);
    assert.equal((await adapter.get('/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/nope')).status, 404);
    const text = await (await fetch(metricsUrl)).text();
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 'NaN');
    assert.equal(value(/^prometheus_metrics_adapter_requests_total\{group="custom\.metrics\.k8s\.io",code="200"\} (\d+)/m), 3);
    assert.equal(value(/^prometheus_metrics_adapter_requests_total\{group="custom\.metrics\.k8s\.io",code="404"\} (\d+)/m), 1);
    assert.equal(value(/^prometheus_metrics_adapter_prometheus_queries_total\{rule="[^"]*integration\.yaml metrics\[0\] \(cpu_1m\)",backend="http:\/\/127\.0\.0\.1:\d+",outcome="success"\} (\d+)/m), 1);
    assert.equal(value(/^prometheus_metrics_adapter_query_cache_requests_total\{result="hit"\} (\d+)/m), 2);
    assert.equal(value(/^prometheus_metrics_adapter_query_cache_requests_total\{result="miss"\} (\d+)/m), 1);
    assert.match(text, /^prometheus_metrics_adapter_value_age_seconds_count\{rule="[^"]*\(cpu_1m\)"\} 3$/m);
    assert.match(text, /^prometheus_metrics_adapter_object_cache_staleness_seconds\{resource="pods"\} 0$/m);
    assert.match(text, /^prometheus_metrics_adapter_process_resident_memory_bytes \d+/m);
  });
});
