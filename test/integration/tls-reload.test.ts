/**
 * TLS material that changes while the adapter runs (src/api/serving-tls.ts and the guard's ConfigMap watch):
 * the serving certificate rotated on disk the way kubelet updates a mounted Secret, and the front-proxy CA
 * rotated in kube-system/extension-apiserver-authentication on the FAKE kube-apiserver. Both change one shared
 * TLS context, so each test also checks that the other half survived.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createCertificateAuthority, type CertificateAndKey, type CertificateAuthority } from '../../src/api/certificates.ts';
import { parseServeArgs } from '../../src/cli/serve-options.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { httpsGet } from '../harness/https-get.ts';
import { connectHttp2, http2Request } from '../harness/http2-client.ts';

const FRONT_PROXY_CN = 'front-proxy-client';
const METRIC_PATH = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/reload_metric';

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A directory laid out like a Secret volume: the visible files are symlinks through `..data`, and an update
 * writes a new timestamped directory and renames a fresh `..data` link over the old one (kubelet's AtomicWriter).
 */
class SecretVolume {
  readonly dir: string;
  #generation = 0;
  constructor(dir: string) {
    this.dir = dir;
  }
  get certFile(): string {
    return path.join(this.dir, 'tls.crt');
  }
  get keyFile(): string {
    return path.join(this.dir, 'tls.key');
  }
  async write(files: { 'tls.crt': string; 'tls.key': string }): Promise<void> {
    const version = `..2026_01_01_00_00_0${this.#generation++}.${process.pid}`;
    await mkdir(path.join(this.dir, version));
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(this.dir, version, name), content, { mode: 0o600 });
    await symlink(version, path.join(this.dir, '..data_tmp'));
    await rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (this.#generation === 1) {
      await symlink('..data/tls.crt', this.certFile);
      await symlink('..data/tls.key', this.keyFile);
    }
  }
  pair(p: CertificateAndKey): Promise<void> {
    return this.write({ 'tls.crt': p.certPem, 'tls.key': p.keyPem });
  }
}

/** The certificate a new TLS connection is served, and whether the handshake worked at all. */
function servedCertificate(url: string, ca: string, extra: ConnectionOptions = {}): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost', ...extra }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', (err) => resolve(`error: ${err.message}`));
  });
}

