import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { SecureContextOptions } from 'node:tls';
import { pino } from 'pino';
import { createCertificateAuthority, generateSelfSignedServingCert } from './certificates.ts';
import { ServingCertReloader, ServingTls } from './serving-tls.ts';

/** Records every context the server would be given. */
function recordingServer(fail?: () => boolean) {
  const contexts: SecureContextOptions[] = [];
  return {
    contexts,
    setSecureContext(options: SecureContextOptions) {
      if (fail?.()) throw new Error('rejected by the TLS library');
      contexts.push(options);
    },
  };
}

function capturingLog() {
  const lines: { level: number; msg: string; err?: string }[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) };
}

describe('ServingTls: one owner of the whole secure context', async () => {
  const [a, b] = await Promise.all([
    generateSelfSignedServingCert({ hosts: ['localhost'], ips: [] }),
    generateSelfSignedServingCert({ hosts: ['localhost'], ips: [] }),
  ]);
  const ca = await createCertificateAuthority('test-client-ca');

  it('each kind of change sends the complete context: certificate, key, client CAs and minimum version', () => {
    const tls = new ServingTls({ pair: a, clientCaPem: ca.certPem, minVersion: 'TLSv1.3', log: pino({ level: 'silent' }) });
    const server = recordingServer();
    tls.attach(server);
    tls.setServingPair(b);
    tls.setClientCas(undefined);
    tls.setClientCas(`${ca.certPem}\n`);
    assert.deepEqual(server.contexts, [
      { key: b.keyPem, cert: b.certPem, ca: ca.certPem, minVersion: 'TLSv1.3' },
      { key: b.keyPem, cert: b.certPem, minVersion: 'TLSv1.3' },
      { key: b.keyPem, cert: b.certPem, ca: `${ca.certPem}\n`, minVersion: 'TLSv1.3' },
    ]);
  });

  it('an unchanged CA bundle does not rebuild the context; one the TLS library rejects keeps the previous', () => {
    const { lines, log } = capturingLog();
    const tls = new ServingTls({ pair: a, clientCaPem: ca.certPem, log });
    let reject = false;
    const server = recordingServer(() => reject);
    tls.attach(server);
    tls.setClientCas(ca.certPem);
    assert.equal(server.contexts.length, 0);
    reject = true;
    tls.setClientCas('garbage');
    assert.equal(tls.clientCaPem, ca.certPem);
    assert.match(lines.at(-1)?.msg ?? '', /cannot use the new client CA bundle/);
    assert.throws(() => tls.setServingPair(b), /rejected/);
    assert.equal(tls.pair, a);
  });

  it('refuses to attach to something that is not a TLS server', () => {
    const tls = new ServingTls({ pair: a, log: pino({ level: 'silent' }) });
    assert.throws(() => tls.attach({}), /not a TLS server/);
  });
});

describe('ServingCertReloader', async () => {
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => generateSelfSignedServingCert({ hosts: ['localhost'], ips: [] })));

  it('applies a changed valid pair once, reports a mismatched pair once and keeps serving the last good one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'serving-tls-test-'));
    try {
      const certPath = path.join(dir, 'tls.crt');
      const keyPath = path.join(dir, 'tls.key');
      await writeFile(certPath, a!.certPem);
      await writeFile(keyPath, a!.keyPem);
      const { lines, log } = capturingLog();
      const tls = new ServingTls({ pair: a!, log });
      const server = recordingServer();
      tls.attach(server);
      // Not started: checks are driven by hand, as the poll timer would.
      const reloader = new ServingCertReloader({ certPath, keyPath, tls, log });

      await reloader.check();
      assert.equal(server.contexts.length, 0, 'unchanged files change nothing');

      await writeFile(certPath, b!.certPem);
      await reloader.check();
      await reloader.check();
      assert.equal(server.contexts.length, 0);
      const errors = lines.filter((l) => l.level >= 50);
      assert.equal(errors.length, 1, 'a bad pair is reported once, not on every poll');
      assert.match(errors[0]!.err ?? '', /does not match the certificate/);
      assert.equal(tls.pair, a);

      await writeFile(keyPath, b!.keyPem);
      await reloader.check();
      assert.equal(server.contexts.length, 1);
      assert.equal(server.contexts[0]!.cert, b!.certPem);
      assert.equal(tls.pair.certPem, b!.certPem);

      // Concurrent checks run one after the other and settle on the newest files.
      await writeFile(certPath, c!.certPem);
      await writeFile(keyPath, c!.keyPem);
      await Promise.all([reloader.check(), reloader.check(), reloader.check()]);
      assert.equal(server.contexts.length, 2);
      assert.equal(tls.pair.certPem, c!.certPem);
      reloader.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
