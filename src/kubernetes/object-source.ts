import type { Selector } from '../rules/selector.ts';
import type { ResourceInfo } from '../rules/well-known-resources.ts';

/** Where the set of objects behind `{resource}/*?labelSelector=` comes from. */
export interface ObjectSource {
  /**
   * Names of the objects of `resource` in `namespace` (every namespace when null) whose labels
   * match `selector`, sorted. Served from memory: never a Kubernetes LIST per request.
   */
  listNames(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<string[]>;
  stop(): Promise<void>;
}
