import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleFile } from '../config/load.ts';
import { ResourceMapper } from '../kubernetes/resource-mapper.ts';
import { discoverMetrics } from '../rules/series-naming.ts';
import { relistRuleStats, RuleLabels } from './rule-labels.ts';

// A rule file in prometheus-adapter's format, read by the real loader and named by the real discovery step, so
// the origins these helpers parse are the ones the adapter really produces.
const FILE = 'adapter.yaml';
const TEXT = `
rules:
- seriesQuery: '{__name__=~"^container_.*",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)_total$", as: "\${1}"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^http_.*",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__="unused",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (topic)'
`;

function discover() {
  const file = parseRuleFile(FILE, TEXT);
  const [containers, http, unused, queues] = file.seriesRules.map((r) => r.seriesQuery) as [string, string, string, string];
  const seriesByQuery = new Map([
    [
      containers,
      [
        { name: 'container_cpu_usage_seconds_total', labels: ['namespace', 'pod'] },
        { name: 'container_network_receive_bytes_total', labels: ['namespace', 'pod'] },
        { name: 'container_memory_working_set_bytes', labels: ['namespace', 'pod'] },
      ],
    ],
    [http, [{ name: 'http_requests', labels: ['namespace', 'pod'] }]],
    [unused, []],
    [queues, [{ name: 'queue_depth', labels: ['topic'] }]],
  ]);
  const named = discoverMetrics(file.seriesRules, seriesByQuery, ResourceMapper.wellKnown());
  const perQuery = [...seriesByQuery].map(([query, series]) => ({ query, series: series.length, ok: true }));
  return { file, ...named, perQuery };
}

describe('RuleLabels', () => {
  it('maps every discovered origin back to its series rule, and leaves other origins alone', () => {
    const { file, custom, external } = discover();
    const labels = new RuleLabels(file.seriesRules);
    const origins = new Set(file.seriesRules.map((r) => r.origin));
    assert.ok(custom.length > 0 && external.length > 0);
    for (const m of [...custom, ...external]) {
      assert.notEqual(m.origin, labels.of(m.origin), 'a discovered origin names its series');
      assert.ok(origins.has(labels.of(m.origin)), `${m.origin} -> ${labels.of(m.origin)}`);
    }
    assert.equal(labels.of('rules.yaml metrics[0] (pod_cpu_used)'), 'rules.yaml metrics[0] (pod_cpu_used)');
    assert.equal(labels.of('adapter.yaml resourceRules.cpu.containerQuery'), 'adapter.yaml resourceRules.cpu.containerQuery');
  });

  it('does not confuse rules[1] with rules[10]', () => {
    const labels = new RuleLabels(Array.from({ length: 11 }, (_, i) => ({ origin: `a.yaml rules[${i}]` })));
    assert.equal(labels.of('a.yaml rules[10] (x)'), 'a.yaml rules[10]');
    assert.equal(labels.of('a.yaml rules[1] (x)'), 'a.yaml rules[1]');
  });
});

describe('relistRuleStats', () => {
  it('counts series and served metrics per series rule', () => {
    const { file, custom, external, perQuery } = discover();
    const stats = relistRuleStats(file.seriesRules, { custom, external, perQuery });
    // Served metrics are (resource, metric) pairs: rules[0] names 2 of its 3 series (its name filter needs
    // _total), each for pods and namespaces.
    assert.deepEqual(stats, [
      { rule: 'adapter.yaml rules[0]', series: 3, metrics: 4 },
      { rule: 'adapter.yaml rules[1]', series: 1, metrics: 2 },
      { rule: 'adapter.yaml rules[2]', series: 0, metrics: 0 },
      { rule: 'adapter.yaml externalRules[0]', series: 1, metrics: 1 },
    ]);
  });
});
