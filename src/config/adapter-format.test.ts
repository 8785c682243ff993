import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { parseRuleFile } from './load.ts';
import { parseModelDuration } from './adapter-format.ts';

const load = (text: string) => parseRuleFile('adapter.yaml', text);
const fixture = (name: string): string =>
  readFileSync(new URL(`./testdata/prometheus-adapter/${name}`, import.meta.url), 'utf8');

const problems = (text: string): string[] => {
  try {
    load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected the file to be rejected');
};

test('the walkthrough shape: overrides, name.matches first among the filters, name.as kept verbatim', () => {
  const file = load(fixture('walkthrough.yaml'));
  assert.equal(file.metrics.length, 0);
  assert.equal(file.resourceRules, null);
  assert.equal(file.seriesRules.length, 1);
  const rule = file.seriesRules[0]!;
  assert.equal(rule.origin, 'adapter.yaml rules[0]');
  assert.equal(rule.kind, 'custom');
  assert.equal(rule.seriesQuery, 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}');
  assert.deepEqual(rule.resources, {
    overrides: { kubernetes_namespace: { resource: 'namespace' }, kubernetes_pod_name: { resource: 'pod' } },
    template: null,
    namespaced: true,
  });
  assert.equal(rule.name.as, '${1}_per_second');
  assert.equal(rule.seriesFilters.length, 1);
  assert.equal(rule.seriesFilters[0]!.is, rule.name.matches);
  assert.equal(
    rule.metricsQuery.render({ Series: 'http_requests_total', LabelMatchers: 'a="b"', GroupBy: 'kubernetes_pod_name' }),
    'sum(rate(http_requests_total{a="b"}[2m])) by (kubernetes_pod_name)',
  );
});

test('the template shape: as "" defaults to $1 with one group, $0 with none; multi-line queries keep their text', () => {
  const file = load(`
rules:
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total", as: ""}
  metricsQuery: |
    sum by (<<.GroupBy>>) (
      irate (
        <<.Series>>{<<.LabelMatchers>>}[1m]
      )
    )
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  resources:
    template: <<.Resource>>
  name:
    matches:
    as:
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
`);
  const [withGroup, plain] = file.seriesRules;
  assert.equal(withGroup!.name.as, '$1');
  assert.equal(withGroup!.resources.template, '<<.Resource>>');
  assert.equal(
    withGroup!.metricsQuery.render({ Series: 'http_requests_total', LabelMatchers: 'namespace="default",pod=~"a|b"', GroupBy: 'pod' }),
    'sum by (pod) (\n  irate (\n    http_requests_total{namespace="default",pod=~"a|b"}[1m]\n  )\n)\n',
  );
  assert.equal(plain!.name.as, '$0');
  assert.equal(plain!.seriesFilters.length, 0, 'no name.matches: no implicit filter');
  assert.ok(plain!.name.matches.test('anything'));
});

test('the six legacy default rules load: defaults for name.as, isNot filters after name.matches', () => {
  const rules = load(fixture('legacy-defaults.yaml')).seriesRules;
  assert.equal(rules.length, 6);
  assert.deepEqual(
    rules.map((r) => r.name.as),
    ['$1', '$1', '$1', '$0', '$1', '$1'],
  );
  assert.deepEqual(
    rules.map((r) => r.seriesFilters.map((f) => (f.is ? 'is' : 'isNot'))),
    [['is'], ['is', 'isNot'], ['is', 'isNot'], ['isNot'], ['is', 'isNot'], ['is']],
  );
  const second = rules[1]!;
  assert.ok(second.seriesFilters[1]!.isNot!.test('container_cpu_usage_seconds_total'));
  assert.ok(!second.seriesFilters[1]!.isNot!.test('container_network_receive_bytes_total'));
});

test('externalRules: namespaced false (also as YAML 1.1 "no"), overrides, origin', () => {
  const rules = load(`
externalRules:
- seriesQuery: '{__name__="queue_consumer_lag",name!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources: {overrides: {namespace: {resource: "namespace"}}}
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources: {namespaced: false}
- seriesQuery: '{__name__=~".*_queue_(length|size)$"}'
  name: {matches: ^.*_queue_(length|size)$, as: "$0"}
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>})
  resources:
    namespaced: no
`).seriesRules;
  assert.deepEqual(
    rules.map((r) => [r.origin, r.kind, r.resources.namespaced]),
    [
      ['adapter.yaml externalRules[0]', 'external', true],
      ['adapter.yaml externalRules[1]', 'external', false],
      ['adapter.yaml externalRules[2]', 'external', false],
    ],
  );
  assert.deepEqual(rules[0]!.resources.overrides, { namespace: { resource: 'namespace' } });
});

test('rules and externalRules in one file keep file order, custom first', () => {
  const rules = load(`
externalRules:
- seriesQuery: 'a'
rules:
- seriesQuery: 'b'
`).seriesRules;
  assert.deepEqual(
    rules.map((r) => r.origin),
    ['adapter.yaml rules[0]', 'adapter.yaml externalRules[0]'],
  );
});

const RESOURCE_RULES = fixture('resource-rules.yaml');

test('resourceRules: containerLabel, resources and window', () => {
  const file = load(RESOURCE_RULES);
  assert.equal(file.seriesRules.length, 0);
  const rr = file.resourceRules!;
  assert.equal(rr.origin, 'adapter.yaml resourceRules');
  assert.deepEqual(rr.window, { text: '5m', seconds: 300 });
  assert.equal(rr.cpu.containerLabel, 'container');
  assert.deepEqual(Object.keys(rr.cpu.resources.overrides), ['namespace', 'node', 'pod']);
  assert.equal(rr.memory.resources.template, '<<.Resource>>');
  assert.equal(
    rr.memory.nodeQuery.render({ LabelMatchers: 'node=~"n1|n2"', GroupBy: 'node' }),
    'sum by (node) (node_memory_working_set_bytes{node=~"n1|n2"})',
  );
  assert.deepEqual(load(RESOURCE_RULES.replace('window: 5m', '')).resourceRules!.window, { text: '0s', seconds: 0 });
  assert.deepEqual(load(RESOURCE_RULES.replace('window: 5m', 'window: 1h30s')).resourceRules!.window, { text: '1h30s', seconds: 3630 });
});

test('window follows Prometheus model.ParseDuration: largest unit first, each once, bare 0 allowed', () => {
  assert.equal(parseModelDuration('5m'), 300);
  assert.equal(parseModelDuration('1h30m'), 5400);
  assert.equal(parseModelDuration('0'), 0);
  assert.equal(parseModelDuration('500ms'), 0.5);
  assert.equal(parseModelDuration('30m1h'), null);
  assert.equal(parseModelDuration('5m5m'), null);
  assert.equal(parseModelDuration('300'), null);
  assert.equal(parseModelDuration(''), null);
  assert.deepEqual(problems(RESOURCE_RULES.replace('window: 5m', 'window: 5 minutes')), [
    'line 21: resourceRules.window: "5 minutes" is not a Prometheus duration (e.g. 5m, 1m30s)',
  ]);
  assert.deepEqual(problems(RESOURCE_RULES.replace('window: 5m', 'window: 300')), [
    'line 21: resourceRules.window: "300" is not a Prometheus duration (e.g. 5m, 1m30s)',
  ]);
});

test('every problem at once, in line order, each with its line and path', () => {
  const found = problems(
    [
      'rules:', // 1
      '- seriesQuery: up', // 2
      '  metricsQuery: x', // 3
      '- seriesQuery: foo', // 4
      '  resources:', // 5
      '    template: <<.Resource>>', // 6
      '    overides:', // 7
      '      kubernetes_pod_name: {resource: pod}', // 8
      '  seriesFilters:', // 9
      '  - is: ^a', // 10
      '    isNot: ^b', // 11
      '  - {}', // 12
      '  - isNot: (?=lookahead)', // 13
      '  name:', // 14
      '    matches: ^(.*)_(total|count)$', // 15
      '  metricsQuery: sum(<<.Series>>[<<.Window>>])', // 16
      '- metricsQuery: x', // 17
      '  resources: {template: "kube_<<.Group>>"}', // 18
      '  name: {matches: "(unclosed"}', // 19
      'externalRules:', // 20
      '- seriesQuery: bar', // 21
      '  resources: {namespaced: maybe}', // 22
      'resourceRules:', // 23
      '  cpu:', // 24
      '    containerQuery: x', // 25
      '    nodeQuery: <<.Nope>>', // 26
      '    containerLabel: container', // 27
      '    contianerLabel: container', // 28
      '  window: 5 min', // 29
    ].join('\n'),
  );
  assert.deepEqual(found, [
    'line 7: rules[1].resources.overides: unknown key "overides"',
    'line 10: rules[1].seriesFilters[0]: cannot have both an `is` and an `isNot` expression in a single filter',
    'line 12: rules[1].seriesFilters[1]: must have either an `is` or an `isNot` expression',
    'line 13: rules[1].seriesFilters[2].isNot: invalid regular expression "(?=lookahead)": invalid or unsupported Perl syntax: `(?=` (Go regular expressions have no lookarounds or backreferences)',
    'line 14: rules[1].name: name.as is required: name.matches "^(.*)_(total|count)$" has 2 capture groups, so it is not clear which make the metric name (e.g. as: "${1}_${2}")',
    'line 16: rules[1].metricsQuery: template uses .Window, which does not exist; available: .Series, .LabelMatchers, .LabelValuesByName, .GroupBy, .GroupBySlice',
    'line 17: rules[2]: missing required key "seriesQuery"',
    'line 18: rules[2].resources.template: the template must contain <<.Resource>>',
    'line 19: rules[2].name.matches: invalid regular expression "(unclosed": missing closing ): `(unclosed`',
    'line 22: externalRules[0].resources.namespaced: must be true or false, not "maybe"',
    'line 23: resourceRules: missing required key "memory"',
    'line 26: resourceRules.cpu.nodeQuery: template uses .Nope, which does not exist; available: .Series, .LabelMatchers, .LabelValuesByName, .GroupBy, .GroupBySlice',
    'line 28: resourceRules.cpu.contianerLabel: unknown key "contianerLabel"',
    'line 29: resourceRules.window: "5 min" is not a Prometheus duration (e.g. 5m, 1m30s)',
  ]);
});

test('shapes Go would not decode are reported with what was expected', () => {
  assert.deepEqual(problems('rules:\n  seriesQuery: up\n'), ['line 1: rules: must be a list']);
  assert.deepEqual(problems('rules:\n- seriesQuery: up\n  seriesFilters: [^a]\n'), ['line 3: rules[0].seriesFilters[0]: must be a map']);
  assert.deepEqual(problems('rules:\n- seriesQuery: ""\n'), ['line 2: rules[0].seriesQuery: must not be empty']);
  assert.deepEqual(problems('rules:\n- seriesQuery: up\n  resources:\n    overrides:\n      pod: {group: ""}\n'), [
    'line 5: rules[0].resources.overrides.pod: missing required key "resource"',
  ]);
  assert.deepEqual(problems('rules: []\nmetricsRelist: 1m\n'), ['line 2: metricsRelist: unknown key "metricsRelist"']);
});

test('templates prometheus-adapter parses but cannot use as label patterns are refused at load', () => {
  assert.match(
    problems('rules:\n- seriesQuery: up\n  resources: {template: "<<.Resource>>("}\n')[0]!,
    /^line 3: rules\[0\]\.resources\.template: the template does not make a valid label pattern "\^\(\?P<resource>\.\+\?\)\(\$": missing closing \)/,
  );
  assert.match(problems('rules:\n- seriesQuery: up\n  resources: {template: "<<.Kind>>"}\n')[0]!, /template uses \.Kind, which does not exist; available: \.Group, \.Resource/);
});
