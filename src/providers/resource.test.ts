import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import type { ResourceAssociation, ResourceMetricRule, ResourceRules } from '../config/model.ts';
import { ServiceUnavailableError } from '../errors.ts';
import type { ObjectMeta, ObjectSource } from '../kubernetes/object-source.ts';
import type { InstantQuerier, InstantQueryResult, Sample } from '../prometheus/http-client.ts';
import { QueryEngine } from '../prometheus/query-engine.ts';
import { matchesLabels, parseSelector, type Selector } from '../rules/selector.ts';
import { compileTemplate } from '../rules/template.ts';
import type { ResourceInfo } from '../rules/well-known-resources.ts';
import { ResourceMetricsProvider, type ResourceProviderLog } from './resource.ts';
import { labelForResource } from '../rules/series-naming.ts';

const FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice'];

/** A `resourceRules` block as prometheus-adapter reads it, compiled into the rule model. */
function resourceRulesFromYaml(text: string): ResourceRules {
  const doc = parseYaml(text) as { resourceRules: Record<string, any> };
  const rr = doc.resourceRules;
  const association = (r: any): ResourceAssociation => ({
    overrides: r?.overrides ?? {},
    template: r?.template ?? null,
    namespaced: r?.namespaced ?? true,
  });
  const rule = (r: any): ResourceMetricRule => ({
    containerQuery: compileTemplate(r.containerQuery, FIELDS),
    nodeQuery: compileTemplate(r.nodeQuery, FIELDS),
    resources: association(r.resources),
    containerLabel: r.containerLabel,
  });
  const m = /^(\d+)([smh])$/.exec(rr['window']);
  assert.ok(m);
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
  return { origin: 'adapter.yaml resourceRules', cpu: rule(rr['cpu']), memory: rule(rr['memory']), window: { text: rr['window'], seconds } };
}

// Written the way prometheus-adapter's deploy/manifests/config-map.yaml writes it.
const ADAPTER_CONFIG = `
resourceRules:
  cpu:
    containerQuery: |
      sum by (<<.GroupBy>>) (
        rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[5m])
      )
    nodeQuery: sum by (<<.GroupBy>>) (rate(node_cpu_usage_seconds_total{<<.LabelMatchers>>}[5m]))
    resources:
      overrides:
        namespace: {resource: namespace}
        node: {resource: node}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: sum by (<<.GroupBy>>) (container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""})
    nodeQuery: sum by (<<.GroupBy>>) (node_memory_working_set_bytes{<<.LabelMatchers>>})
    resources:
      overrides:
        namespace: {resource: namespace}
        node: {resource: node}
        pod: {resource: pod}
    containerLabel: container
  window: 5m
`;

const cpuPodQuery = (matchers: string) =>
  `sum by (pod,container) (\n  rate(container_cpu_usage_seconds_total{${matchers},container!=""}[5m])\n)\n`;
const memPodQuery = (matchers: string) => `sum by (pod,container) (container_memory_working_set_bytes{${matchers},container!=""})`;
const cpuNodeQuery = (matchers: string) => `sum by (node) (rate(node_cpu_usage_seconds_total{${matchers}}[5m]))`;
const memNodeQuery = (matchers: string) => `sum by (node) (node_memory_working_set_bytes{${matchers}})`;

/** A FAKE object source: objects in memory, selected like the informer cache selects them. */
class FakeObjectSource implements ObjectSource {
  readonly objects = new Map<string, ObjectMeta[]>();
  readonly calls: { resource: string; namespace: string | null; selector: Selector }[] = [];

  add(resource: 'pods' | 'nodes', namespace: string, name: string, labels: Record<string, string> = {}): this {
    const list = this.objects.get(resource) ?? [];
    list.push({ namespace, name, labels });
    this.objects.set(resource, list);
    return this;
  }

  async list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<ObjectMeta[]> {
    this.calls.push({ resource: resource.resource, namespace, selector });
    return (this.objects.get(resource.resource) ?? [])
      .filter((o) => (namespace === null || o.namespace === namespace) && matchesLabels(selector, o.labels))
      .sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  }