describe('TLS material changing at run time (adapter against the FAKE kube-apiserver)', () => {
  let fake: FakeKubeApiServer;
  let adapter: RunningServer;
  let dir: string;
  let volume: SecretVolume;
  let servingCa: CertificateAuthority;
  let caA: CertificateAuthority;
  let caB: CertificateAuthority;
  let serving: CertificateAndKey[];
  let proxyA: CertificateAndKey;
  let proxyB: CertificateAndKey;
  const logs: { level: number; msg: string; err?: string }[] = [];

  const authConfigMap = (ca: CertificateAuthority): Record<string, string> => ({
    'requestheader-client-ca-file': ca.certPem,
    'requestheader-allowed-names': JSON.stringify([FRONT_PROXY_CN]),
    'requestheader-username-headers': '["X-Remote-User"]',
    'requestheader-group-headers': '["X-Remote-Group"]',
    'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
  });
  const asProxy = (cert: CertificateAndKey, user: string) =>
    httpsGet(`${adapter.url}${METRIC_PATH}`, { ca: servingCa.certPem, servername: 'localhost', cert: cert.certPem, key: cert.keyPem, headers: { 'X-Remote-User': user } });

  before(async () => {
    [servingCa, caA, caB] = await Promise.all([
      createCertificateAuthority('test-serving-ca'),
      createCertificateAuthority('test-front-proxy-ca-a'),
      createCertificateAuthority('test-front-proxy-ca-b'),
    ]);
    serving = await Promise.all(
      [0, 1, 2].map(() => servingCa.issue({ commonName: 'localhost', hosts: ['localhost'], ips: ['127.0.0.1'], usage: 'server' })),
    );
    proxyA = await caA.issue({ commonName: FRONT_PROXY_CN, usage: 'client' });
    proxyB = await caB.issue({ commonName: FRONT_PROXY_CN, usage: 'client' });
    dir = await mkdtemp(path.join(tmpdir(), 'tls-reload-test-'));
    volume = new SecretVolume(path.join(dir, 'serving'));
    await mkdir(volume.dir);
    await volume.pair(serving[0]!);

    fake = await startFakeKubeApiServer();
    fake.setAuthenticationConfigMap(authConfigMap(caA));
    fake.setAuthorizer(() => ({ allowed: true }));
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    adapter = await startServer(
      parseServeArgs([
        '--prometheus-url=http://127.0.0.1:9',
        `--kubeconfig=${fake.kubeconfigPath}`,
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        `--tls-cert-file=${volume.certFile}`,
        `--tls-private-key-file=${volume.keyFile}`,
        // Every context swap must carry the minimum version along, or the server would fall back to TLS 1.2.
        '--tls-min-version=VersionTLS13',
      ]),
      log,
    );
  });

  after(async () => {
    await adapter?.close();
    await fake?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a Secret update (..data symlink swap): new connections get the new certificate, open connections keep theirs', async () => {
    assert.equal(await servedCertificate(adapter.url, servingCa.certPem), fingerprint(serving[0]!.certPem));
    // Connections opened before the rotation: one HTTP/2 session and one kept-alive HTTP/1.1 socket.
    const session = await connectHttp2(adapter.url, { ca: servingCa.certPem, servername: 'localhost', cert: proxyA.certPem, key: proxyA.keyPem });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaAgent = () =>
      new Promise<{ status: number; fingerprint: string }>((resolve, reject) => {
        const req = request(`${adapter.url}/healthz`, { agent, ca: servingCa.certPem, servername: 'localhost' }, (res) => {
          // Read before the end: then the socket goes back to the agent and the response forgets it.
          const served = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint: served }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      assert.deepEqual(await viaAgent(), { status: 200, fingerprint: fingerprint(serving[0]!.certPem) });

      await volume.pair(serving[1]!);
      await eventually('new connections see the new certificate', () => servedCertificate(adapter.url, servingCa.certPem), (f) => f === fingerprint(serving[1]!.certPem), 10_000);

      const old = await http2Request(session, METRIC_PATH, { 'x-remote-user': 'rotation-h2' });
      assert.equal(old.status, 404, old.text);
      assert.equal((session.socket as TLSSocket).getPeerCertificate().fingerprint256, fingerprint(serving[0]!.certPem));
      assert.deepEqual(await viaAgent(), { status: 200, fingerprint: fingerprint(serving[0]!.certPem) }, 'the kept-alive socket still has the old certificate');

      // The rebuilt context kept the client CAs and the minimum TLS version.
      const proxied = await asProxy(proxyA, 'after-rotation');
      assert.equal(proxied.status, 404, proxied.text);
      assert.match(await servedCertificate(adapter.url, servingCa.certPem, { maxVersion: 'TLSv1.2' }), /^error: /);
      assert.ok(logs.some((l) => l.msg.startsWith('serving certificate changed on disk')));
    } finally {
      session.close();
      agent.destroy();
    }
  });

  it('an invalid new pair is refused with a clear error and the last good certificate keeps serving', async () => {
    const good = fingerprint(serving[1]!.certPem);
    const errorsBefore = logs.filter((l) => l.level >= 50).length;
    const nextError = async (): Promise<string> => {
      const found = await eventually('an error log', async () => logs.filter((l) => l.level >= 50), (errs) => errs.length > errorsBefore, 10_000);
      return `${found.at(-1)!.msg}: ${found.at(-1)!.err}`;
    };

    await volume.write({ 'tls.crt': serving[2]!.certPem, 'tls.key': serving[1]!.keyPem });
    assert.match(await nextError(), /cannot load the changed serving certificate; still serving the previous one: serving key file ".*tls\.key" does not match the certificate/);
    assert.equal(await servedCertificate(adapter.url, servingCa.certPem), good);

    const errorsNow = logs.filter((l) => l.level >= 50).length;
    await volume.write({ 'tls.crt': 'not a certificate\n', 'tls.key': serving[2]!.keyPem });
    await eventually('a second error log', async () => logs.filter((l) => l.level >= 50).length, (n) => n > errorsNow, 10_000);
    assert.match(logs.filter((l) => l.level >= 50).at(-1)!.err ?? '', /holds no valid PEM certificate/);
    assert.equal(await servedCertificate(adapter.url, servingCa.certPem), good);

    // Once the files are consistent again, they are served.
    await volume.pair(serving[2]!);
    await eventually('the repaired pair is served', () => servedCertificate(adapter.url, servingCa.certPem), (f) => f === fingerprint(serving[2]!.certPem), 10_000);
  });

  it('a new front-proxy CA in the ConfigMap is followed by watch: within 2 s its certificates work and the old CA\'s get 401', async () => {
    assert.equal((await asProxy(proxyA, 'before-ca-change')).status, 404);
    assert.equal((await asProxy(proxyB, 'before-ca-change')).status, 401);
    const openSession = await connectHttp2(adapter.url, { ca: servingCa.certPem, servername: 'localhost', cert: proxyA.certPem, key: proxyA.keyPem });
    try {
      assert.equal((await http2Request(openSession, METRIC_PATH, { 'x-remote-user': 'old-session' })).status, 404);
      const watch = fake.requests.find((r) => r.verb === 'watch' && r.path === '/api/v1/namespaces/kube-system/configmaps');
      assert.equal(watch?.query['fieldSelector'], 'metadata.name=extension-apiserver-authentication');

      const changed = Date.now();
      fake.setAuthenticationConfigMap(authConfigMap(caB));
      await eventually(
        'the new CA is trusted and the old one is not',
        async () => [(await asProxy(proxyB, 'after-ca-change')).status, (await asProxy(proxyA, 'after-ca-change')).status],
        (s) => s[0] === 404 && s[1] === 401,
        2_000,
      );
      assert.ok(Date.now() - changed <= 2_500);
      // A session opened under the old CA cannot keep using it either: each request is checked against the current CAs.
      assert.equal((await http2Request(openSession, METRIC_PATH, { 'x-remote-user': 'old-session' })).status, 401);
    } finally {
      openSession.close();
    }
    // The CA reload rebuilt the context with the certificate from the last rotation, not the start-up one.
    assert.equal(await servedCertificate(adapter.url, servingCa.certPem), fingerprint(serving[2]!.certPem));
  });
});

describe('--cert-dir files are followed too', () => {
  it('replacing apiserver.crt/.key in --cert-dir serves the new pair on new connections', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cert-dir-reload-'));
    const ca = await createCertificateAuthority('test-cert-dir-ca');
    const [first, second] = await Promise.all(
      [0, 1].map(() => ca.issue({ commonName: 'localhost', hosts: ['localhost'], ips: ['127.0.0.1'], usage: 'server' })),
    );
    await writeFile(path.join(dir, 'apiserver.crt'), first!.certPem);
    await writeFile(path.join(dir, 'apiserver.key'), first!.keyPem, { mode: 0o600 });
    const server = await startServer(
      parseServeArgs(['--prometheus-url=http://127.0.0.1:9', '--object-source=prometheus', '--insecure-disable-auth', '--bind-address=127.0.0.1', '--secure-port=0', `--cert-dir=${dir}`]),
      pino({ level: 'silent' }),
    );
    try {
      assert.equal(await servedCertificate(server.url, ca.certPem), fingerprint(first!.certPem));
      // Written next to the old files and renamed over them, so no reader ever sees half a file.
      for (const [name, content] of [['apiserver.key', second!.keyPem], ['apiserver.crt', second!.certPem]] as const) {
        await writeFile(path.join(dir, `${name}.new`), content, { mode: 0o600 });
        await rename(path.join(dir, `${name}.new`), path.join(dir, name));
      }
      await eventually('the new pair is served', () => servedCertificate(server.url, ca.certPem), (f) => f === fingerprint(second!.certPem), 10_000);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
