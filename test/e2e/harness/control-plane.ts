import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { freeLoopbackPort } from '../../../src/demo/prometheus-process.ts';
import type { ClusterPki } from './pki.ts';

const REPO = new URL('../../../', import.meta.url).pathname;

/** Builds (or reuses) the kubecp multi-call binary: etcd, kube-apiserver, kube-controller-manager, kubectl. */
export function buildKubecp(): string {
  // npm test builds it before any test starts and passes the path on.
  if (process.env.KUBECP && existsSync(process.env.KUBECP)) return process.env.KUBECP;
  const started = Date.now();
  const r = spawnSync('bash', [path.join(REPO, 'scripts/build-kubecp.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60 * 60_000 });
  if (r.status !== 0) throw new Error(`scripts/build-kubecp.sh failed (exit ${r.status})`);
  const lines = r.stdout.trim().split('\n');
  for (const l of lines.slice(0, -1)) process.stderr.write(`[kubecp] ${l}\n`);
  process.stderr.write(`[kubecp] ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return lines.at(-1)!;
}

export interface ControlPlaneOptions {
  readonly kubecp: string;
  readonly dir: string;
  readonly pki: ClusterPki;
  /** HPA controller sync period, seconds. */
  readonly hpaSyncSeconds?: number;
}

export interface ControlPlane {
  readonly url: string;
  readonly adminKubeconfig: string;
  kubectl(args: readonly string[], input?: string): { status: number; stdout: string; stderr: string };
  /** A kubeconfig that authenticates with a bearer token (a ServiceAccount's, say). */
  writeTokenKubeconfig(name: string, token: string): Promise<string>;
  startControllerManager(): Promise<void>;
  logTail(component: 'etcd' | 'kube-apiserver' | 'kube-controller-manager', lines?: number): string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function launch(kubecp: string, component: string, args: string[], logFile: string): ChildProcess {
  const out = createWriteStream(logFile);
  const child = spawn(kubecp, [component, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, diagnostics: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} was not ready after ${timeoutMs} ms:\n${diagnostics()}`);
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * A real control plane on loopback: etcd, kube-apiserver with aggregation (front-proxy client
 * certificate, request-header flags) and RBAC, and on demand kube-controller-manager with the HPA,
 * deployment and replicaset controllers.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { kubecp, dir, pki } = options;
  await mkdir(dir, { recursive: true });
  const logs = {
    etcd: path.join(dir, 'etcd.log'),
    'kube-apiserver': path.join(dir, 'kube-apiserver.log'),
    'kube-controller-manager': path.join(dir, 'kube-controller-manager.log'),
  };
  const procs: ChildProcess[] = [];

  const etcdClient = await freeLoopbackPort();
  const etcdPeer = await freeLoopbackPort();
  procs.push(
    launch(kubecp, 'etcd', [
      '--name=default',
      `--data-dir=${path.join(dir, 'etcd-data')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync=true',
    ], logs.etcd),
  );
  await waitFor('etcd', async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok, 60_000, () => tail(logs.etcd, 30));

  const apiPort = await freeLoopbackPort();
  const url = `https://127.0.0.1:${apiPort}`;
  procs.push(
    launch(kubecp, 'kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--advertise-address=127.0.0.1',
      '--endpoint-reconciler-type=none',
      `--tls-cert-file=${pki.apiserverCert}`,
      `--tls-private-key-file=${pki.apiserverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      `--requestheader-client-ca-file=${pki.frontProxyCaCert}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${pki.frontProxyClientCert}`,
      `--proxy-client-key-file=${pki.frontProxyClientKey}`,
    ], logs['kube-apiserver']),
  );

  const writeKubeconfig = async (name: string, user: Record<string, string>): Promise<string> => {
    const file = path.join(dir, `${name}.kubeconfig`);
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'e2e', cluster: { server: url, 'certificate-authority': pki.caCert } }],
        users: [{ name, user }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: name } }],
        'current-context': 'e2e',
      }),
    );
    return file;
  };
  const adminKubeconfig = await writeKubeconfig('admin', { 'client-certificate': pki.adminCert, 'client-key': pki.adminKey });
  const ca = readFileSync(pki.caCert);
  const cert = readFileSync(pki.adminCert);
  const key = readFileSync(pki.adminKey);
  const readyz = (): Promise<boolean> =>
    new Promise((resolve) => {
      const req = request(`${url}/readyz`, { ca, cert, key, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.end();
    });
  await waitFor('kube-apiserver', readyz, 120_000, () => tail(logs['kube-apiserver'], 40));

  const kubectl: ControlPlane['kubectl'] = (args, input) => {
    const r = spawnSync(kubecp, ['kubectl', `--kubeconfig=${adminKubeconfig}`, ...args], { encoding: 'utf8', input, timeout: 60_000 });
    return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };

  return {
    url,
    adminKubeconfig,
    kubectl,
    writeTokenKubeconfig: (name, token) => writeKubeconfig(name, { token }),
    async startControllerManager() {
      procs.push(
        launch(kubecp, 'kube-controller-manager', [
          `--kubeconfig=${adminKubeconfig}`,
          `--authentication-kubeconfig=${adminKubeconfig}`,
          `--authorization-kubeconfig=${adminKubeconfig}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${await freeLoopbackPort()}`,
          '--controllers=horizontal-pod-autoscaler-controller,deployment-controller,replicaset-controller',
          // The HPA calls the metrics APIs as its own ServiceAccount, so RBAC and the adapter's
          // delegated authorization see the identity they see in a real cluster.
          '--use-service-account-credentials=true',
          `--root-ca-file=${pki.caCert}`,
          `--horizontal-pod-autoscaler-sync-period=${options.hpaSyncSeconds ?? 2}s`,
          '--horizontal-pod-autoscaler-downscale-stabilization=0s',
        ], logs['kube-controller-manager']),
      );
    },
    logTail: (component, lines = 40) => tail(logs[component], lines),
    async stop() {
      for (const p of procs.reverse()) {
        if (p.exitCode !== null || p.signalCode !== null) continue;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      }
    },
  };
}
