import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { parseRuleFile } from '../config/load.ts';
import { QueryEngine } from '../prometheus/query-engine.ts';
import type { InstantQuerier, InstantQueryResult } from '../prometheus/http-client.ts';
import { MetricRegistry } from '../rules/registry.ts';
import { WELL_KNOWN_RESOURCES, type ResourceInfo } from '../rules/well-known-resources.ts';
import type { ObjectMeta, ObjectSource } from '../kubernetes/object-source.ts';
import { PrometheusCustomMetricsProvider } from './custom.ts';

const PODS = WELL_KNOWN_RESOURCES.find((r) => r.resource === 'pods' && r.group === '')!;
const RULES = parseRuleFile(
  'rules.yaml',
  'metrics:\n- name: cpu\n  resource: pods\n  query: sum by (<<.GroupBy>>) (cpu{<<.LabelMatchers>>})\n',
);

/** Prometheus stand-in: one sample per pod name of its namespace, the same result object until told otherwise. */
class FakePrometheus implements InstantQuerier {
  queries = 0;
  pods = new Map<string, number>();
  /** The answer per namespace; deleting one makes the next query a new evaluation. */
  readonly results = new Map<string, InstantQueryResult>();

  async query(promql: string): Promise<InstantQueryResult> {
    this.queries++;
    const ns = /namespace="([^"]*)"/.exec(promql)?.[1] ?? '';
    let result = this.results.get(ns);
    if (result === undefined) {
      const count = this.pods.get(ns) ?? 0;
      result = { samples: Array.from({ length: count }, (_, i) => ({ labels: { pod: `p-${i}` }, value: i / 10, timestamp: 1_700_000_000 })), warnings: [] };
      this.results.set(ns, result);
    }
    return result;
  }
}

/** Object source stand-in that, like the watch caches, answers the same frozen list until its objects change. */
class FakeObjects implements ObjectSource {
  readonly lists = new Map<string, readonly ObjectMeta[]>();

  set(namespace: string, count: number): void {
    this.lists.set(namespace, Object.freeze(Array.from({ length: count }, (_, i) => ({ namespace, name: `p-${i}`, labels: {} }))));
  }

  async list(_resource: ResourceInfo, namespace: string | null): Promise<readonly ObjectMeta[]> {
    return this.lists.get(namespace ?? '') ?? [];
  }

  async stop(): Promise<void> {}
}

/** A provider of `rules` for pods, over `objects` and a query engine that caches nothing in front of `prometheus`. */
function providerOf(rules: typeof RULES, objects: ObjectSource, prometheus: InstantQuerier): PrometheusCustomMetricsProvider {
  const resolver = { resolve: (text: string) => (text === 'pods' ? PODS : null) };
  const registry = new MetricRegistry(rules.metrics, resolver);
  return new PrometheusCustomMetricsProvider({
    registry: () => registry,
    resources: () => resolver,
    objects,
    engine: new QueryEngine(prometheus, { cacheTtlMs: 0, cacheMaxEntries: 10 }),
    log: pino({ level: 'silent' }),
    maxObjectsPerRequest: 1_000_000,
  });
}

function setup(): { provider: PrometheusCustomMetricsProvider; prometheus: FakePrometheus; objects: FakeObjects } {
  const prometheus = new FakePrometheus();
  const objects = new FakeObjects();
  // The fake answers the same result object, as an engine cache hit would.
  return { provider: providerOf(RULES, objects, prometheus), prometheus, objects };
}

const INFO = { resource: 'pods', metric: 'cpu' };

