import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject, type RequestContext } from '@kubernetes/client-node';
import { matchesLabels, selectorToString, type Selector } from '../rules/selector.ts';
import { groupResourceString, type ResourceInfo } from '../rules/well-known-resources.ts';
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

/** Tells its owner when a watch stream is open and when it ends; ListWatch itself does not say. */
class TrackedWatch extends Watch {
  readonly #onOpen: () => void;
  readonly #onClose: () => void;

  constructor(config: KubeConfig, onOpen: () => void, onClose: () => void) {
    super(config);
    this.#onOpen = onOpen;
    this.#onClose = onClose;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    let ended = false;
    let open = false;
    // A refused watch calls `done` before watch() resolves; only a stream that opened confirms anything.
    // ERROR events carry a Status (410 Gone) that ListWatch reads whole.
    const slimmed = (phase: string, apiObj: any, watchObj?: any): void => callback(phase, phase === 'ERROR' ? apiObj : slim(apiObj), watchObj);
    const controller = await super.watch(path, queryParams, slimmed, (err: unknown) => {
      ended = true;
      if (open) this.#onClose();
      done(err);
    });
    if (!ended) {
      open = true;
      this.#onOpen();
    }
    return controller;
  }
}

type Labels = Readonly<Record<string, string>>;

/**
 * What ListWatch's own copy keeps of an object: its keys and resourceVersion (it compares those), and the labels
 * the adapter matches. Metadata-only objects still carry annotations and managedFields, often kilobytes a pod.
 */
function slim(obj: KubernetesObject): KubernetesObject {
  const m = obj.metadata;
  if (!m) return obj;
  return { metadata: { name: m.name, namespace: m.namespace, labels: m.labels, resourceVersion: m.resourceVersion } };
}

export interface ObjectCacheOptions {
  readonly log: { info(msg: string): void; warn(msg: string): void };
  /** How long a request waits for the first list before failing with 503. */
  readonly syncTimeoutMs?: number;
  /**
   * A cache the Kubernetes API has not confirmed for longer than this is stale: it is logged once per outage
   * and status() says so. Requests are still answered from it.
   */
  readonly staleAfterMs?: number;
  /** How often caches are checked for staleness. */
  readonly staleCheckIntervalMs?: number;
  /** First delay before a failed list+watch is restarted; it doubles per failure up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly now?: () => number;
}

/** How current one resource's cache is. */
export interface ObjectCacheStatus {
  /** `pods`, `deployments.apps`. */
  readonly resource: string;
  /** Listed at least once; until then requests that need it wait, then fail with 503. */
  readonly synced: boolean;
  /** A watch is open, so the cache follows the API as it changes. */
  readonly watching: boolean;
  /** When the API last confirmed the cached state: now while watching, else when the last watch ended. */
  readonly lastSync: Date | null;
  /** 0 while watching; else the time since lastSync (since the cache was created, if it never synced). */
  readonly staleForMs: number;
  readonly stale: boolean;
}

export const DEFAULT_STALE_AFTER_MS = 60_000;

const MAX_REMEMBERED_ANSWERS = 1000;

/**
 * One list+watch per resource, keeping only namespace, name and labels of each object. Watches
 * that fail are restarted with backoff, and requests keep being answered from the last known state.
 */
class ResourceCache {
  readonly name: string;
  readonly #byNamespace = new Map<string, Map<string, Labels>>();
  readonly #informer: ListWatch<KubernetesObject>;
  readonly #synced: Promise<void>;
  readonly #options: ObjectCacheOptions;
  readonly #now: () => number;
  readonly #createdAt: number;
  #stopped = false;
  #backoffMs: number;
  #starting: Promise<void> = Promise.resolve();
  #hasSynced = false;
  #watching = false;
  #lastSync: number | null = null;
  #staleReported = false;
  #ready = false;
  /** Bumped by every change, so answers computed from an unchanged cache can be reused. */
  #generation = 0;
  /** Recent objects() answers by namespace and selector, valid while #generation is unchanged. */
  readonly #answers = new Map<string, { generation: number; objects: readonly ObjectMeta[] }>();

