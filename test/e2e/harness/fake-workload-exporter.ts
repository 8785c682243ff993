import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeKubelet } from './fake-kubelet.ts';

/**
 * FAKE workload: stands in for an application's /metrics endpoint, which a real Prometheus scrapes.
 * Each Deployment has a total load that the test sets; every running pod of it reports an equal
 * share (`e2e_pod_load`), as replicas behind a load balancer would, and the Deployment's total is
 * exported too (`e2e_deployment_load`). So an HPA targeting an average of T per pod should settle at
 * ceil(total / T) replicas.
 */
export class FakeWorkloadExporter {
  readonly #loads = new Map<string, number>();
  readonly #queues = new Map<string, number>();
  readonly #nodes = new Map<string, { cpuCores: number; memoryBytes: number }>();
  readonly #kubelet: FakeKubelet;
  readonly #namespace: string;
  #server: Server | null = null;

  constructor(kubelet: FakeKubelet, namespace: string) {
    this.#kubelet = kubelet;
    this.#namespace = namespace;
  }

  setLoad(deployment: string, total: number): void {
    this.#loads.set(deployment, total);
  }

  /** A queue outside the cluster (an External metric): `e2e_queue_depth{queue}`. */
  setQueueDepth(queue: string, depth: number): void {
    this.#queues.set(queue, depth);
  }

  /** What a node exporter would report for a node. */
  setNodeUsage(node: string, cpuCores: number, memoryBytes: number): void {
    this.#nodes.set(node, { cpuCores, memoryBytes });
  }

  /** The metrics text, built from the pods that are running right now. */
  render(): string {
    const lines = ['# TYPE e2e_pod_load gauge'];
    const pods = this.#kubelet.runningPods();
    const deployLines = ['# TYPE e2e_deployment_load gauge'];
    for (const [deployment, total] of this.#loads) {
      // Pods of a Deployment carry its name as the `app` label in this suite's manifests.
      const mine = pods.filter((p) => p.metadata?.labels?.app === deployment);
      for (const pod of mine) {
        lines.push(`e2e_pod_load{namespace="${this.#namespace}",pod="${pod.metadata!.name}",deployment="${deployment}"} ${total / mine.length}`);
      }
      deployLines.push(`e2e_deployment_load{namespace="${this.#namespace}",deployment="${deployment}"} ${total}`);
    }
    // cAdvisor-like container usage for every running pod: 250m of CPU and 64Mi of memory each.
    const usage = ['# TYPE e2e_container_cpu_cores gauge', '# TYPE e2e_container_memory_bytes gauge'];
    for (const pod of pods) {
      const l = `namespace="${this.#namespace}",pod="${pod.metadata!.name}",container="app"`;
      usage.push(`e2e_container_cpu_cores{${l}} 0.25`, `e2e_container_memory_bytes{${l}} ${64 * 1024 * 1024}`);
    }
    for (const [node, u] of this.#nodes) {
      usage.push(`e2e_node_cpu_cores{node="${node}"} ${u.cpuCores}`, `e2e_node_memory_bytes{node="${node}"} ${u.memoryBytes}`);
    }
    const queues = ['# TYPE e2e_queue_depth gauge', ...[...this.#queues].map(([q, d]) => `e2e_queue_depth{namespace="${this.#namespace}",queue="${q}"} ${d}`)];
    return `${[...lines, ...deployLines, ...usage, ...queues].join('\n')}\n`;
  }

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
