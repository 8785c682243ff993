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
  /**
   * The matching objects with their labels, sorted by namespace and name. Served from memory. A source may answer
   * the same (frozen) array again while its objects are unchanged; callers must not modify it.
   */
  list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<readonly ObjectMeta[]>;
  stop(): Promise<void>;
}

/**
 * Names of the objects of `resource` in `namespace` (every namespace when null) whose labels match
 * `selector`, sorted. Served from memory: never a Kubernetes LIST per request.
 */
export async function objectNames(source: ObjectSource, resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<readonly string[]> {
  const objects = await source.list(resource, namespace, selector);
  let names = namesOf.get(objects);
  if (names === undefined) {
    names = Object.freeze(objects.map((o) => o.name).sort());
    namesOf.set(objects, names);
  }
  return names;
}

// The same object list gives the same names array, so answers built from it can be recognised as unchanged.
const namesOf = new WeakMap<readonly ObjectMeta[], readonly string[]>();
