/** --prometheus-auth-config: a kubeconfig's user and CA authenticate the adapter to Prometheus. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority } from '../../src/api/certificates.ts';
import { inClusterCredentials, kubeconfigCredentials } from '../../src/prometheus/auth-options.ts';
import { PrometheusHttpClient } from '../../src/prometheus/http-client.ts';

test('a kubeconfig token and CA reach a FAKE Prometheus that records what it receives', async () => {
  const ca = await createCertificateAuthority('fake-prometheus-ca');
  const serving = await ca.issue({ commonName: 'prometheus', hosts: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
  const seen: { authorization?: string; path?: string }[] = [];
  const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
    seen.push({ authorization: req.headers.authorization, path: req.url });
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { pod: 'a' }, value: [1700000000, '2'] }] } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const dir = mkdtempSync(path.join(tmpdir(), 'pma-auth-'));
    const kubeconfig = path.join(dir, 'prometheus.kubeconfig');
    writeFileSync(kubeconfig, JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://ignored.invalid', 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
      users: [{ name: 'u', user: { token: 'secret-from-kubeconfig' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }));
    const credentials = kubeconfigCredentials(kubeconfig);
    const client = new PrometheusHttpClient({ url, timeoutMs: 2000, verb: 'GET', ...credentials });
    const result = await client.query('up', 1700000000);
    assert.deepEqual(result.samples.map((s) => [s.labels.pod, s.value]), [['a', 2]]);
    assert.equal(seen[0]?.authorization, 'Bearer secret-from-kubeconfig');
    // Without the kubeconfig's CA the self-signed chain is refused.
    const noCa = new PrometheusHttpClient({ url, timeoutMs: 2000, verb: 'GET', token: 'x' });
    await assert.rejects(noCa.query('up', 1700000000), /certificate/);

    writeFileSync(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: 'https://x.invalid' } }],
      users: [{ name: 'u', user: {} }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x',
    }));
    assert.throws(() => kubeconfigCredentials(kubeconfig), /has no token or client certificate/);
  } finally {
    server.close();
  }
});

test('--prometheus-auth-incluster uses the pod service account token and CA files', () => {
  assert.deepEqual(inClusterCredentials(), {
    tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
  });
});

test('instant queries ask for an uncompressed answer; series lists may be compressed (a FAKE records the headers)', async () => {
  const { createServer: createHttpServer } = await import('node:http');
  const seen: Record<string, string | undefined> = {};
  const server = createHttpServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    seen[path] = req.headers['accept-encoding'];
    res.setHeader('Content-Type', 'application/json');
    res.end(path.endsWith('/series') ? '{"status":"success","data":[]}' : '{"status":"success","data":{"resultType":"vector","result":[]}}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const client = new PrometheusHttpClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutMs: 2000, verb: 'GET' });
    await client.query('up', 1700000000);
    await client.series(['up'], 1700000000, 1700000600);
    assert.equal(seen['/api/v1/query'], 'identity');
    assert.match(String(seen['/api/v1/series']), /gzip/);
  } finally {
    server.close();
  }
});
