/**
 * Resources every cluster has. They let a rule file be checked, and the demo run, without a
 * cluster; with a cluster, API discovery adds CRDs and overrides these.
 */
export interface ResourceInfo {
  readonly group: string;
  readonly version: string;
  /** Plural, lower case: the form the metrics API paths use. */
  readonly resource: string;
  readonly singular: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const core = (resource: string, singular: string, kind: string, namespaced: boolean): ResourceInfo => ({
  group: '',
  version: 'v1',
  resource,
  singular,
  kind,
  namespaced,
});
const grouped = (
  group: string,
  version: string,
  resource: string,
  singular: string,
  kind: string,
  namespaced = true,
): ResourceInfo => ({ group, version, resource, singular, kind, namespaced });

export const WELL_KNOWN_RESOURCES: readonly ResourceInfo[] = [
  core('pods', 'pod', 'Pod', true),
  core('services', 'service', 'Service', true),
  core('endpoints', 'endpoints', 'Endpoints', true),
  core('persistentvolumeclaims', 'persistentvolumeclaim', 'PersistentVolumeClaim', true),
  core('replicationcontrollers', 'replicationcontroller', 'ReplicationController', true),
  core('nodes', 'node', 'Node', false),
  core('namespaces', 'namespace', 'Namespace', false),
  core('persistentvolumes', 'persistentvolume', 'PersistentVolume', false),
  grouped('apps', 'v1', 'deployments', 'deployment', 'Deployment'),
  grouped('apps', 'v1', 'statefulsets', 'statefulset', 'StatefulSet'),
  grouped('apps', 'v1', 'daemonsets', 'daemonset', 'DaemonSet'),
  grouped('apps', 'v1', 'replicasets', 'replicaset', 'ReplicaSet'),
  grouped('batch', 'v1', 'jobs', 'job', 'Job'),
  grouped('batch', 'v1', 'cronjobs', 'cronjob', 'CronJob'),
  grouped('networking.k8s.io', 'v1', 'ingresses', 'ingress', 'Ingress'),
  grouped('autoscaling', 'v2', 'horizontalpodautoscalers', 'horizontalpodautoscaler', 'HorizontalPodAutoscaler'),
];

/** `deployments.apps` → {resource: deployments, group: apps}; split at the first dot like Kubernetes. */
export function parseGroupResource(text: string): { group: string; resource: string } {
  const dot = text.indexOf('.');
  return dot === -1 ? { group: '', resource: text } : { group: text.slice(dot + 1), resource: text.slice(0, dot) };
}

export function groupResourceString(info: { group: string; resource: string }): string {
  return info.group ? `${info.resource}.${info.group}` : info.resource;
}
