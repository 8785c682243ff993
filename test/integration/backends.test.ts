/**
 * Named backends of a native rule file (`backends:` + a rule's `backend:`), end to end: the adapter's real
 * wiring (startTestAdapter) and the FAKE Kubernetes API, with FAKE Prometheus-compatible servers that answer
 * every instant query with a fixed vector and record what they received. Assertions are made at the
 * receiving side: which headers, credentials and query parameters reached which backend.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority } from '../../src/api/certificates.ts';
import { parseRuleFile } from '../../src/config/load.ts';
import { PrometheusHttpClient } from '../../src/prometheus/http-client.ts';
import { ConfigError } from '../../src/errors.ts';
import { freeLoopbackPort } from '../../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { addIntegrationObjects } from '../harness/dataset.ts';

const V2 = '/apis/custom.metrics.k8s.io/v1beta2';

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly params: URLSearchParams;
}

interface FakePrometheus {
  readonly url: string;
  readonly received: Received[];
  stop(): Promise<void>;
}

/** A FAKE Prometheus: `/api/v1/query` answers the pods web-1..web-3 of team-a with `base + i`, whatever the query. */
async function startFakePrometheus(base: number): Promise<FakePrometheus> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const params = new URLSearchParams(url.search);
      // POST carries the parameters in the body; record them the same way.
      for (const [k, v] of new URLSearchParams(body)) params.append(k, v);
      received.push({ path: url.pathname, headers: req.headers, params });
      res.setHeader('Content-Type', 'application/json');
      if (url.pathname !== '/api/v1/query') {
        res.statusCode = 404;
        res.end(JSON.stringify({ status: 'error', errorType: 'not_found', error: `no ${url.pathname} here` }));
        return;
      }
      const now = Date.now() / 1000;
      const result = ['web-1', 'web-2', 'web-3'].map((pod, i) => ({ metric: { namespace: 'team-a', pod }, value: [now, String(base + i)] }));
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const ruleText = (a: FakePrometheus, b: FakePrometheus): string => `
backends:
  tenant-a:
    url: ${a.url}
    headers:
      X-Scope-OrgID: team-a
    basicAuth:
      username: alice
      passwordFile: secrets/password
  tenant-b:
    url: ${b.url}
    headers:
      X-Scope-OrgID: team-b
    bearerTokenFile: secrets/token
    queryParams:
      dedup: "true"
metrics:
  - name: a_value
    resource: pods
    backend: tenant-a
    query: sum by (<<.GroupBy>>) (a_value{<<.LabelMatchers>>})
  - name: b_value
    resource: pods
    backend: tenant-b
    query: sum by (<<.GroupBy>>) (b_value{<<.LabelMatchers>>})
  - name: default_value
    resource: pods
    query: sum by (<<.GroupBy>>) (default_value{<<.LabelMatchers>>})
`;

