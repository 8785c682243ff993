import { CoreV1Api, KubeConfig, ListWatch, Watch, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';

/**
 * FAKE kubelet. No kubelet can run here, so this loop plays its one part the HPA depends on: every
 * pod of the watched namespace is reported Running and Ready (through the status subresource, as a
 * kubelet would), including the pods the HPA's scaling creates.
 */
export class FakeKubelet {
  readonly #core: CoreV1Api;
  readonly #informer: ListWatch<V1Pod>;
  readonly #namespace: string;
  #stopped = false;

  constructor(kc: KubeConfig, namespace: string) {
    this.#namespace = namespace;
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#informer = new ListWatch<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods`,
      new Watch(kc),
      () => this.#core.listNamespacedPod({ namespace }),
      false,
    );
    const onPod = (pod: V1Pod): void => void this.#markRunning(pod).catch(() => undefined);
    this.#informer.on('add', onPod);
    this.#informer.on('update', onPod);
    this.#informer.on('error', () => {
      if (!this.#stopped) setTimeout(() => void this.#informer.start(), 500).unref();
    });
  }

  async start(): Promise<void> {
    await this.#informer.start();
  }

  /** Pods this fake kubelet reports as running. */
  runningPods(): V1Pod[] {
    return this.#informer.list(this.#namespace).filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
  }

  async #markRunning(pod: V1Pod): Promise<void> {
    if (this.#stopped || pod.metadata?.deletionTimestamp) return;
    const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (pod.status?.phase === 'Running' && ready) return;
    const now = new Date().toISOString();
    const containers = (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      ready: true,
      restartCount: 0,
      started: true,
      state: { running: { startedAt: now } },
    }));
    await this.#core.patchNamespacedPodStatus(
      {
        name: pod.metadata!.name!,
        namespace: this.#namespace,
        body: {
          status: {
            phase: 'Running',
            startTime: now,
            podIP: '10.244.0.10',
            conditions: [
              { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
              { type: 'Initialized', status: 'True', lastTransitionTime: now },
              { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
              { type: 'Ready', status: 'True', lastTransitionTime: now },
            ],
            containerStatuses: containers,
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#informer.stop();
  }
}
