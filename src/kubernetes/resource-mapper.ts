import type { KubeConfig } from '@kubernetes/client-node';
import type { ResourceResolver } from '../rules/registry.ts';
import { WELL_KNOWN_RESOURCES, parseGroupResource, type ResourceInfo } from '../rules/well-known-resources.ts';
import { kubeGet } from './api-request.ts';

/**
 * Resolves what rule files and URLs say (`pods`, `pod`, `Pod`, `deployments.apps`, `deployment`) to
 * one resource, like a RESTMapper. Core resources win when a name without a group is ambiguous.
 */
export class ResourceMapper implements ResourceResolver {
  readonly #resources: readonly ResourceInfo[];
  readonly #cache = new Map<string, ResourceInfo | null>();

  constructor(resources: readonly ResourceInfo[]) {
    this.#resources = resources;
  }

  static wellKnown(): ResourceMapper {
    return new ResourceMapper(WELL_KNOWN_RESOURCES);
  }

  get resources(): readonly ResourceInfo[] {
    return this.#resources;
  }

  resolve(text: string): ResourceInfo | null {
    const cached = this.#cache.get(text);
    if (cached !== undefined) return cached;
    const { group, resource } = parseGroupResource(text);
    const name = resource.toLowerCase();
    const candidates = this.#resources.filter(
      (r) =>
        (group === '' || r.group === group) &&
        (r.resource === name || r.singular === name || r.kind.toLowerCase() === name),
    );
    const found = candidates.find((r) => r.group === '') ?? candidates[0] ?? null;
    this.#cache.set(text, found);
    return found;
  }
}

interface APIResourceList {
  groupVersion: string;
  resources: { name: string; singularName?: string; namespaced: boolean; kind: string; verbs?: string[] }[];
}
interface APIGroupList {
  groups: { name: string; preferredVersion?: { groupVersion: string; version: string }; versions: { groupVersion: string }[] }[];
}

/**
 * Every listable resource the cluster serves, from API discovery (preferred version of each group).
 * A group whose discovery fails (an unavailable aggregated API) is skipped, not fatal.
 */
export async function discoverResources(kc: KubeConfig, warn: (msg: string) => void): Promise<ResourceInfo[]> {
  const lists: APIResourceList[] = [await kubeGet<APIResourceList>(kc, '/api/v1')];
  const groups = await kubeGet<APIGroupList>(kc, '/apis');
  const results = await Promise.allSettled(
    groups.groups.map((g) => {
      const gv = g.preferredVersion?.groupVersion ?? g.versions[0]?.groupVersion;
      return gv ? kubeGet<APIResourceList>(kc, `/apis/${gv}`, { timeoutMs: 10_000 }) : Promise.reject(new Error(`group ${g.name} has no versions`));
    }),
  );
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') lists.push(r.value);
    else warn(`API discovery of group ${groups.groups[i]!.name} failed: ${(r.reason as Error).message}`);
  });
  const out: ResourceInfo[] = [];
  for (const list of lists) {
    const [group, version] = list.groupVersion.includes('/') ? list.groupVersion.split('/') : ['', list.groupVersion];
    for (const r of list.resources) {
      if (r.name.includes('/') || !(r.verbs ?? []).includes('list')) continue;
      out.push({
        group: group!,
        version: version!,
        resource: r.name,
        singular: r.singularName || r.kind.toLowerCase(),
        kind: r.kind,
        namespaced: r.namespaced,
      });
    }
  }
  return out;
}