  async stop(): Promise<void> {}
}

interface FakeSeries {
  readonly metric: string;
  readonly labels: Record<string, string>;
  readonly value: number;
  readonly timestamp?: number;
}

/**
 * A FAKE Prometheus behind the real QueryEngine: it records every query and answers from a table of
 * series, selecting them with the query's `namespace`, `pod` and `node` matchers (a stand-in for PromQL
 * that is exact for the queries these tests render).
 */
class FakeInstantQuerier implements InstantQuerier {
  readonly queries: string[] = [];
  series: FakeSeries[] = [];
  inflight = 0;
  maxInflight = 0;
  fail: Error | null = null;

  async query(promql: string, timeSeconds: number): Promise<InstantQueryResult> {
    this.queries.push(promql);
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      // Yield a few times so concurrent queries really overlap.
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
      if (this.fail) throw this.fail;
      const metric = /([a-z_]+)\{/.exec(promql)?.[1];
      const matcher = (label: string): ((v: string | undefined) => boolean) => {
        const m = new RegExp(`[{,]${label}(=~?)"((?:[^"\\\\]|\\\\.)*)"`).exec(promql);
        if (!m) return () => true;
        const text = m[2]!.replace(/\\\\/g, '\\');
        if (m[1] === '=') return (v) => v === text;
        const re = new RegExp(`^(?:${text})$`);
        return (v) => v !== undefined && re.test(v);
      };
      const selected = ['namespace', 'pod', 'node'].map(matcher);
      const samples: Sample[] = this.series
        .filter((s) => s.metric === metric && ['namespace', 'pod', 'node'].every((l, i) => selected[i]!(s.labels[l])))
        .map((s) => ({ labels: s.labels, value: s.value, timestamp: s.timestamp ?? timeSeconds }));
      return { samples, warnings: [] };
    } finally {
      this.inflight--;
    }
  }
}

/** A FAKE logger that keeps what was logged. */
class RecordingLog implements ResourceProviderLog {
  readonly entries: { level: string; obj: object; msg: string }[] = [];
  debug(obj: object, msg: string): void {
    this.entries.push({ level: 'debug', obj, msg });
  }
  warn(obj: object, msg: string): void {
    this.entries.push({ level: 'warn', obj, msg });
  }
}

const NOW_MS = 1_700_000_000_000;

function setup(opts: { rules?: ResourceRules; maxNamesPerQuery?: number; maxConcurrentQueries?: number } = {}) {
  const objects = new FakeObjectSource();
  const prom = new FakeInstantQuerier();
  const log = new RecordingLog();
  const engine = new QueryEngine(prom, { cacheTtlMs: 0, cacheMaxEntries: 0, now: () => NOW_MS });
  const provider = new ResourceMetricsProvider({
    rules: opts.rules ?? resourceRulesFromYaml(ADAPTER_CONFIG),
    objects,
    engine,
    log,
    ...(opts.maxNamesPerQuery !== undefined ? { maxNamesPerQuery: opts.maxNamesPerQuery } : {}),
    ...(opts.maxConcurrentQueries !== undefined ? { maxConcurrentQueries: opts.maxConcurrentQueries } : {}),
  });
  return { objects, prom, log, provider };
}

const cpu = (namespace: string, pod: string, container: string, value: number, timestamp?: number): FakeSeries => ({
  metric: 'container_cpu_usage_seconds_total',
  labels: { namespace, pod, container },
  value,
  ...(timestamp !== undefined ? { timestamp } : {}),
});
const mem = (namespace: string, pod: string, container: string, value: number, timestamp?: number): FakeSeries => ({
  metric: 'container_memory_working_set_bytes',
  labels: { namespace, pod, container },
  value,
  ...(timestamp !== undefined ? { timestamp } : {}),
});
const nodeCpu = (node: string, value: number, timestamp?: number): FakeSeries => ({
  metric: 'node_cpu_usage_seconds_total',
  labels: { node },
  value,
  ...(timestamp !== undefined ? { timestamp } : {}),
});
const nodeMem = (node: string, value: number, timestamp?: number): FakeSeries => ({
  metric: 'node_memory_working_set_bytes',
  labels: { node },
  value,
  ...(timestamp !== undefined ? { timestamp } : {}),
});