  constructor(kc: KubeConfig, resource: ResourceInfo, options: ObjectCacheOptions) {
    this.name = groupResourceString(resource);
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#createdAt = this.#now();
    const initialBackoffMs = options.initialBackoffMs ?? 1000;
    const maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#backoffMs = initialBackoffMs;
    const prefix = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
    const path = `${prefix}/${resource.resource}`;
    const watchKc = new MetadataKubeConfig();
    watchKc.loadFromString(kc.exportConfig());
    let markSynced!: () => void;
    this.#synced = new Promise((resolve) => (markSynced = resolve));
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const listed = await kubeGet<KubernetesListObject<KubernetesObject>>(kc, path, { accept: LIST_METADATA });
      const result = { ...listed, items: listed.items.map(slim) };
      this.#lastSync = this.#now();
      this.#hasSynced = true;
      // ListWatch applies the items in the microtask after this returns; waiters must resume after that.
      setImmediate(() => {
        this.#ready = true;
        markSynced();
      });
      return result;
    };
    const watch = new TrackedWatch(
      watchKc,
      () => {
        this.#watching = true;
        this.#lastSync = this.#now();
        // Only an open watch proves the API is back; resetting on every attempt would keep the backoff at its minimum.
        this.#backoffMs = initialBackoffMs;
        if (this.#staleReported) {
          this.#staleReported = false;
          options.log.info(`the object cache for ${this.name} is in sync with the Kubernetes API again`);
        }
      },
      () => {
        this.#watching = false;
        this.#lastSync = this.#now();
      },
    );
    this.#informer = new ListWatch(path, watch, list, false);
    const upsert = (obj: KubernetesObject): void => {
      const ns = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name;
      if (!name) return;
      let names = this.#byNamespace.get(ns);
      if (!names) this.#byNamespace.set(ns, (names = new Map()));
      // Own, frozen and shared by every answer: a request that matches 5,000 pods copies no labels.
      names.set(name, Object.freeze({ ...obj.metadata?.labels }));
      this.#generation++;
    };
    this.#informer.on('add', upsert);
    this.#informer.on('update', upsert);
    this.#informer.on('delete', (obj) => {
      const names = this.#byNamespace.get(obj.metadata?.namespace ?? '');
      names?.delete(obj.metadata?.name ?? '');
      if (names?.size === 0) this.#byNamespace.delete(obj.metadata?.namespace ?? '');
      this.#generation++;
    });
    this.#informer.on('error', (err: unknown) => {
      if (this.#stopped || (err as Error)?.name === 'AbortError') return;
      options.log.warn(
        `watch of ${path} failed (${(err as Error)?.message ?? err}); ` +
          `${this.#hasSynced ? 'serving cached objects' : 'requests that need it fail with 503 until it lists'}, retrying in ${this.#backoffMs} ms`,
      );
      const delay = this.#backoffMs;
      this.#backoffMs = Math.min(this.#backoffMs * 2, maxBackoffMs);
      setTimeout(() => {
        // start() resolves after a failed list too (reporting it here again); the list itself marks the sync.
        if (!this.#stopped) this.#starting = this.#informer.start();
      }, delay).unref();
    });
    this.#starting = this.#informer.start();
  }

  status(): ObjectCacheStatus {
    const now = this.#now();
    const staleForMs = this.#watching ? 0 : Math.max(0, now - (this.#lastSync ?? this.#createdAt));
    return {
      resource: this.name,
      synced: this.#hasSynced,
      watching: this.#watching,
      lastSync: this.#lastSync === null ? null : new Date(this.#watching ? now : this.#lastSync),
      staleForMs,
      stale: staleForMs > (this.#options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
    };
  }

  /** Logs once per outage when the cache has gone unconfirmed for too long; the recovery is logged by the watch. */
  checkStaleness(): void {
    if (this.#stopped || this.#staleReported) return;
    const s = this.status();
    if (!s.stale) return;
    this.#staleReported = true;
    const seconds = s.staleForMs < 10_000 ? (s.staleForMs / 1000).toFixed(1) : String(Math.round(s.staleForMs / 1000));
    this.#options.log.warn(
      s.lastSync
        ? `the object cache for ${this.name} is stale: the Kubernetes API has not confirmed it for ${seconds} s (last sync ` +
            `${s.lastSync.toISOString()}); label selectors are still answered from it, so ${this.name} created, relabelled or ` +
            'deleted since then are not seen'
        : `the object cache for ${this.name} has not been able to list from the Kubernetes API for ${seconds} s; requests that need it fail with 503`,
    );
  }

  async waitForSync(timeoutMs: number, what: string): Promise<void> {
    if (this.#ready) return;
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

  /**
   * The matching objects, sorted by namespace and name. The same array (frozen) is answered again while nothing
   * in the cache changed, which lets callers reuse what they computed from it: HPAs repeat the same selectors.
   */
  objects(namespace: string | null, selector: Selector): readonly ObjectMeta[] {
    const key = `${namespace ?? '\u0000'}\u0000${selectorToString(selector)}`;
    const known = this.#answers.get(key);
    if (known !== undefined && known.generation === this.#generation) return known.objects;
    const out: ObjectMeta[] = [];
    const spaces: [string, Map<string, Labels>][] =
      namespace === null ? [...this.#byNamespace.entries()] : [[namespace, this.#byNamespace.get(namespace) ?? new Map<string, Labels>()]];
    for (const [ns, names] of spaces) {
      for (const [name, labels] of names) if (matchesLabels(selector, labels)) out.push({ namespace: ns, name, labels });
    }
    out.sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
    const objects = Object.freeze(out);
    // Bounded: distinct selectors are few in practice, and a burst of new ones only costs recomputation.
    if (this.#answers.size >= MAX_REMEMBERED_ANSWERS) this.#answers.clear();
    this.#answers.set(key, { generation: this.#generation, objects });
    return objects;
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
  readonly #staleCheck: NodeJS.Timeout;

  constructor(kc: KubeConfig, options: ObjectCacheOptions) {
    this.#kc = kc;
    this.#options = options;
    this.#staleCheck = setInterval(() => {
      for (const cache of this.#caches.values()) cache.checkStaleness();
    }, options.staleCheckIntervalMs ?? 10_000);
    this.#staleCheck.unref();
  }

  /** One entry per watched resource, in the order they were first used. */
  status(): ObjectCacheStatus[] {
    return [...this.#caches.values()].map((c) => c.status());
  }

  /** Starts the caches for resources the rules serve, so the first HPA request does not wait. */
  prepare(resources: readonly ResourceInfo[]): void {
    for (const r of resources) this.#cacheFor(r);
  }

  async list(resource: ResourceInfo, namespace: string | null, selector: Selector): Promise<readonly ObjectMeta[]> {
    const cache = this.#cacheFor(resource);
    await cache.waitForSync(this.#options.syncTimeoutMs ?? 10_000, resource.resource);
    return cache.objects(resource.namespaced ? namespace : null, selector);
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
    clearInterval(this.#staleCheck);
    await Promise.all([...this.#caches.values()].map((c) => c.stop()));
  }
}
