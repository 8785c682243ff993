import type { Selector } from '../rules/selector.ts';
import type { ResourceInfo } from '../rules/well-known-resources.ts';

/** What the adapter keeps of a Kubernetes object. */
export interface ObjectMeta {
  /** '' for cluster-scoped objects. */
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Where the set of objects behind `{resource}/*?labelSelector=` comes from. */
export interface ObjectSource {
  /** The matching objects with their labels, sorted by namespace and name. Served from memory. */
  list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<ObjectMeta[]>;
  stop(): Promise<void>;
}

/**
 * Names of the objects of `resource` in `namespace` (every namespace when null) whose labels match
 * `selector`, sorted. Served from memory: never a Kubernetes LIST per request.
 */
export async function objectNames(source: ObjectSource, resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<string[]> {
  return (await source.list(resource, namespace, selector)).map((o) => o.name).sort();
}