const MI = 1024 * 1024;
const T = NOW_MS / 1000;

describe('ResourceMetricsProvider: pods', () => {
  it('renders prometheus-adapter\'s queries for one namespace and joins cpu and memory per container', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'team-a', 'web-1', { app: 'web' }).add('pods', 'team-a', 'web-2', { app: 'web' });
    prom.series = [
      cpu('team-a', 'web-1', 'app', 0.2),
      cpu('team-a', 'web-1', 'sidecar', 0.05),
      mem('team-a', 'web-1', 'app', 100 * MI),
      mem('team-a', 'web-1', 'sidecar', 20 * MI),
      cpu('team-a', 'web-2', 'app', 0.5),
      mem('team-a', 'web-2', 'app', 200 * MI),
    ];
    const items = await provider.getPodMetrics('team-a', []);
    assert.deepEqual(prom.queries.sort(), [
      cpuPodQuery('namespace="team-a",pod=~"web-1|web-2"'),
      memPodQuery('namespace="team-a",pod=~"web-1|web-2"'),
    ].sort());
    assert.deepEqual(items, [
      {
        namespace: 'team-a',
        name: 'web-1',
        labels: { app: 'web' },
        timestamp: T,
        windowSeconds: 300,
        containers: [
          { name: 'app', cpuCores: 0.2, memoryBytes: 100 * MI },
          { name: 'sidecar', cpuCores: 0.05, memoryBytes: 20 * MI },
        ],
      },
      { namespace: 'team-a', name: 'web-2', labels: { app: 'web' }, timestamp: T, windowSeconds: 300, containers: [{ name: 'app', cpuCores: 0.5, memoryBytes: 200 * MI }] },
    ]);
  });

  it('a single pod is an equality matcher, and names are regex-escaped in alternations', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'team-a', 'dot.pod').add('pods', 'team-a', 'dotxpod');
    prom.series = [cpu('team-a', 'dot.pod', 'app', 0.1), mem('team-a', 'dot.pod', 'app', MI), cpu('team-a', 'dotxpod', 'app', 9), mem('team-a', 'dotxpod', 'app', MI)];
    const one = await provider.getPodMetrics('team-a', [], 'dot.pod');
    assert.deepEqual(prom.queries.sort(), [cpuPodQuery('namespace="team-a",pod="dot.pod"'), memPodQuery('namespace="team-a",pod="dot.pod"')].sort());
    assert.deepEqual(one.map((i) => [i.name, i.containers[0]!.cpuCores]), [['dot.pod', 0.1]]);
    prom.queries.length = 0;
    await provider.getPodMetrics('team-a', []);
    assert.ok(prom.queries.includes(memPodQuery('namespace="team-a",pod=~"dot\\\\.pod|dotxpod"')), prom.queries.join('\n'));
  });

  it('a Get of a pod that does not exist, or has no data, answers no item and never an unconstrained query', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'team-a', 'idle');
    assert.deepEqual(await provider.getPodMetrics('team-a', [], 'absent'), []);
    assert.equal(prom.queries.length, 0, 'no pods → no query');
    assert.deepEqual(await provider.getPodMetrics('team-a', [], 'idle'), []);
    assert.equal(prom.queries.length, 2);
  });

  it('groups pods by namespace: one cpu and one memory query per namespace, items sorted by namespace and name', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'team-b', 'web-1').add('pods', 'team-a', 'web-2').add('pods', 'team-a', 'api-1');
    prom.series = [
      cpu('team-a', 'web-2', 'app', 0.5),
      mem('team-a', 'web-2', 'app', MI),
      cpu('team-a', 'api-1', 'app', 0.75),
      mem('team-a', 'api-1', 'app', 2 * MI),
      cpu('team-b', 'web-1', 'app', 3),
      mem('team-b', 'web-1', 'app', 3 * MI),
    ];
    const items = await provider.getPodMetrics(null, []);
    assert.deepEqual(prom.queries.sort(), [
      cpuPodQuery('namespace="team-a",pod=~"api-1|web-2"'),
      cpuPodQuery('namespace="team-b",pod="web-1"'),
      memPodQuery('namespace="team-a",pod=~"api-1|web-2"'),
      memPodQuery('namespace="team-b",pod="web-1"'),
    ].sort());
    assert.deepEqual(items.map((i) => `${i.namespace}/${i.name}`), ['team-a/api-1', 'team-a/web-2', 'team-b/web-1']);
    assert.deepEqual(items.map((i) => i.containers[0]!.cpuCores), [0.75, 0.5, 3]);
  });

  it('the label selector goes to the object source; only the selected pods are queried', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'team-a', 'web-1', { app: 'web' }).add('pods', 'team-a', 'api-1', { app: 'api' });
    prom.series = [cpu('team-a', 'web-1', 'app', 1), mem('team-a', 'web-1', 'app', MI), cpu('team-a', 'api-1', 'app', 1), mem('team-a', 'api-1', 'app', MI)];
    const items = await provider.getPodMetrics('team-a', parseSelector('app=web'));
    assert.deepEqual(objects.calls.map((c) => [c.resource, c.namespace, c.selector.length]), [['pods', 'team-a', 1]]);
    assert.deepEqual(items.map((i) => i.name), ['web-1']);
    assert.ok(prom.queries.every((q) => q.includes('pod="web-1"')));
  });

  it('chunks a large namespace into queries of at most maxNamesPerQuery names, run in parallel, and merges them', async () => {
    const { objects, prom, provider } = setup({ maxNamesPerQuery: 500 });
    const names = Array.from({ length: 1203 }, (_, i) => `p-${String(i).padStart(4, '0')}`);
    for (const name of names) {
      objects.add('pods', 'big', name);
      prom.series.push(cpu('big', name, 'app', 0.001), mem('big', name, 'app', MI));
    }
    const items = await provider.getPodMetrics('big', []);
    assert.equal(prom.queries.length, 6, '3 chunks × (cpu, memory)');
    const alternations = prom.queries.map((q) => /pod=~"([^"]*)"/.exec(q)![1]!.split('|'));
    assert.deepEqual(alternations.map((a) => a.length).sort((a, b) => a - b), [203, 203, 500, 500, 500, 500]);
    assert.deepEqual(new Set(alternations.flat()), new Set(names));
    assert.ok(prom.maxInflight > 2, `chunks overlap (max in flight ${prom.maxInflight})`);
    assert.equal(items.length, 1203);
    assert.deepEqual(items.map((i) => i.name), names);
  });

  it('limits the queries in flight for a cluster-wide list', async () => {
    const { objects, prom, provider } = setup({ maxConcurrentQueries: 4 });
    for (let n = 0; n < 20; n++) {
      objects.add('pods', `ns-${n}`, 'p');
      prom.series.push(cpu(`ns-${n}`, 'p', 'app', 1), mem(`ns-${n}`, 'p', 'app', MI));
    }
    const items = await provider.getPodMetrics(null, []);
    assert.equal(items.length, 20);
    assert.equal(prom.queries.length, 40);
    assert.ok(prom.maxInflight <= 4 && prom.maxInflight > 1, `max in flight ${prom.maxInflight}`);
  });

  it('NaN and negative values read as 0; +Inf counts as no data', async () => {
    const { objects, prom, provider, log } = setup();
    objects.add('pods', 'ns', 'nan').add('pods', 'ns', 'neg').add('pods', 'ns', 'inf');
    prom.series = [
      cpu('ns', 'nan', 'app', Number.NaN),
      mem('ns', 'nan', 'app', Number.NaN),
      cpu('ns', 'neg', 'app', -0.5),
      mem('ns', 'neg', 'app', -1),
      cpu('ns', 'inf', 'app', Number.POSITIVE_INFINITY),
      mem('ns', 'inf', 'app', MI),
    ];
    const items = await provider.getPodMetrics('ns', []);
    assert.deepEqual(
      items.map((i) => [i.name, i.containers]),
      [
        ['nan', [{ name: 'app', cpuCores: 0, memoryBytes: 0 }]],
        ['neg', [{ name: 'app', cpuCores: 0, memoryBytes: 0 }]],
      ],
    );
    assert.ok(log.entries.some((e) => e.msg === 'ignoring a sample that has no quantity form' && (e.obj as any).pod === 'inf'));
    assert.ok(log.entries.some((e) => e.msg === 'skipping a pod without resource usage data' && (e.obj as any).pod === 'inf' && (e.obj as any).missing === 'cpu'));
  });

  it('partial data: a pod without cpu or memory is skipped (logged); a container with only one of them gets 0 for the other', async () => {
    const { objects, prom, provider, log } = setup();
    objects.add('pods', 'ns', 'cpu-only').add('pods', 'ns', 'mem-only').add('pods', 'ns', 'mixed').add('pods', 'ns', 'none');
    prom.series = [
      cpu('ns', 'cpu-only', 'app', 1),
      mem('ns', 'mem-only', 'app', MI),
      cpu('ns', 'mixed', 'app', 0.25),
      mem('ns', 'mixed', 'app', 64 * MI),
      cpu('ns', 'mixed', 'init-cpu', 0.5),
      mem('ns', 'mixed', 'log-mem', 8 * MI),
    ];
    const items = await provider.getPodMetrics('ns', []);
    assert.deepEqual(items.map((i) => [i.name, i.containers]), [
      [
        'mixed',
        [
          { name: 'app', cpuCores: 0.25, memoryBytes: 64 * MI },
          { name: 'init-cpu', cpuCores: 0.5, memoryBytes: 0 },
          { name: 'log-mem', cpuCores: 0, memoryBytes: 8 * MI },
        ],
      ],
    ]);
    const skipped = log.entries.filter((e) => e.msg === 'skipping a pod without resource usage data').map((e) => e.obj);
    assert.deepEqual(skipped, [
      { namespace: 'ns', pod: 'cpu-only', missing: 'memory' },
      { namespace: 'ns', pod: 'mem-only', missing: 'cpu' },
      { namespace: 'ns', pod: 'none', missing: 'cpu and memory' },
    ]);
    assert.ok(skipped.length > 0 && log.entries.filter((e) => e.msg.startsWith('skipping')).every((e) => e.level === 'debug'));
  });

  it('the pod timestamp is the earliest sample timestamp, over cpu and memory', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'ns', 'p');
    prom.series = [cpu('ns', 'p', 'a', 1, 1000.5), cpu('ns', 'p', 'b', 1, 999.25), mem('ns', 'p', 'a', MI, 1001), mem('ns', 'p', 'b', MI, 998.75)];
    const [item] = await provider.getPodMetrics('ns', []);
    assert.equal(item?.timestamp, 998.75);
    assert.equal(item?.windowSeconds, 300);
  });

  it('samples of another namespace and samples without the pod label are ignored', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'ns', 'p');
    prom.series = [cpu('ns', 'p', 'app', 1), mem('ns', 'p', 'app', MI)];
    // A query that does not filter on namespace: what it returns for other namespaces must not leak in.
    const leaky = { metric: 'container_cpu_usage_seconds_total', labels: { namespace: 'other', pod: 'p', container: 'app' }, value: 42 };
    const unlabelled = { metric: 'container_cpu_usage_seconds_total', labels: { container: 'app' }, value: 7 };
    const original = prom.query.bind(prom);
    prom.query = async (q, t) => {
      const r = await original(q, t);
      return q.includes('cpu') ? { ...r, samples: [...r.samples, { ...leaky, timestamp: t }, { ...unlabelled, timestamp: t }] } : r;
    };
    const [item] = await provider.getPodMetrics('ns', []);
    assert.deepEqual(item?.containers, [{ name: 'app', cpuCores: 1, memoryBytes: MI }]);
  });

  it('memory is whole bytes', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'ns', 'p');
    prom.series = [cpu('ns', 'p', 'app', 0.123456789012), mem('ns', 'p', 'app', 1048576.4)];
    const [item] = await provider.getPodMetrics('ns', []);
    assert.deepEqual(item?.containers, [{ name: 'app', cpuCores: 0.123456789012, memoryBytes: 1048576 }]);
  });
});

