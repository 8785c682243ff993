import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeConfigOptions {
  /** --kubeconfig (also spelled --kube-config, --lister-kubeconfig). */
  readonly kubeconfig?: string;
  /** --master-url: overrides the API server address of the kubeconfig or in-cluster config. */
  readonly masterUrl?: string;
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Kubeconfig from a file when given, else the pod's service account, like every in-cluster controller. */
export function loadKubeConfig(options: KubeConfigOptions): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfig) {
    if (!existsSync(options.kubeconfig)) throw new Error(`kubeconfig ${options.kubeconfig} does not exist`);
    kc.loadFromFile(options.kubeconfig);
  } else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
  } else {
    throw new Error(
      'no Kubernetes API to talk to: pass --kubeconfig=<file>, run inside a cluster, or use --object-source=prometheus to run without one',
    );
  }
  if (options.masterUrl) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('--master-url needs a kubeconfig with a current cluster');
    kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: options.masterUrl! } : c));
  }
  return kc;
}
