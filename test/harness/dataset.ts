import type { SeriesSpec } from '../../src/demo/prometheus-process.ts';
import type { FakeKubeApiServer } from './fake-kube-apiserver.ts';

/** Deterministic data for the integration tests: exact rates and gauges, so expected answers are literals. */
export const START = Math.floor(Date.now() / 1000) - 1800;

/** A counter growing at exactly `perSecond` since START, so rate() is that number. */
export const counter = (name: string, labels: Record<string, string>, perSecond: number): SeriesSpec => ({
  name,
  type: 'counter',
  labels,
  value: (t) => perSecond * (t - START),
});
/** A gauge holding one value. */
export const gauge = (name: string, labels: Record<string, string>, value: number): SeriesSpec => ({ name, type: 'gauge', labels, value: () => value });

export function integrationSeries(): SeriesSpec[] {
  const cpu = (namespace: string, pod: string, container: string, rate: number): SeriesSpec =>
    counter('test_cpu_seconds_total', { namespace, pod, container }, rate);
  return [
    cpu('team-a', 'web-1', 'app', 0.2),
    cpu('team-a', 'web-1', 'sidecar', 0.05),
    cpu('team-a', 'web-2', 'app', 0.45),
    cpu('team-a', 'web-2', 'sidecar', 0.05),
    cpu('team-a', 'web-3', 'app', 1.5),
    cpu('team-a', 'api-1', 'app', 0.75),
    cpu('team-a', 'dot.pod', 'app', 0.1),
    cpu('team-a', 'dotxpod', 'app', 9),
    cpu('team-b', 'web-1', 'app', 3),
    gauge('test_memory_bytes', { namespace: 'team-a', pod: 'web-1' }, 104857600),
    gauge('test_memory_bytes', { namespace: 'team-a', pod: 'web-2' }, 209715200),
    counter('test_requests_total', { namespace: 'team-a', pod: 'web-1', method: 'GET' }, 2),
    counter('test_requests_total', { namespace: 'team-a', pod: 'web-1', method: 'POST' }, 1),
    counter('test_requests_total', { namespace: 'team-a', pod: 'web-2', method: 'GET' }, 4),
    counter('test_requests_total', { namespace: 'team-b', pod: 'web-1', method: 'GET' }, 10),
    gauge('test_node_load', { node: 'node-1' }, 2.5),
    gauge('test_node_load', { node: 'node-2' }, 0.5),
    gauge('test_queue_depth', { namespace: 'team-a', deployment: 'web' }, 42),
    gauge('test_ratio_numerator', { namespace: 'team-a', pod: 'nan-1' }, 0),
    gauge('test_ratio_denominator', { namespace: 'team-a', pod: 'nan-1' }, 0),
    gauge('test_ratio_numerator', { namespace: 'team-a', pod: 'web-1' }, 1),
    gauge('test_ratio_denominator', { namespace: 'team-a', pod: 'web-1' }, 4),
  ];
}

/** The objects behind the series, plus web-4, which exists but has no data. */
export function addIntegrationObjects(kube: FakeKubeApiServer): void {
  kube.addNamespace('team-a');
  kube.addNamespace('team-b');
  for (const name of ['web-1', 'web-2', 'web-3', 'web-4']) kube.addPod('team-a', name, { app: 'web', tier: name === 'web-3' ? 'canary' : 'stable' });
  kube.addPod('team-a', 'api-1', { app: 'api' });
  kube.addPod('team-a', 'dot.pod', { app: 'dots' });
  kube.addPod('team-a', 'dotxpod', { app: 'decoy' });
  kube.addPod('team-a', 'nan-1', { app: 'nan' });
  kube.addPod('team-b', 'web-1', { app: 'web' });
  kube.addNode('node-1', { role: 'worker' });
  kube.addNode('node-2', { role: 'worker' });
  kube.addDeployment('team-a', 'web', { app: 'web' });
}
