import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import {
  type CertificateAndKey,
  type CertificateAuthority,
  createCertificateAuthority,
  generateSelfSignedServingCert,
  loadOrCreateServingCert,
} from './certificates.ts';

const execFileAsync = promisify(execFile);
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

type Listening = { port: number; close(): Promise<void> };

async function listen(server: https.Server | tls.Server): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function httpsGet(port: number, opts: { ca: string; servername?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        ca: [opts.ca],
        // Node derives SNI and the identity check from `servername`; without it the IP is checked against IP SANs.
        ...(opts.servername === undefined ? {} : { servername: opts.servername }),
        agent: false,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve(body));
      },
    );
    request.on('error', reject);
  });
}

type PeerView = { authorized: boolean; authorizationError?: string; cn?: unknown; o?: unknown; eku: string[] };

/** A TLS server that asks for (but does not require) a client cert, as the aggregated server must. */
async function clientCertServer(caPem: string, serving: CertificateAndKey): Promise<Listening & { seen: PeerView[] }> {
  const seen: PeerView[] = [];
  const server = tls.createServer(
    { cert: serving.certPem, key: serving.keyPem, requestCert: true, rejectUnauthorized: false, ca: [caPem] },
    (socket) => {
      const peer = socket.getPeerCertificate();
      seen.push({
        authorized: socket.authorized,
        ...(socket.authorizationError === undefined ? {} : { authorizationError: String(socket.authorizationError) }),
        cn: peer.subject?.CN,
        o: peer.subject?.O,
        eku: peer.ext_key_usage ?? [],
      });
      socket.end('bye');
    },
  );
  return { ...(await listen(server)), seen };
}

async function connectWithClientCert(port: number, caPem: string, client: CertificateAndKey): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: [caPem],
      cert: client.certPem,
      key: client.keyPem,
    });
    socket.on('error', reject);
    socket.on('data', () => undefined);
    socket.on('end', () => resolve());
  });
}

async function which(command: string, versionArgs: string[]): Promise<boolean> {
  try {
    await execFileAsync(command, versionArgs);
    return true;
  } catch {
    return false;
  }
}

