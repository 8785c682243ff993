import type { ObjectMeta, ObjectSource } from '../kubernetes/object-source.ts';
import { matchesLabels, type Selector } from '../rules/selector.ts';
import { promqlString } from '../rules/escape.ts';
import type { ResourceInfo } from '../rules/well-known-resources.ts';
import type { QueryEngine } from './query-engine.ts';

/**
 * Objects derived from kube-state-metrics series (`kube_<kind>_labels`), for running without a
 * Kubernetes API: the demo, and debugging rules against a Prometheus from a laptop. Label keys are
 * kube-state-metrics' sanitised forms with the `label_` prefix removed (`app.kubernetes.io/name`
 * appears as `app_kubernetes_io_name`), so selectors on such keys need the sanitised spelling.
 */
export class KubeStateObjectSource implements ObjectSource {
  readonly #engine: QueryEngine;

  constructor(engine: QueryEngine) {
    this.#engine = engine;
  }

  async list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<ObjectMeta[]> {
    const kind = resource.singular;
    const matchers = resource.namespaced && namespace !== null ? `{namespace=${promqlString(namespace)}}` : '';
    const result = await this.#engine.query(`kube_${kind}_labels${matchers}`, 'object-source');
    const byKey = new Map<string, ObjectMeta>();
    for (const sample of result.samples) {
      const name = sample.labels[kind];
      if (!name) continue;
      const ns = resource.namespaced ? (sample.labels.namespace ?? '') : '';
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(sample.labels)) if (k.startsWith('label_')) labels[k.slice(6)] = v;
      if (matchesLabels(selector, labels)) byKey.set(`${ns}/${name}`, { namespace: ns, name, labels });
    }
    return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, o]) => o);
  }

  async stop(): Promise<void> {}
}