describe('custom provider: repeated reads', () => {
  it('answer the same list while query result and objects are the same, and a new one when either changes', async () => {
    const { provider, prometheus, objects } = setup();
    prometheus.pods.set('a', 3);
    objects.set('a', 3);
    const first = await provider.getMetricBySelector('a', [], INFO, []);
    assert.equal(first.length, 3);
    assert.ok(Object.isFrozen(first));
    assert.equal(await provider.getMetricBySelector('a', [], INFO, []), first);

    objects.set('a', 2); // a pod went away: same query result, new object list
    const fewer = await provider.getMetricBySelector('a', [], INFO, []);
    assert.notEqual(fewer, first);
    assert.deepEqual(fewer.map((v) => v.describedObject.name), ['p-0', 'p-1']);

    prometheus.results.delete('a'); // a new evaluation: new samples, same objects
    const fresh = await provider.getMetricBySelector('a', [], INFO, []);
    assert.notEqual(fresh, fewer);
    assert.deepEqual(fresh, fewer);
  });

  it('forget everything once the remembered answers hold more than 100,000 items, and still answer correctly', async () => {
    const { provider, prometheus, objects } = setup();
    for (const ns of ['a', 'b']) {
      prometheus.pods.set(ns, 60_000);
      objects.set(ns, 60_000);
    }
    const a = await provider.getMetricBySelector('a', [], INFO, []);
    assert.equal(await provider.getMetricBySelector('a', [], INFO, []), a, 'remembered below the bound');
    const b = await provider.getMetricBySelector('b', [], INFO, []);
    assert.equal(b.length, 60_000);
    const again = await provider.getMetricBySelector('a', [], INFO, []);
    assert.notEqual(again, a, '120,000 items exceed the bound: the answer for a was forgotten and built again');
    assert.deepEqual(again, a);
  });
});

describe('custom provider: joining samples with objects', () => {
  /** The join's rules written plainly: the last sample per requested name, a namespace label must match, policies. */
  function model(
    samples: readonly { labels: Record<string, string>; value: number }[],
    names: readonly string[],
    policy: { noData?: number; nan?: number; inf?: number },
  ): { name: string; value: number }[] {
    const last = new Map<string, number>();
    const nonFinite = new Set<string>();
    for (const s of samples) {
      const name = s.labels.pod;
      if (name === undefined || ('namespace' in s.labels && s.labels.namespace !== 'a')) continue;
      if (Number.isFinite(s.value)) last.set(name, s.value);
      else {
        const substitute = Number.isNaN(s.value) ? policy.nan : policy.inf;
        if (substitute !== undefined) last.set(name, substitute);
        else nonFinite.add(name);
      }
    }
    const out: { name: string; value: number }[] = [];
    for (const name of names) {
      const value = last.get(name) ?? (nonFinite.has(name) ? undefined : policy.noData);
      if (value !== undefined) out.push({ name, value });
    }
    return out;
  }

  it('answer, in object order, the last usable sample or the policy value of each requested object', async () => {
    const fc = (await import('fast-check')).default;
    const pool = ['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'other'];
    const sample = fc.record({
      labels: fc.record({ pod: fc.constantFrom(...pool), namespace: fc.constantFrom('a', 'b') }, { requiredKeys: [] }),
      value: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)),
    });
    // Which policies serve the rule's fallback value; sample values are small integers, so a substitute shows.
    const policies = fc.record({ noData: fc.boolean(), nan: fc.boolean(), inf: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(sample, { maxLength: 12 }), fc.subarray(pool.slice(0, 5)), policies, fc.integer({ min: 10, max: 20 }), async (samples, names, p, fallback) => {
        const rules = parseRuleFile(
          'rules.yaml',
          'metrics:\n- name: cpu\n  resource: pods\n  query: sum by (<<.GroupBy>>) (cpu{<<.LabelMatchers>>})\n' +
            (p.noData || p.nan || p.inf ? `  fallback: ${fallback}\n` : '') +
            (p.noData ? '  noData: fallback\n' : '') +
            (p.nan ? '  nan: fallback\n' : '') +
            (p.inf ? '  inf: fallback\n' : ''),
        );
        const list = Object.freeze(names.map((name) => ({ namespace: 'a', name, labels: {} })));
        const provider = providerOf(
          rules,
          { list: async () => list, stop: async () => {} },
          { query: async () => ({ samples: samples.map((s) => ({ ...s, timestamp: 1_700_000_000 })), warnings: [] }) },
        );
        const got = await provider.getMetricBySelector('a', [], INFO, []);
        const served = (on: boolean): number | undefined => (on ? fallback : undefined);
        const want = model(samples, names, { noData: served(p.noData), nan: served(p.nan), inf: served(p.inf) });
        assert.deepEqual(
          got.map((v) => ({ name: v.describedObject.name, value: v.value })),
          want,
        );
        for (const v of got) assert.deepEqual(v.describedObject, { kind: 'Pod', apiVersion: '/v1', namespace: 'a', name: v.describedObject.name });
      }),
      { numRuns: 500 },
    );
  });
});