describe('generateSelfSignedServingCert', () => {
  let pair: CertificateAndKey;
  let other: CertificateAndKey;
  let server: Listening;

  before(async () => {
    pair = await generateSelfSignedServingCert({ hosts: ['localhost'], ips: ['127.0.0.1', '::1'] });
    other = await generateSelfSignedServingCert({ hosts: ['localhost'], ips: ['127.0.0.1'] });
    server = await listen(https.createServer({ cert: pair.certPem, key: pair.keyPem }, (_req, res) => res.end('ok')));
  });
  after(async () => {
    await server.close();
  });

  it('is reachable by a client trusting only that certificate, by host name', async () => {
    assert.equal(await httpsGet(server.port, { ca: pair.certPem, servername: 'localhost' }), 'ok');
  });

  it('is reachable by a client trusting only that certificate, by IP address', async () => {
    assert.equal(await httpsGet(server.port, { ca: pair.certPem }), 'ok');
  });

  it('is rejected by a client that trusts a different certificate', async () => {
    await assert.rejects(httpsGet(server.port, { ca: other.certPem, servername: 'localhost' }), (error: unknown) => {
      assert.match(String((error as NodeJS.ErrnoException).code), /SELF_SIGNED|UNABLE_TO|CERT/);
      return true;
    });
  });

  it('is rejected for a name it does not carry', async () => {
    await assert.rejects(httpsGet(server.port, { ca: pair.certPem, servername: 'example.com' }), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('is an ECDSA P-256 / SHA-256 leaf with the requested SANs and serverAuth only', () => {
    const cert = new X509Certificate(pair.certPem);
    assert.equal(cert.signatureAlgorithm, 'ecdsa-with-SHA256');
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(cert.ca, false);
    assert.equal(cert.subject, 'CN=localhost');
    // checkIssued(cert) would be false: OpenSSL's issuer check wants keyCertSign, which a pinned leaf need not have.
    assert.equal(cert.issuer, cert.subject);
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH_OID]);
    assert.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkIP('::1'), '::1');
    const lifetimeDays = (cert.validToDate.getTime() - Date.now()) / 86_400_000;
    assert.ok(lifetimeDays > 364 && lifetimeDays <= 365, String(lifetimeDays));
    assert.ok(cert.validFromDate.getTime() < Date.now() - 30 * 60_000, 'backdated for clock skew');
  });

  it('honours validDays and refuses an empty identity', async () => {
    const short = await generateSelfSignedServingCert({ hosts: [], ips: ['10.0.0.1'], validDays: 2 });
    const cert = new X509Certificate(short.certPem);
    assert.equal(cert.subject, 'CN=10.0.0.1');
    assert.ok(cert.validToDate.getTime() - Date.now() <= 2 * 86_400_000);
    await assert.rejects(generateSelfSignedServingCert({ hosts: [], ips: [] }), /at least one host name or IP/);
    await assert.rejects(generateSelfSignedServingCert({ hosts: ['a'], ips: [], validDays: 0 }), RangeError);
  });

  it('has the extensions Go and OpenSSL need (checked with openssl when installed)', async (t) => {
    if (!(await which('openssl', ['version']))) {
      t.skip('openssl not installed');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'pma-cert-'));
    try {
      const file = join(dir, 'c.crt');
      await writeFile(file, pair.certPem);
      const { stdout } = await execFileAsync('openssl', ['x509', '-in', file, '-noout', '-text']);
      assert.match(stdout, /Signature Algorithm: ecdsa-with-SHA256/);
      assert.doesNotMatch(stdout, /sha1/i);
      assert.match(stdout, /Basic Constraints: critical\s+CA:FALSE/);
      assert.match(stdout, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
      assert.match(stdout, /Extended Key Usage:\s*\n\s+TLS Web Server Authentication\n/);
      assert.match(stdout, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
      const verify = await execFileAsync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', file, file]);
      assert.match(verify.stdout, /: OK/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is accepted by curl --cacert (when installed)', async (t) => {
    if (!(await which('curl', ['--version']))) {
      t.skip('curl not installed');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'pma-cert-'));
    try {
      const file = join(dir, 'c.crt');
      await writeFile(file, pair.certPem);
      for (const url of [`https://localhost:${server.port}/`, `https://127.0.0.1:${server.port}/`]) {
        const { stdout } = await execFileAsync('curl', ['-sS', '--noproxy', '*', '--cacert', file, url]);
        assert.equal(stdout, 'ok', url);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('createCertificateAuthority', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let serving: CertificateAndKey;

  before(async () => {
    [ca, otherCa] = await Promise.all([createCertificateAuthority('test-ca'), createCertificateAuthority('other-ca')]);
    serving = await ca.issue({
      commonName: 'adapter',
      hosts: ['localhost', 'prometheus-metrics-adapter.monitoring.svc'],
      ips: ['127.0.0.1'],
      usage: 'server',
    });
  });

  it('is a CA certificate signed with SHA-256', () => {
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=test-ca');
    assert.equal(cert.signatureAlgorithm, 'ecdsa-with-SHA256');
    assert.ok(cert.verify(cert.publicKey));
  });

  it('issues server certificates that verify against the CA', async () => {
    const caCert = new X509Certificate(ca.certPem);
    const leaf = new X509Certificate(serving.certPem);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.signatureAlgorithm, 'ecdsa-with-SHA256');
    assert.equal(leaf.issuer, 'CN=test-ca');
    assert.ok(leaf.checkIssued(caCert));
    assert.ok(leaf.verify(caCert.publicKey));
    assert.ok(!leaf.verify(new X509Certificate(otherCa.certPem).publicKey));

    const server = await listen(
      https.createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) => res.end('served')),
    );
    try {
      assert.equal(
        await httpsGet(server.port, { ca: ca.certPem, servername: 'prometheus-metrics-adapter.monitoring.svc' }),
        'served',
      );
      assert.equal(await httpsGet(server.port, { ca: ca.certPem }), 'served');
      await assert.rejects(httpsGet(server.port, { ca: otherCa.certPem, servername: 'localhost' }));
    } finally {
      await server.close();
    }
  });

  it('issues client certificates that a requestCert server authorizes, and only for its own CA', async () => {
    const server = await clientCertServer(ca.certPem, serving);
    try {
      const frontProxy = await ca.issue({
        commonName: 'front-proxy-client',
        organizations: ['system:masters', 'team, "quoted"'],
        usage: 'client',
      });
      await connectWithClientCert(server.port, ca.certPem, frontProxy);
      const stranger = await otherCa.issue({ commonName: 'front-proxy-client', usage: 'client' });
      await connectWithClientCert(server.port, ca.certPem, stranger);

      const [trusted, untrusted] = server.seen;
      assert.ok(trusted && untrusted);
      assert.equal(trusted.authorized, true, trusted.authorizationError);
      assert.equal(trusted.cn, 'front-proxy-client');
      assert.deepEqual(trusted.o, ['system:masters', 'team, "quoted"']);
      assert.ok(trusted.eku.includes(CLIENT_AUTH_OID));
      assert.ok(!trusted.eku.includes(SERVER_AUTH_OID));
      assert.equal(untrusted.authorized, false);
      assert.equal(untrusted.cn, 'front-proxy-client');
      assert.ok(untrusted.authorizationError);
    } finally {
      await server.close();
    }
  });

  it('does not authorize a server-only certificate presented as a client certificate', async () => {
    const server = await clientCertServer(ca.certPem, serving);
    try {
      const serverOnly = await ca.issue({ commonName: 'not-a-client', usage: 'server' });
      await connectWithClientCert(server.port, ca.certPem, serverOnly);
      assert.equal(server.seen[0]?.authorized, false);
      assert.equal(server.seen[0]?.authorizationError, 'INVALID_PURPOSE');
    } finally {
      await server.close();
    }
  });

  it("issues 'both' certificates usable as server and client", async () => {
    const both = await ca.issue({ commonName: 'dual', hosts: ['localhost'], usage: 'both', validDays: 1 });
    assert.deepEqual(new X509Certificate(both.certPem).keyUsage?.toSorted(), [SERVER_AUTH_OID, CLIENT_AUTH_OID]);
    const server = await clientCertServer(ca.certPem, both);
    try {
      await connectWithClientCert(server.port, ca.certPem, both);
      assert.equal(server.seen[0]?.authorized, true, server.seen[0]?.authorizationError);
    } finally {
      await server.close();
    }
  });
});

describe('loadOrCreateServingCert', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pma-serving-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates into certDir once, with a private key file, and reuses the files afterwards', async () => {
    const certDir = join(dir, 'nested', 'certs');
    const messages: string[] = [];
    const first = await loadOrCreateServingCert({ certDir, log: (m) => messages.push(m) });
    assert.equal(first.generated, true);
    assert.equal(first.certPath, join(certDir, 'apiserver.crt'));
    assert.equal(first.keyPath, join(certDir, 'apiserver.key'));
    assert.equal((await stat(join(certDir, 'apiserver.key'))).mode & 0o777, 0o600);
    assert.match(messages[0] ?? '', /generated self-signed serving certificate/);
    const cert = new X509Certificate(first.certPem);
    assert.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');

    const second = await loadOrCreateServingCert({ certDir });
    assert.equal(second.generated, false);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
  });

  it('uses the requested hosts and IPs when generating', async () => {
    const result = await loadOrCreateServingCert({ hosts: ['adapter.monitoring.svc'], ips: ['10.96.0.10'] });
    assert.equal(result.generated, true);
    assert.equal(result.certPath, undefined);
    assert.equal(new X509Certificate(result.certPem).subjectAltName, 'DNS:adapter.monitoring.svc, IP Address:10.96.0.10');
  });

  it('reads an explicit certificate and key pair', async () => {
    const pair = await generateSelfSignedServingCert({ hosts: ['explicit'], ips: [] });
    const certFile = join(dir, 'explicit.crt');
    const keyFile = join(dir, 'explicit.key');
    await writeFile(certFile, pair.certPem);
    await writeFile(keyFile, pair.keyPem);
    const result = await loadOrCreateServingCert({ certFile, keyFile, certDir: join(dir, 'ignored') });
    assert.deepEqual(result, { ...pair, certPath: certFile, keyPath: keyFile, generated: false });
    await assert.rejects(stat(join(dir, 'ignored')), { code: 'ENOENT' });
  });

  it('names both files when the key does not match the certificate', async () => {
    const a = await generateSelfSignedServingCert({ hosts: ['a'], ips: [] });
    const b = await generateSelfSignedServingCert({ hosts: ['b'], ips: [] });
    const certFile = join(dir, 'a.crt');
    const keyFile = join(dir, 'b.key');
    await writeFile(certFile, a.certPem);
    await writeFile(keyFile, b.keyPem);
    await assert.rejects(loadOrCreateServingCert({ certFile, keyFile }), (error: Error) => {
      assert.ok(error.message.includes(certFile), error.message);
      assert.ok(error.message.includes(keyFile), error.message);
      assert.match(error.message, /does not match/);
      return true;
    });
  });

  it('names the file that is missing, unreadable or not PEM', async () => {
    const pair = await generateSelfSignedServingCert({ hosts: ['x'], ips: [] });
    const certFile = join(dir, 'x.crt');
    const keyFile = join(dir, 'x.key');
    const garbage = join(dir, 'garbage.pem');
    await writeFile(certFile, pair.certPem);
    await writeFile(keyFile, pair.keyPem);
    await writeFile(garbage, 'not a pem\n');
    const missing = join(dir, 'missing.key');

    await assert.rejects(loadOrCreateServingCert({ certFile, keyFile: missing }), (e: Error) =>
      e.message.includes(missing),
    );
    await assert.rejects(loadOrCreateServingCert({ certFile: garbage, keyFile }), (e: Error) =>
      e.message.includes(garbage),
    );
    await assert.rejects(loadOrCreateServingCert({ certFile, keyFile: garbage }), (e: Error) =>
      e.message.includes(garbage),
    );
  });

  it('refuses a lone certificate or key, naming the one given', async () => {
    await assert.rejects(loadOrCreateServingCert({ certFile: '/etc/adapter/tls.crt' }), /"\/etc\/adapter\/tls\.crt"/);
    await assert.rejects(loadOrCreateServingCert({ keyFile: '/etc/adapter/tls.key' }), /"\/etc\/adapter\/tls\.key"/);
  });

  it('refuses a certDir holding only one half of the pair', async () => {
    const certDir = join(dir, 'half');
    await loadOrCreateServingCert({ certDir });
    await rm(join(certDir, 'apiserver.key'));
    await assert.rejects(loadOrCreateServingCert({ certDir }), /apiserver\.crt.*apiserver\.key.*pair/);
  });
});
