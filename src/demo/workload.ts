/**
 * A small simulated cluster for the demo: the series that cAdvisor, kube-state-metrics, the kubelet and an
 * instrumented application would expose, as pure functions of time so that every number is reproducible.
 */
import type { SeriesSpec } from './prometheus-process.ts';

export interface DemoPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  deployment: string;
  node: string;
  containers: string[];
}

export interface DemoWorkload {
  pods: DemoPod[];
  nodes: string[];
}

interface ContainerProfile {
  /** Mean CPU use in cores and the amplitude of its oscillation (smaller than the mean, so the rate stays > 0). */
  cpu: { mean: number; amplitude: number; request: number; limit: number };
  /** Bytes. */
  memory: { mean: number; amplitude: number; request: number; limit: number };
}

interface DeploymentProfile {
  name: string;
  replicaSetHash: string;
  /** Fixed suffixes rather than random ones, so that pod names are the same in every run. */
  podSuffixes: string[];
  containers: Record<string, ContainerProfile>;
  /** Requests per second per pod, by method. */
  http: { GET: { mean: number; amplitude: number }; POST: { mean: number; amplitude: number } };
}

const MI = 1024 * 1024;
const GI = 1024 * MI;
const NAMESPACE = 'default';
const NODES = ['worker-1', 'worker-2'];

/** Long enough to look like load changing, short enough to see a full cycle during a demo. */
const PERIOD_SECONDS = 600;

const DEPLOYMENTS: DeploymentProfile[] = [
  {
    name: 'demo',
    replicaSetHash: '7c9d8',
    podSuffixes: ['abcde', 'fghij', 'klmno'],
    containers: {
      app: {
        cpu: { mean: 0.2, amplitude: 0.1, request: 0.25, limit: 0.5 },
        memory: { mean: 120 * MI, amplitude: 20 * MI, request: 128 * MI, limit: 256 * MI },
      },
      sidecar: {
        cpu: { mean: 0.02, amplitude: 0.01, request: 0.05, limit: 0.1 },
        memory: { mean: 30 * MI, amplitude: 5 * MI, request: 32 * MI, limit: 64 * MI },
      },
    },
    http: { GET: { mean: 10, amplitude: 5 }, POST: { mean: 2, amplitude: 1 } },
  },
  {
    name: 'web',
    replicaSetHash: '5f6b7',
    podSuffixes: ['xk2lp', 'q9wzt'],
    containers: {
      web: {
        cpu: { mean: 0.1, amplitude: 0.08, request: 0.2, limit: 1 },
        memory: { mean: 200 * MI, amplitude: 40 * MI, request: 256 * MI, limit: 512 * MI },
      },
    },
    http: { GET: { mean: 40, amplitude: 20 }, POST: { mean: 4, amplitude: 2 } },
  },
];

/** What the kubelet and the OS use on a node besides the pods. */
const NODE_OVERHEAD = {
  cpu: { mean: 0.15, amplitude: 0.05 },
  memory: { mean: 1.5 * GI, amplitude: 50 * MI },
};

export function demoWorkload(): DemoWorkload {
  const pods: DemoPod[] = [];
  let index = 0;
  for (const deployment of DEPLOYMENTS) {
    for (const suffix of deployment.podSuffixes) {
      pods.push({
        namespace: NAMESPACE,
        name: `${deployment.name}-${deployment.replicaSetHash}-${suffix}`,
        labels: { app: deployment.name, 'pod-template-hash': deployment.replicaSetHash },
        deployment: deployment.name,
        node: NODES[index % NODES.length] as string,
        containers: Object.keys(deployment.containers),
      });
      index++;
    }
  }
  return { pods, nodes: [...NODES] };
}

interface Wave {
  mean: number;
  amplitude: number;
  phase: number;
}

function gaugeOf(wave: Wave, start: number): (t: number) => number {
  return (t) => wave.mean + wave.amplitude * Math.sin((2 * Math.PI * (t - start)) / PERIOD_SECONDS + wave.phase);
}

/**
 * The integral from `start` to t of the rate `gaugeOf(wave)`: a counter whose rate() is the sine wave (up to
 * rate()'s window averaging). Request counters are left fractional too, because rounding them down would make
 * rate() jagged. The rate stays positive because amplitude < mean, so the counter is monotonic; before
 * `start` it is 0, which keeps it monotonic for samples written before the workload started.
 */
function counterOf(wave: Wave, start: number): (t: number) => number {
  const omega = (2 * Math.PI) / PERIOD_SECONDS;
  return (t) => {
    if (t <= start) return 0;
    const elapsed = t - start;
    const oscillation = (wave.amplitude / omega) * (Math.cos(wave.phase) - Math.cos(omega * elapsed + wave.phase));
    return wave.mean * elapsed + oscillation;
  };
}

function sumOf(fns: ((t: number) => number)[]): (t: number) => number {
  return (t) => fns.reduce((total, fn) => total + fn(t), 0);
}

