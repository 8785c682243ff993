import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { createCertificateAuthority } from '/work/main/src/api/certificates.ts';
import { DEFAULT_CONFIG } from '/work/main/src/cli/serve-options.ts';
import { startServer } from '/work/main/src/server.ts';
import { startFakeKubeApiServer } from '/work/main/test/harness/fake-kube-apiserver.ts';

test('probe', async () => {
  const rh = await createCertificateAuthority('rh');
  const fp = await rh.issue({ commonName: 'front-proxy-client', usage: 'client' });
  const fake = await startFakeKubeApiServer();
  fake.setAuthenticationConfigMap({ 'requestheader-client-ca-file': rh.certPem, 'requestheader-allowed-names': '["front-proxy-client"]',
    'requestheader-username-headers': '["X-Remote-User"]', 'requestheader-group-headers': '["X-Remote-Group"]', 'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]' });
  fake.setAuthorizer(() => ({ allowed: false }));
  const s = await startServer({ config: DEFAULT_CONFIG, prometheusUrl: 'http://127.0.0.1:9', prometheusTimeoutMs: 1000, prometheusVerb: 'GET', prometheusHeaders: {}, queryCacheTtlMs: 0, queryCacheSize: 10, relistIntervalMs: 600000, objectSource: 'kubernetes', kubeconfig: fake.kubeconfigPath, bindAddress: '127.0.0.1', securePort: 0, insecureDisableAuth: false, authenticationSkipLookup: false, anonymousAuth: true, authorizationAlwaysAllowPaths: ['/healthz'], verbosity: 0 }, pino({ level: 'silent' }));
  for (const [label, agentOpts] of [['keepAlive', { keepAlive: true }], ['resume', { keepAlive: false }]] as const) {
    const agent = new https.Agent({ ...agentOpts, maxSockets: 1 });
    for (let i = 0; i < 4; i++) {
      const r = await new Promise<string>((resolve, reject) => {
        const req = https.request(`${s.url}/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/m${label}${i}`, { agent, rejectUnauthorized: false, cert: fp.certPem, key: fp.keyPem, headers: { 'X-Remote-User': `u${i}` } }, (res) => {
          let t = ''; res.on('data', (c) => (t += c)); res.on('end', () => resolve(`${res.statusCode} reused=${req.reusedSocket} resumed=${(res.socket as any).isSessionReused?.()} ${JSON.parse(t).message}`));
        });
        req.on('error', reject); req.end();
      });
      console.log(label, i, r);
    }
    agent.destroy();
  }
  await s.close(); await fake.stop();
});
