import { KubeConfig } from '@kubernetes/client-node';
import type { PrometheusClientOptions } from './http-client.ts';

type Credentials = Pick<PrometheusClientOptions, 'token' | 'tokenFile' | 'caFile' | 'caPem' | 'clientCertFile' | 'clientKeyFile' | 'clientCertPem' | 'clientKeyPem'>;

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * prometheus-adapter's --prometheus-auth-incluster: the pod's own service account token (re-read
 * as it rotates) and the cluster CA, for a Prometheus behind kube-rbac-proxy or similar.
 */
export function inClusterCredentials(): Credentials {
  return { tokenFile: `${SERVICE_ACCOUNT_DIR}/token`, caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt` };
}

/**
 * prometheus-adapter's --prometheus-auth-config: the current user and cluster CA of a kubeconfig
 * (its server address is ignored; --prometheus-url says where Prometheus is).
 */
export function kubeconfigCredentials(file: string): Credentials {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new Error(`cannot read --prometheus-auth-config ${file}: ${(err as Error).message}`);
  }
  const user = kc.getCurrentUser();
  const cluster = kc.getCurrentCluster();
  if (!user) throw new Error(`--prometheus-auth-config ${file} has no current user`);
  const decode = (data: string | undefined): string | undefined => (data ? Buffer.from(data, 'base64').toString('utf8') : undefined);
  const out: Record<string, string> = {};
  if (user.token) out.token = user.token;
  else if ((user as { tokenFile?: string }).tokenFile) out.tokenFile = (user as { tokenFile?: string }).tokenFile!;
  if (user.certFile) out.clientCertFile = user.certFile;
  else if (user.certData) out.clientCertPem = decode(user.certData)!;
  if (user.keyFile) out.clientKeyFile = user.keyFile;
  else if (user.keyData) out.clientKeyPem = decode(user.keyData)!;
  if (cluster?.caFile) out.caFile = cluster.caFile;
  else if (cluster?.caData) out.caPem = decode(cluster.caData)!;
  if (!out.token && !out.tokenFile && !out.clientCertFile && !out.clientCertPem) {
    throw new Error(`--prometheus-auth-config ${file}: the current user has no token or client certificate (exec and auth-provider plugins are not supported)`);
  }
  return out as Credentials;
}