describe('ResourceMetricsProvider: nodes', () => {
  it('renders the node queries with every selected node, and takes the earlier of the two timestamps', async () => {
    const { objects, prom, provider } = setup();
    objects.add('nodes', '', 'node-1', { role: 'worker' }).add('nodes', '', 'node-2', { role: 'worker' }).add('nodes', '', 'master', { role: 'control-plane' });
    prom.series = [nodeCpu('node-1', 1.5, 1000), nodeMem('node-1', 2048 * MI, 990), nodeCpu('node-2', 0.5, 980), nodeMem('node-2', 512 * MI, 995)];
    const items = await provider.getNodeMetrics(parseSelector('role=worker'));
    assert.deepEqual(prom.queries.sort(), [cpuNodeQuery('node=~"node-1|node-2"'), memNodeQuery('node=~"node-1|node-2"')].sort());
    assert.deepEqual(items, [
      { name: 'node-1', labels: { role: 'worker' }, timestamp: 990, windowSeconds: 300, cpuCores: 1.5, memoryBytes: 2048 * MI },
      { name: 'node-2', labels: { role: 'worker' }, timestamp: 980, windowSeconds: 300, cpuCores: 0.5, memoryBytes: 512 * MI },
    ]);
  });

  it('one node by name is an equality matcher; a node without memory is skipped; NaN reads as 0', async () => {
    const { objects, prom, provider, log } = setup();
    objects.add('nodes', '', 'a').add('nodes', '', 'b');
    prom.series = [nodeCpu('a', Number.NaN), nodeMem('a', MI), nodeCpu('b', 1)];
    assert.deepEqual((await provider.getNodeMetrics([], 'a')).map((n) => [n.name, n.cpuCores, n.memoryBytes]), [['a', 0, MI]]);
    assert.deepEqual(prom.queries.sort(), [cpuNodeQuery('node="a"'), memNodeQuery('node="a"')].sort());
    assert.deepEqual(await provider.getNodeMetrics([], 'b'), []);
    assert.ok(log.entries.some((e) => e.msg === 'skipping a node without resource usage data' && (e.obj as any).node === 'b'));
    assert.deepEqual(await provider.getNodeMetrics([], 'absent'), []);
    assert.equal(prom.queries.length, 4, 'no query for a node that does not exist');
  });

  it('chunks nodes too', async () => {
    const { objects, prom, provider } = setup({ maxNamesPerQuery: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'e']) {
      objects.add('nodes', '', n);
      prom.series.push(nodeCpu(n, 1), nodeMem(n, MI));
    }
    const items = await provider.getNodeMetrics([]);
    assert.deepEqual(items.map((i) => i.name), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(prom.queries.length, 6);
    assert.ok(prom.queries.includes(cpuNodeQuery('node="e"')));
  });
});

describe('ResourceMetricsProvider: rules', () => {
  it('LabelValuesByName, GroupBySlice and Series render as in prometheus-adapter', async () => {
    const rules = resourceRulesFromYaml(
      ADAPTER_CONFIG.replace(
        'containerQuery: sum by (<<.GroupBy>>) (container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""})',
        `containerQuery: 'mem{namespace="<<index .LabelValuesByName "namespace">>",pod=~"<<index .LabelValuesByName "pod">>"} <<.GroupBySlice>> [<<.Series>>]'`,
      ),
    );
    const { objects, prom, provider } = setup({ rules });
    objects.add('pods', 'ns', 'a.1').add('pods', 'ns', 'b');
    await provider.getPodMetrics('ns', []);
    assert.ok(prom.queries.includes('mem{namespace="ns",pod=~"a.1|b"} [pod container] []'), prom.queries.join('\n'));
  });

  it('labels come from overrides (singular or plural, any case) or from the template with the singular resource', async () => {
    const rules = resourceRulesFromYaml(`
resourceRules:
  cpu:
    containerQuery: 'cpu{<<.LabelMatchers>>} by (<<.GroupBy>>)'
    nodeQuery: 'cpu{<<.LabelMatchers>>} by (<<.GroupBy>>)'
    resources:
      overrides:
        kube_ns: {resource: Namespaces}
        kube_pod_name: {resource: pods}
        instance_node: {group: "", resource: node}
    containerLabel: container_name
  memory:
    containerQuery: 'mem{<<.LabelMatchers>>} by (<<.GroupBy>>)'
    nodeQuery: 'mem{<<.LabelMatchers>>} by (<<.GroupBy>>)'
    resources:
      template: kube_<<.Group>><<.Resource>>
    containerLabel: container
  window: 1m
`);
    const { objects, prom, provider } = setup({ rules });
    objects.add('pods', 'ns', 'p').add('nodes', '', 'n');
    await provider.getPodMetrics('ns', []);
    await provider.getNodeMetrics([]);
    assert.deepEqual(prom.queries.sort(), [
      'cpu{instance_node="n"} by (instance_node)',
      'cpu{kube_ns="ns",kube_pod_name="p"} by (kube_pod_name,container_name)',
      'mem{kube_namespace="ns",kube_pod="p"} by (kube_pod,container)',
      'mem{kube_node="n"} by (kube_node)',
    ]);
    assert.equal(provider.windowSeconds, 60);
  });

  it('labelForResource: overrides win over the template, and other groups do not match a core resource', () => {
    const pods: ResourceInfo = { group: '', version: 'v1', resource: 'pods', singular: 'pod', kind: 'Pod', namespaced: true };
    assert.equal(labelForResource({ overrides: { p: { resource: 'pod' } }, template: '<<.Resource>>', namespaced: true }, pods), 'p');
    assert.equal(labelForResource({ overrides: { p: { group: 'apps', resource: 'pods' } }, template: '<<.Resource>>', namespaced: true }, pods), 'pod');
    assert.equal(labelForResource({ overrides: {}, template: null, namespaced: true }, pods), null);
  });

  it('rules that name no label for a resource fail when the provider is built, naming the rule and the fix', () => {
    const rules = resourceRulesFromYaml(ADAPTER_CONFIG.replace('        node: {resource: node}\n', ''));
    assert.throws(
      () => setup({ rules }),
      /: adapter\.yaml resourceRules\.cpu\.resources names no Prometheus label for nodes: add an override such as `node: \{resource: node\}`/,
    );
    const badContainer = resourceRulesFromYaml(ADAPTER_CONFIG.replace('containerLabel: container\n  memory', 'containerLabel: "container-name"\n  memory'));
    assert.throws(() => setup({ rules: badContainer }), /: adapter\.yaml resourceRules\.cpu\.containerLabel: "container-name" is not a usable Prometheus label name/);
  });

  it('a failing Prometheus query keeps its status and says which rule it came from', async () => {
    const { objects, prom, provider } = setup();
    objects.add('pods', 'ns', 'p').add('nodes', '', 'n');
    prom.fail = new ServiceUnavailableError('Prometheus at http://127.0.0.1:9 is unreachable: connect ECONNREFUSED');
    await assert.rejects(provider.getPodMetrics('ns', []), (err: any) => {
      assert.equal(err.code, 503);
      assert.equal(err.reason, 'ServiceUnavailable');
      assert.match(err.message, /^Prometheus at http:\/\/127\.0\.0\.1:9 is unreachable: connect ECONNREFUSED; rule adapter\.yaml resourceRules\.(cpu|memory)\.containerQuery$/);
      return true;
    });
    await assert.rejects(provider.getNodeMetrics([]), /rule adapter\.yaml resourceRules\.(cpu|memory)\.nodeQuery$/);
  });

  it('after a failed query no further chunk is started', async () => {
    const { objects, prom, provider } = setup({ maxConcurrentQueries: 2 });
    for (let n = 0; n < 10; n++) objects.add('pods', `ns-${n}`, 'p');
    prom.fail = new ServiceUnavailableError('down');
    await assert.rejects(provider.getPodMetrics(null, []), /down/);
    assert.equal(prom.queries.length, 2, 'only the first namespace\'s pair');
  });
});
