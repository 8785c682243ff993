import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject, type RequestContext } from '@kubernetes/client-node';
import { matchesLabels, type Selector } from '../rules/selector.ts';
import type { ResourceInfo } from '../rules/well-known-resources.ts';
import { kubeGet } from './api-request.ts';
import type { ObjectMeta, ObjectSource } from './object-source.ts';
import { ServiceUnavailableError } from '../errors.ts';

const LIST_METADATA = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const WATCH_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** Asks for metadata-only watch events: the cache needs names and labels, not whole pod specs. */
class MetadataKubeConfig extends KubeConfig {
  override async applySecurityAuthentication(ctx: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(ctx);
    ctx.setHeaderParam('Accept', WATCH_METADATA);
  }
}

type Labels = ReadonlyMap<string, string>;

export interface ObjectCacheOptions {
  readonly log: { info(msg: string): void; warn(msg: string): void };
  /** How long a request waits for the first list before failing with 503. */
  readonly syncTimeoutMs?: number;
}

/**
 * One list+watch per resource, keeping only namespace, name and labels of each object. Watches
 * that fail are restarted with backoff, and requests keep being answered from the last known state.
 */
class ResourceCache {
  readonly #byNamespace = new Map<string, Map<string, Labels>>();
  readonly #informer: ListWatch<KubernetesObject>;
  readonly #synced: Promise<void>;
  #stopped = false;
  #backoffMs = 1000;
  #starting: Promise<void> = Promise.resolve();

  constructor(kc: KubeConfig, resource: ResourceInfo, options: ObjectCacheOptions) {
    const prefix = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
    const path = `${prefix}/${resource.resource}`;
    const watchKc = new MetadataKubeConfig();
    watchKc.loadFromString(kc.exportConfig());
    const list = (): Promise<KubernetesListObject<KubernetesObject>> =>
      kubeGet<KubernetesListObject<KubernetesObject>>(kc, path, { accept: LIST_METADATA });
    this.#informer = new ListWatch(path, new Watch(watchKc), list, false);
    let markSynced!: () => void;
    this.#synced = new Promise((resolve) => (markSynced = resolve));
    const upsert = (obj: KubernetesObject): void => {
      const ns = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name;
      if (!name) return;
      let names = this.#byNamespace.get(ns);
      if (!names) this.#byNamespace.set(ns, (names = new Map()));
      names.set(name, new Map(Object.entries(obj.metadata?.labels ?? {})));
    };
    this.#informer.on('add', upsert);
    this.#informer.on('update', upsert);
    this.#informer.on('delete', (obj) => {
      const names = this.#byNamespace.get(obj.metadata?.namespace ?? '');
      names?.delete(obj.metadata?.name ?? '');
      if (names?.size === 0) this.#byNamespace.delete(obj.metadata?.namespace ?? '');
    });
    this.#informer.on('connect', () => {
      this.#backoffMs = 1000;
    });
    this.#informer.on('error', (err: unknown) => {
      if (this.#stopped || (err as Error)?.name === 'AbortError') return;
      options.log.warn(`watch of ${path} failed (${(err as Error)?.message ?? err}); serving cached objects, retrying in ${this.#backoffMs} ms`);
      const delay = this.#backoffMs;
      this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
      setTimeout(() => {
        if (!this.#stopped) this.#starting = this.#informer.start().then(() => markSynced());
      }, delay).unref();
    });
    this.#starting = this.#informer.start().then(() => {
      // start() also resolves after a failed first list (it reports through 'error'); only a cache
      // that has a resourceVersion has really listed.
      if (this.#informer.latestResourceVersion()) markSynced();
    });
    this.#informer.on('connect', () => {
      if (this.#informer.latestResourceVersion()) markSynced();
    });
  }

  async waitForSync(timeoutMs: number, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServiceUnavailableError(`the object cache for ${what} has not synced with the Kubernetes API yet; retry shortly`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.#synced, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  objects(namespace: string | null, selector: Selector): ObjectMeta[] {
    const out: ObjectMeta[] = [];
    const spaces: [string, Map<string, Labels>][] =
      namespace === null ? [...this.#byNamespace.entries()] : [[namespace, this.#byNamespace.get(namespace) ?? new Map<string, Labels>()]];
    for (const [ns, names] of spaces) {
      for (const [name, labels] of names) if (matchesLabels(selector, labels)) out.push({ namespace: ns, name, labels: Object.fromEntries(labels) });
    }
    return out.sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#informer.stop();
    // A start() still listing when stop() ran would open its watch afterwards: stop it again once it settles.
    await this.#starting.catch(() => undefined);
    await this.#informer.stop();
  }
}

/** Watch-backed object source: one cache per resource, created on first use. */
export class InformerObjectSource implements ObjectSource {
  readonly #kc: KubeConfig;
  readonly #options: ObjectCacheOptions;
  readonly #caches = new Map<string, ResourceCache>();

  constructor(kc: KubeConfig, options: ObjectCacheOptions) {
    this.#kc = kc;
    this.#options = options;
  }

  /** Starts the caches for resources the rules serve, so the first HPA request does not wait. */
  prepare(resources: readonly ResourceInfo[]): void {
    for (const r of resources) this.#cacheFor(r);
  }

  async list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<ObjectMeta[]> {
    const cache = this.#cacheFor(resource);
    await cache.waitForSync(this.#options.syncTimeoutMs ?? 10_000, resource.resource);
    return cache.objects(resource.namespaced ? namespace : null, selector);
  }

  async listNames(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<string[]> {
    return (await this.list(resource, namespace, selector)).map((o) => o.name).sort();
  }

  #cacheFor(resource: ResourceInfo): ResourceCache {
    const key = `${resource.group}/${resource.resource}`;
    let cache = this.#caches.get(key);
    if (!cache) {
      cache = new ResourceCache(this.#kc, resource, this.#options);
      this.#caches.set(key, cache);
      this.#options.log.info(`watching ${key || resource.resource} (metadata only) for label selector lookups`);
    }
    return cache;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#caches.values()].map((c) => c.stop()));
  }
}