/** Byte counts are whole numbers in real exporters, and fractions would look odd in the demo's output. */
function wholeBytes(fn: (t: number) => number): (t: number) => number {
  return (t) => Math.round(fn(t));
}

function profileOf(pod: DemoPod): DeploymentProfile {
  const profile = DEPLOYMENTS.find((d) => d.name === pod.deployment);
  if (profile === undefined) throw new Error(`no profile for deployment ${pod.deployment}`);
  return profile;
}

/**
 * The series for `workload` with the load starting at `startSeconds`: counters are 0 there. Each pod gets its own
 * phase so that pods of one deployment differ and their sum is not a multiple of one of them.
 */
export function demoSeries(workload: DemoWorkload, startSeconds: number): SeriesSpec[] {
  const series: SeriesSpec[] = [];
  const constant = (v: number) => () => v;
  const nodeCpu = new Map<string, ((t: number) => number)[]>(workload.nodes.map((n) => [n, []]));
  const nodeMemory = new Map<string, ((t: number) => number)[]>(workload.nodes.map((n) => [n, []]));

  workload.pods.forEach((pod, podIndex) => {
    const profile = profileOf(pod);
    const phase = (2 * Math.PI * podIndex) / workload.pods.length;
    const podLabels = { namespace: pod.namespace, pod: pod.name };

    pod.containers.forEach((container, containerIndex) => {
      const c = profile.containers[container];
      if (c === undefined) throw new Error(`no profile for container ${container} of ${pod.name}`);
      const labels = { ...podLabels, container, node: pod.node };
      const cpuWave = { mean: c.cpu.mean, amplitude: c.cpu.amplitude, phase: phase + containerIndex };
      const memoryWave = { mean: c.memory.mean, amplitude: c.memory.amplitude, phase: phase + containerIndex + 1 };
      const cpu = counterOf(cpuWave, startSeconds);
      const memory = wholeBytes(gaugeOf(memoryWave, startSeconds));
      nodeCpu.get(pod.node)?.push(cpu);
      nodeMemory.get(pod.node)?.push(memory);
      series.push(
        {
          name: 'container_cpu_usage_seconds_total',
          help: 'Cumulative cpu time consumed in seconds.',
          type: 'counter',
          labels,
          value: cpu,
        },
        {
          name: 'container_memory_working_set_bytes',
          help: 'Current working set in bytes.',
          type: 'gauge',
          labels,
          value: memory,
        },
      );
      for (const kind of ['limits', 'requests'] as const) {
        const single = kind === 'limits' ? 'limit' : 'request';
        series.push(
          {
            name: `kube_pod_container_resource_${kind}`,
            help: `The number of requested ${single} resource by a container.`,
            type: 'gauge',
            labels: { ...labels, resource: 'cpu', unit: 'core' },
            value: constant(c.cpu[single]),
          },
          {
            name: `kube_pod_container_resource_${kind}`,
            type: 'gauge',
            labels: { ...labels, resource: 'memory', unit: 'byte' },
            value: constant(c.memory[single]),
          },
        );
      }
    });

    series.push(
      {
        name: 'kube_pod_labels',
        help: 'Kubernetes labels converted to Prometheus labels.',
        type: 'gauge',
        labels: { ...podLabels, label_app: pod.labels['app'] ?? pod.deployment },
        value: constant(1),
      },
      {
        name: 'kube_pod_info',
        help: 'Information about pod.',
        type: 'gauge',
        labels: {
          ...podLabels,
          node: pod.node,
          created_by_kind: 'ReplicaSet',
          created_by_name: `${profile.name}-${profile.replicaSetHash}`,
        },
        value: constant(1),
      },
    );

    (['GET', 'POST'] as const).forEach((method, methodIndex) => {
      const wave = { ...profile.http[method], phase: phase + 2 * methodIndex };
      series.push({
        name: 'http_requests_total',
        help: 'Total number of HTTP requests.',
        type: 'counter',
        labels: { ...podLabels, method, code: '200' },
        value: counterOf(wave, startSeconds),
      });
    });
  });

  workload.nodes.forEach((node, nodeIndex) => {
    const phase = (2 * Math.PI * nodeIndex) / workload.nodes.length;
    series.push(
      {
        name: 'node_cpu_usage_seconds_total',
        help: 'Cumulative cpu time consumed by the node in core-seconds.',
        type: 'counter',
        labels: { node },
        value: sumOf([counterOf({ ...NODE_OVERHEAD.cpu, phase }, startSeconds), ...(nodeCpu.get(node) ?? [])]),
      },
      {
        name: 'node_memory_working_set_bytes',
        help: 'Current working set of the node in bytes.',
        type: 'gauge',
        labels: { node },
        value: wholeBytes(
          sumOf([gaugeOf({ ...NODE_OVERHEAD.memory, phase }, startSeconds), ...(nodeMemory.get(node) ?? [])]),
        ),
      },
    );
  });

  return series;
}