describe('named backends', () => {
  let kube: FakeKubeApiServer;
  let fakeA: FakePrometheus;
  let fakeB: FakePrometheus;
  let fakeDefault: FakePrometheus;
  let adapter: TestAdapter;
  let metricsUrl: string;

  before(async () => {
    [fakeA, fakeB, fakeDefault] = await Promise.all([startFakePrometheus(100), startFakePrometheus(200), startFakePrometheus(300)]);
    kube = await startFakeKubeApiServer();
    addIntegrationObjects(kube);
    const dir = mkdtempSync(path.join(tmpdir(), 'pma-backends-'));
    // Relative secret paths are read from the rule file's directory, not the working directory.
    const secrets = path.join(dir, 'secrets');
    mkdirSync(secrets);
    writeFileSync(path.join(secrets, 'password'), 's3cret\n');
    writeFileSync(path.join(secrets, 'token'), 'token-of-b\n');
    const rules = path.join(dir, 'rules.yaml');
    writeFileSync(rules, ruleText(fakeA, fakeB));
    const port = await freeLoopbackPort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    adapter = await startTestAdapter({
      config: rules,
      prometheusUrl: fakeDefault.url,
      kubeconfig: kube.kubeconfigPath,
      queryCacheTtlMs: 0,
      metricsBindAddress: `127.0.0.1:${port}`,
    });
  });
  after(async () => {
    await adapter?.close();
    await kube?.stop();
    await Promise.all([fakeA?.stop(), fakeB?.stop(), fakeDefault?.stop()]);
  });

  const values = async (metric: string): Promise<[string, string][]> => {
    const res = await adapter.get(`${V2}/namespaces/team-a/pods/*/${metric}?labelSelector=app%3Dweb`);
    assert.equal(res.status, 200, res.text);
    return res.json.items.map((i: { describedObject: { name: string }; value: string }) => [i.describedObject.name, i.value]);
  };

  test("each rule's values come from its own backend", async () => {
    assert.deepEqual(await values('a_value'), [['web-1', '100'], ['web-2', '101'], ['web-3', '102']]);
    assert.deepEqual(await values('b_value'), [['web-1', '200'], ['web-2', '201'], ['web-3', '202']]);
    assert.deepEqual(await values('default_value'), [['web-1', '300'], ['web-2', '301'], ['web-3', '302']]);
    const byName = await adapter.get(`${V2}/namespaces/team-a/pods/web-2/b_value`);
    assert.equal(byName.status, 200, byName.text);
    assert.equal(byName.json.items[0].value, '201');
    // No query leaked to another backend.
    const queries = (f: FakePrometheus): string[] => f.received.map((r) => r.params.get('query') ?? '');
    assert.ok(queries(fakeA).length > 0 && queries(fakeA).every((q) => q.includes('a_value{')), queries(fakeA).join('\n'));
    assert.ok(queries(fakeB).length > 0 && queries(fakeB).every((q) => q.includes('b_value{')), queries(fakeB).join('\n'));
    assert.ok(queries(fakeDefault).length > 0 && queries(fakeDefault).every((q) => q.includes('default_value{')), queries(fakeDefault).join('\n'));
  });

  test('each backend receives its own tenant header, credentials and query parameters', async () => {
    await values('a_value');
    await values('b_value');
    await values('default_value');
    for (const r of fakeA.received) {
      assert.equal(r.headers['x-scope-orgid'], 'team-a');
      assert.equal(r.headers.authorization, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
      assert.equal(r.params.get('dedup'), null);
    }
    for (const r of fakeB.received) {
      assert.equal(r.headers['x-scope-orgid'], 'team-b');
      assert.equal(r.headers.authorization, 'Bearer token-of-b');
      assert.deepEqual(r.params.getAll('dedup'), ['true']);
      assert.ok(r.params.get('query'), 'the adapter still sends its own parameters');
    }
    for (const r of fakeDefault.received) {
      assert.equal(r.headers['x-scope-orgid'], undefined);
      assert.equal(r.headers.authorization, undefined);
      assert.equal(r.params.get('dedup'), null);
    }
  });

  test("the self-metrics backend label is each backend's URL", async () => {
    await values('b_value');
    const text = await (await fetch(metricsUrl)).text();
    const backendOf = (metric: string): string | undefined =>
      new RegExp(`^prometheus_metrics_adapter_prometheus_queries_total\\{rule="[^"]*\\(${metric}\\)",backend="([^"]+)"`, 'm').exec(text)?.[1];
    assert.equal(backendOf('a_value'), fakeA.url);
    assert.equal(backendOf('b_value'), fakeB.url);
    assert.equal(backendOf('default_value'), fakeDefault.url);
  });
});

describe('backends: load errors', () => {
  const load = (text: string): string[] => {
    try {
      parseRuleFile('/rules/test.yaml', text);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return [...err.problems];
    }
    assert.fail('the file loaded');
  };

  test('an unknown backend name is an error with its line and rule', () => {
    const problems = load(`backends:
  tenant-a:
    url: http://127.0.0.1:1
metrics:
  - name: x
    resource: pods
    backend: tenant-c
    query: up
`);
    assert.deepEqual(problems, ['line 7: metrics[0] (x): backend: unknown backend "tenant-c"; the file\'s backends are tenant-a']);
    assert.deepEqual(load('metrics:\n  - name: x\n    resource: pods\n    backend: nope\n    query: up\n'), [
      'line 4: metrics[0] (x): backend: unknown backend "nope"; the file has no `backends:`',
    ]);
  });

  test('backend entries are checked with their place', () => {
    const problems = load(`backends:
  a:
    url: ftp://x
    insecureSkipVerify: true
  b:
    url: http://127.0.0.1:1
    bearerTokenFile: t
    basicAuth: { username: u, passwordFile: p }
    tls: { certFile: c }
    queryParams: { query: up }
metrics: []
`);
    assert.ok(problems.some((p) => /^line 3: backends\.a\.url: must match pattern/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /^line 2: backends\.a: unknown key "insecureSkipVerify"/.test(p)), problems.join('\n'));
    const semantic = load(`backends:
  b:
    url: http://127.0.0.1:1
    bearerTokenFile: t
    basicAuth: { username: u, passwordFile: p }
    tls: { certFile: c }
    queryParams: { query: up }
metrics: []
`);
    assert.deepEqual(semantic, [
      'line 5: backends.b.basicAuth: use either bearerTokenFile or basicAuth, not both (each sets the Authorization header)',
      'line 6: backends.b.tls: certFile and keyFile must be given together',
      'line 7: backends.b.queryParams.query: "query" is set by the adapter itself',
    ]);
    const ok = parseRuleFile('/rules/test.yaml', 'backends:\n  b:\n    url: http://h\n    bearerTokenFile: t\n    tls: { caFile: /etc/ca.pem, insecureSkipVerify: false }\nmetrics: []\n');
    assert.deepEqual(ok.backends, { b: { url: 'http://h', bearerTokenFile: '/rules/t', tls: { caFile: '/etc/ca.pem' } } });
  });
});

describe('backends: TLS', () => {
  test('a backend with its own CA is trusted; an unknown chain is refused unless insecureSkipVerify is true', async () => {
    const ca = await createCertificateAuthority('fake-backend-ca');
    const serving = await ca.issue({ commonName: 'prometheus', hosts: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
    const server = createHttpsServer({ key: serving.keyPem, cert: serving.certPem }, (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { pod: 'a' }, value: [1, '7'] }] } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'pma-backends-tls-'));
      writeFileSync(path.join(dir, 'ca.crt'), ca.certPem);
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const rules = parseRuleFile(
        path.join(dir, 'rules.yaml'),
        `backends:\n  ca: { url: "${url}", tls: { caFile: ca.crt } }\n  strict: { url: "${url}", tls: { insecureSkipVerify: false } }\n  skip: { url: "${url}", tls: { insecureSkipVerify: true } }\nmetrics: []\n`,
      );
      const client = (name: string): PrometheusHttpClient => {
        const tls = rules.backends![name]!.tls ?? {};
        return new PrometheusHttpClient({
          url,
          timeoutMs: 2000,
          verb: 'GET',
          ...(tls.caFile ? { caFile: tls.caFile } : {}),
          ...(tls.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
        });
      };
      assert.equal((await client('ca').query('up', 1)).samples[0]?.value, 7);
      await assert.rejects(client('strict').query('up', 1), /certificate/);
      assert.equal((await client('skip').query('up', 1)).samples[0]?.value, 7);
    } finally {
      server.close();
    }
  });
});
