import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createCertificateAuthority } from '../../../src/api/certificates.ts';

/** Every certificate and key a kube-apiserver with aggregation needs, written as files. */
export interface ClusterPki {
  readonly dir: string;
  readonly caCert: string;
  readonly apiserverCert: string;
  readonly apiserverKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly frontProxyCaCert: string;
  readonly frontProxyClientCert: string;
  readonly frontProxyClientKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
  readonly adapterCert: string;
  readonly adapterKey: string;
  /** PEM of the CA that signed the adapter's serving certificate, for the APIService caBundle. */
  readonly adapterCaPem: string;
  /** A client certificate from a CA nobody trusts, for negative tests. */
  readonly untrustedClientCert: string;
  readonly untrustedClientKey: string;
}

export const ADAPTER_SERVICE_DNS = 'prometheus-metrics-adapter.prometheus-metrics-adapter.svc';
export const FRONT_PROXY_CLIENT_CN = 'front-proxy-client';

/** Generates a fresh PKI like kubeadm's (cluster CA, front-proxy CA, service-account keys) in `dir`. */
export async function generateClusterPki(dir: string): Promise<ClusterPki> {
  await mkdir(dir, { recursive: true });
  const write = async (name: string, pem: string, mode = 0o644): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, pem, { mode });
    return file;
  };
  const ca = await createCertificateAuthority('e2e-cluster-ca');
  const frontProxyCa = await createCertificateAuthority('e2e-front-proxy-ca');
  const servingCa = await createCertificateAuthority('e2e-adapter-serving-ca');
  const untrustedCa = await createCertificateAuthority('e2e-untrusted-ca');
  const apiserver = await ca.issue({
    commonName: 'kube-apiserver',
    hosts: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    ips: ['127.0.0.1', '10.0.0.1'],
    usage: 'server',
  });
  const admin = await ca.issue({ commonName: 'e2e-admin', organizations: ['system:masters'], usage: 'client' });
  const frontProxyClient = await frontProxyCa.issue({ commonName: FRONT_PROXY_CLIENT_CN, usage: 'client' });
  const adapter = await servingCa.issue({ commonName: ADAPTER_SERVICE_DNS, hosts: [ADAPTER_SERVICE_DNS, 'localhost'], ips: ['127.0.0.1', '::1'], usage: 'server' });
  const untrusted = await untrustedCa.issue({ commonName: FRONT_PROXY_CLIENT_CN, usage: 'client' });
  const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    dir,
    caCert: await write('ca.crt', ca.certPem),
    apiserverCert: await write('apiserver.crt', apiserver.certPem),
    apiserverKey: await write('apiserver.key', apiserver.keyPem, 0o600),
    adminCert: await write('admin.crt', admin.certPem),
    adminKey: await write('admin.key', admin.keyPem, 0o600),
    frontProxyCaCert: await write('front-proxy-ca.crt', frontProxyCa.certPem),
    frontProxyClientCert: await write('front-proxy-client.crt', frontProxyClient.certPem),
    frontProxyClientKey: await write('front-proxy-client.key', frontProxyClient.keyPem, 0o600),
    serviceAccountKey: await write('sa.key', sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600),
    serviceAccountPub: await write('sa.pub', sa.publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    adapterCert: await write('adapter.crt', adapter.certPem),
    adapterKey: await write('adapter.key', adapter.keyPem, 0o600),
    adapterCaPem: servingCa.certPem,
    untrustedClientCert: await write('untrusted-client.crt', untrusted.certPem),
    untrustedClientKey: await write('untrusted-client.key', untrusted.keyPem, 0o600),
  };
}
