import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseRuleFile } from '../config/load.ts';
import type { ExternalMetricRule, MetricRule, ResourceAssociation, SeriesRule } from '../config/model.ts';
import { ResourceMapper } from '../kubernetes/resource-mapper.ts';
import { discoverMetrics, labelForResource, type DiscoveredSeries } from './series-naming.ts';

const resolver = ResourceMapper.wellKnown();

const fixture = (name: string): readonly SeriesRule[] =>
  parseRuleFile(name, readFileSync(new URL(`../config/testdata/prometheus-adapter/${name}`, import.meta.url), 'utf8')).seriesRules;
const inline = (text: string): readonly SeriesRule[] => parseRuleFile('inline.yaml', text).seriesRules;

/** `{a,b}` style shorthand: `name{label1,label2}`. */
const series = (...specs: string[]): DiscoveredSeries[] =>
  specs.map((spec) => {
    const [, name, labels] = /^([^{]+)(?:\{(.*)\})?$/.exec(spec)!;
    return { name: name!, labels: labels ? labels.split(',') : [] };
  });

const byQuery = (rules: readonly SeriesRule[], list: DiscoveredSeries[]): Map<string, DiscoveredSeries[]> =>
  new Map(rules.map((r) => [r.seriesQuery, list]));

/** resource/metric, namespaced (from the resolver), objectLabel, namespaceLabel: what the API exposes and queries by. */
const summary = (rules: readonly MetricRule[]): string[] =>
  rules
    .map((r) => `${r.resource}/${r.metric} ${resolver.resolve(r.resource)!.namespaced ? 'namespaced' : 'root'} object=${r.objectLabel} ns=${r.namespaceLabel}`)
    .sort();

test('walkthrough shape: pods and namespaces get <name>_per_second, labels from the overrides', () => {
  const rules = fixture('walkthrough.yaml');
  const found = discoverMetrics(
    rules,
    byQuery(rules, series('http_requests_total{kubernetes_namespace,kubernetes_pod_name,method,instance}')),
    resolver,
  );
  assert.deepEqual(summary(found.custom), [
    'namespaces/http_requests_per_second root object=kubernetes_namespace ns=kubernetes_namespace',
    'pods/http_requests_per_second namespaced object=kubernetes_pod_name ns=kubernetes_namespace',
  ]);
  const pod = found.custom.find((r) => r.resource === 'pods')!;
  assert.equal(pod.origin, 'walkthrough.yaml rules[0] (http_requests_total)');
  assert.equal(pod.series, 'http_requests_total');
  assert.equal(pod.queryScope, 'objects');
  assert.equal(pod.window, null);
  assert.equal(pod.query, rules[0]!.metricsQuery);
  assert.deepEqual(found.external, []);
  assert.deepEqual(found.problems, []);
});

test('template shape: every label naming a resource registers the metric, job included (as jobs.batch)', () => {
  const rules = fixture('template.yaml');
  const found = discoverMetrics(
    rules,
    byQuery(
      rules,
      series(
        'http_requests_total{namespace,pod,job,instance,service,container}',
        'deployment_rollouts_total{namespace,deployment}',
        'ingress_hits_total{namespace,ingress}',
        // A plural label resolves too; the query still uses the template's label for pods: `pod`.
        'pods_seen_total{namespace,pods}',
        'up{namespace,pod}',
      ),
    ),
    resolver,
  );
  assert.deepEqual(summary(found.custom), [
    'deployments.apps/deployment_rollouts namespaced object=deployment ns=namespace',
    'ingresses.networking.k8s.io/ingress_hits namespaced object=ingress ns=namespace',
    'jobs.batch/http_requests namespaced object=job ns=namespace',
    'namespaces/deployment_rollouts root object=namespace ns=namespace',
    'namespaces/http_requests root object=namespace ns=namespace',
    'namespaces/ingress_hits root object=namespace ns=namespace',
    'namespaces/pods_seen root object=namespace ns=namespace',
    'pods/http_requests namespaced object=pod ns=namespace',
    'pods/pods_seen namespaced object=pod ns=namespace',
    'services/http_requests namespaced object=service ns=namespace',
  ]);
  assert.deepEqual(found.problems, []);
});

test('a series without a namespace label gives no namespace label, and never displaces one that has it', () => {
  const rules = fixture('template.yaml');
  const found = discoverMetrics(
    rules,
    byQuery(rules, series('a_total{pod}', 'b_total{namespace,pod}', 'b_total{pod}', 'node_x_total{node}', 'node_y_total{node,namespace}')),
    resolver,
  );
  assert.deepEqual(summary(found.custom), [
    'namespaces/b root object=namespace ns=namespace',
    'namespaces/node_y root object=namespace ns=namespace',
    'nodes/node_x root object=node ns=',
    'nodes/node_y root object=node ns=namespace',
    'pods/a namespaced object=pod ns=',
    'pods/b namespaced object=pod ns=namespace',
  ]);
});

test('the six legacy default rules: _total and _seconds_total stripped, gauges kept, isNot filters keep rules apart', () => {
  const rules = fixture('legacy-defaults.yaml');
  const containers = rules[0]!.seriesQuery;
  const others = rules[3]!.seriesQuery;
  const found = discoverMetrics(
    rules,
    new Map([
      [
        containers,
        series(
          'container_cpu_usage_seconds_total{namespace,pod,container,id}',
          'container_network_receive_bytes_total{namespace,pod,interface}',
          'container_memory_working_set_bytes{namespace,pod,container}',
        ),
      ],
      [
        others,
        series(
          'http_requests_total{namespace,pod,service}',
          'process_cpu_seconds_total{namespace,pod}',
          'queue_length{namespace,service}',
          'kube_node_info{namespace,node}',
        ),
      ],
    ]),
    resolver,
  );
  assert.deepEqual(summary(found.custom), [
    'namespaces/cpu_usage root object=namespace ns=namespace',
    'namespaces/http_requests root object=namespace ns=namespace',
    'namespaces/kube_node_info root object=namespace ns=namespace',
    'namespaces/memory_working_set_bytes root object=namespace ns=namespace',
    'namespaces/network_receive_bytes root object=namespace ns=namespace',
    'namespaces/process_cpu root object=namespace ns=namespace',
    'namespaces/queue_length root object=namespace ns=namespace',
    'nodes/kube_node_info root object=node ns=namespace',
    'pods/cpu_usage namespaced object=pod ns=namespace',
    'pods/http_requests namespaced object=pod ns=namespace',
    'pods/memory_working_set_bytes namespaced object=pod ns=namespace',
    'pods/network_receive_bytes namespaced object=pod ns=namespace',
    'pods/process_cpu namespaced object=pod ns=namespace',
    'services/http_requests namespaced object=service ns=namespace',
    'services/queue_length namespaced object=service ns=namespace',
  ]);
  const origin = (resource: string, metric: string): string => found.custom.find((r) => r.resource === resource && r.metric === metric)!.origin;
  assert.equal(origin('pods', 'cpu_usage'), 'legacy-defaults.yaml rules[0] (container_cpu_usage_seconds_total)');
  assert.equal(origin('pods', 'network_receive_bytes'), 'legacy-defaults.yaml rules[1] (container_network_receive_bytes_total)');
  assert.equal(origin('pods', 'memory_working_set_bytes'), 'legacy-defaults.yaml rules[2] (container_memory_working_set_bytes)');
  assert.equal(origin('services', 'queue_length'), 'legacy-defaults.yaml rules[3] (queue_length)');
  assert.equal(origin('pods', 'http_requests'), 'legacy-defaults.yaml rules[4] (http_requests_total)');
  assert.equal(origin('pods', 'process_cpu'), 'legacy-defaults.yaml rules[5] (process_cpu_seconds_total)');
  assert.deepEqual(found.problems, []);
});

test('externalRules: one metric per name; namespaced false gives no namespace label; no label for a namespaced rule is a problem', () => {
  const rules = fixture('external.yaml');
  const found = discoverMetrics(
    rules,
    new Map([
      [rules[0]!.seriesQuery, series('queue_consumer_lag{name,namespace,partition}', 'queue_consumer_lag{name,namespace,partition,pod}')],
      [rules[1]!.seriesQuery, series('queue_depth{topic}')],
      [rules[2]!.seriesQuery, series('rabbitmq_queue_length{queue}')],
    ]),
    resolver,
  );
  assert.deepEqual(
    found.external.map((e: ExternalMetricRule) => [e.metric, e.namespaceLabel, e.series, e.origin]),
    [
      ['queue_consumer_lag', 'namespace', 'queue_consumer_lag', 'external.yaml externalRules[0] (queue_consumer_lag)'],
      ['queue_depth', null, 'queue_depth', 'external.yaml externalRules[1] (queue_depth)'],
    ],
  );
  assert.equal(found.external[0]!.query, rules[0]!.metricsQuery);
  assert.deepEqual(found.custom, []);
  assert.equal(found.problems.length, 1);
  assert.match(found.problems[0]!, /^external\.yaml externalRules\[2\]: the rule is namespaced \(resources\.namespaced defaults to true\) but no label maps to namespaces/);
});

test('the later rule wins for the same metric, as in prometheus-adapter, and problems say which', () => {
  const rules = inline(`
rules:
- seriesQuery: '{pod!=""}'
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_total$}
  metricsQuery: first
- seriesQuery: '{pod!=""}'
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_count$}
  metricsQuery: second
externalRules:
- seriesQuery: '{pod!=""}'
  name: {matches: ^(.*)_total$}
  resources: {namespaced: false}
  metricsQuery: ext-first
- seriesQuery: '{pod!=""}'
  name: {matches: ^(.*)_count$}
  resources: {namespaced: false}
  metricsQuery: ext-second
`);
  const found = discoverMetrics(rules, byQuery(rules, series('jobs_total{namespace,pod}', 'jobs_count{namespace,pod}')), resolver);
  assert.deepEqual(
    found.custom.map((r) => `${r.resource}/${r.metric} ${r.query.source} ${r.series}`),
    ['namespaces/jobs second jobs_count', 'pods/jobs second jobs_count'],
  );
  assert.deepEqual(
    found.external.map((r) => `${r.metric} ${r.query.source}`),
    ['jobs ext-second'],
  );
  assert.deepEqual(found.problems, [
    'metric "jobs" for namespaces comes from inline.yaml rules[1] (jobs_count); it replaces inline.yaml rules[0] (jobs_total) (the later rule wins, as in prometheus-adapter)',
    'metric "jobs" for pods comes from inline.yaml rules[1] (jobs_count); it replaces inline.yaml rules[0] (jobs_total) (the later rule wins, as in prometheus-adapter)',
    'external metric "jobs" comes from inline.yaml externalRules[1] (jobs_count); it replaces inline.yaml externalRules[0] (jobs_total) (the later rule wins, as in prometheus-adapter)',
  ]);
});

test('name.as "$1_per_second" names a group "1_per_second": empty names are skipped and the fix is suggested', () => {
  const rules = inline(`
rules:
- seriesQuery: 'http_requests_total'
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*)_total", as: "$1_per_second"}
  metricsQuery: x
`);
  const found = discoverMetrics(rules, byQuery(rules, series('http_requests_total{namespace,pod}', 'grpc_calls_total{namespace,pod}')), resolver);
  assert.deepEqual(found.custom, []);
  assert.deepEqual(found.problems, [
    'inline.yaml rules[0]: name.as "$1_per_second": "$1_per_second" refers to no capture group of name.matches; write ${1}_per_second',
    'inline.yaml rules[0]: name.as "$1_per_second" turns series "http_requests_total" into an empty metric name (and 1 more series), which is not a usable metric name; skipped',
  ]);
});

test('seriesFilters (is / isNot) apply to the series name, unanchored like Go', () => {
  const rules = inline(`
rules:
- seriesQuery: 'q'
  seriesFilters:
  - is: requests
  - isNot: ^internal_
  resources: {overrides: {pod: {resource: pods}, ns: {resource: Namespace}}}
  metricsQuery: x
`);
  const found = discoverMetrics(
    rules,
    byQuery(rules, series('http_requests_total{pod,ns}', 'internal_requests{pod,ns}', 'errors_total{pod,ns}')),
    resolver,
  );
  assert.deepEqual(summary(found.custom), [
    'namespaces/http_requests_total root object=ns ns=ns',
    'pods/http_requests_total namespaced object=pod ns=ns',
  ]);
});

test('group templates: kube_<<.Group>>_<<.Resource>> both ways, and unknown override resources are reported', () => {
  const rules = inline(`
rules:
- seriesQuery: 'q'
  resources:
    template: kube_<<.Group>>_<<.Resource>>
    overrides:
      kube_namespace: {resource: namespace}
      widget: {group: example.com, resource: widget}
  metricsQuery: x
`);
  const found = discoverMetrics(
    rules,
    byQuery(rules, series('replicas{kube_namespace,kube_apps_deployment,kube_batch_job,kube_pod,widget}')),
    resolver,
  );
  // kube_pod does not match: the template wants a group, and core resources have none.
  assert.deepEqual(summary(found.custom), [
    'deployments.apps/replicas namespaced object=kube_apps_deployment ns=kube_namespace',
    'jobs.batch/replicas namespaced object=kube_batch_job ns=kube_namespace',
    'namespaces/replicas root object=kube_namespace ns=kube_namespace',
  ]);
  assert.deepEqual(found.problems, [
    'inline.yaml rules[0]: resources.overrides.widget: resource "widget.example.com" is not known to the cluster; series are not registered for it',
  ]);
});

test('labelForResource: overrides reversed first, else the template with the sanitised group and singular resource', () => {
  const association: ResourceAssociation = {
    overrides: { kubernetes_pod_name: { resource: 'pod' }, exported_job: { group: 'batch', resource: 'jobs' } },
    template: 'kube_<<.Group>>_<<.Resource>>',
    namespaced: true,
  };
  const info = (text: string) => resolver.resolve(text)!;
  assert.equal(labelForResource(association, info('pods')), 'kubernetes_pod_name');
  assert.equal(labelForResource(association, info('jobs.batch'), resolver), 'exported_job');
  assert.equal(labelForResource(association, info('deployments.apps')), 'kube_apps_deployment');
  assert.equal(labelForResource(association, info('ingresses')), 'kube_networking_k8s_io_ingress');
  assert.equal(labelForResource(association, info('nodes')), 'kube__node');
  assert.equal(labelForResource({ overrides: {}, template: '<<.Resource>>', namespaced: true }, info('namespaces')), 'namespace');
  assert.equal(labelForResource({ overrides: { pod: { resource: 'pods' } }, template: null, namespaced: true }, info('services')), null);
});

test('series queries missing from the map (not yet listed, or failed) contribute nothing', () => {
  const rules = fixture('walkthrough.yaml');
  assert.deepEqual(discoverMetrics(rules, new Map(), resolver), { custom: [], external: [], problems: [] });
});

test('series sharing one entry per shape give the same metrics as one object per series, in any order', async () => {
  const fc = (await import('fast-check')).default;
  const rules = inline(`
rules:
- seriesQuery: '{__name__=~".+"}'
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_total$, as: "\${1}_per_second"}
  metricsQuery: a
- seriesQuery: '{__name__=~".+"}'
  resources: {overrides: {namespace: {resource: namespace}, node: {resource: node}, pod: {resource: pod}}}
  name: {matches: ^(.*)$}
  metricsQuery: b
externalRules:
- seriesQuery: '{__name__=~".+"}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: c
`);
  const pool = series(
    'x_total{namespace,pod}',
    'x_total{pod}',
    'x_total{node}',
    'x_total{namespace,node}',
    'y{namespace,pod,job}',
    'y{node}',
    'y{namespace,node}',
    'z_total{job}',
  );
  fc.assert(
    fc.property(fc.array(fc.nat(pool.length - 1), { maxLength: 30 }), (picks) => {
      const shared = picks.map((i) => pool[i]!);
      const copies = picks.map((i) => ({ name: pool[i]!.name, labels: [...pool[i]!.labels] }));
      assert.deepEqual(discoverMetrics(rules, byQuery(rules, shared), resolver), discoverMetrics(rules, byQuery(rules, copies), resolver));
    }),
    { numRuns: 300 },
  );
});
