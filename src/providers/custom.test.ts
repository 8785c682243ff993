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

function setup(): { provider: PrometheusCustomMetricsProvider; prometheus: FakePrometheus; objects: FakeObjects } {
  const prometheus = new FakePrometheus();
  const objects = new FakeObjects();
  const resolver = { resolve: (text: string) => (text === 'pods' ? PODS : null) };
  const registry = new MetricRegistry(RULES.metrics, resolver);
  const provider = new PrometheusCustomMetricsProvider({
    registry: () => registry,
    resources: () => resolver,
    objects,
    // The engine caches nothing; the fake answers the same result object, as a cache hit would.
    engine: new QueryEngine(prometheus, { cacheTtlMs: 0, cacheMaxEntries: 10 }),
    log: pino({ level: 'silent' }),
    maxObjectsPerRequest: 1_000_000,
  });
  return { provider, prometheus, objects };
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
