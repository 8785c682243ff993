/**
 * Delegated authentication and authorization of the real adapter (src/server.ts startServer with auth on),
 * against the FAKE kube-apiserver from test/harness: the fake serves the extension-apiserver-authentication
 * ConfigMap, TokenReview and SubjectAccessReview, and records every review so the tests can assert exactly what
 * the adapter asked. Certificates come from the product's own PKI code (src/api/certificates.ts).
 *
 * No Prometheus is needed: a read of a metric that no rule defines answers 404 only after authentication and
 * authorization passed, and discovery needs no Prometheus at all.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { httpsGet } from '../harness/https-get.ts';
import { connectHttp2, http2Get, http2Request } from '../harness/http2-client.ts';
import { connect as tlsConnect } from 'node:tls';
import { connect as http2Connect, type Settings } from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createCertificateAuthority, type CertificateAndKey, type CertificateAuthority } from '../../src/api/certificates.ts';
import { parseServeArgs, type ServeOptions } from '../../src/cli/serve-options.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import {
  startFakeKubeApiServer,
  type FakeKubeApiServer,
  type FakeSubjectAccessReviewSpec,
} from '../harness/fake-kube-apiserver.ts';

const DISCOVERY = '/apis/custom.metrics.k8s.io/v1beta2';
const FRONT_PROXY_CN = 'front-proxy-client';

/** The 401 every generic apiserver answers when authentication fails. */
const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

function metricPath(metric: string, namespace = 'default'): string {
  return `${DISCOVERY}/namespaces/${namespace}/pods/*/${metric}`;
}

function podMetricAttributes(metric: string, namespace = 'default'): FakeSubjectAccessReviewSpec['resourceAttributes'] {
  return { namespace, verb: 'get', group: 'custom.metrics.k8s.io', version: 'v1beta2', resource: 'pods', subresource: metric, name: '*' };
}

/** kube-apiserver's 403 text for a read of `pods/<metric>` (responsewriters.forbiddenMessage). */
function forbiddenText(user: string, metric: string, namespace = 'default'): string {
  return `pods.custom.metrics.k8s.io "*" is forbidden: User "${user}" cannot get resource "pods/${metric}" in API group "custom.metrics.k8s.io" in the namespace "${namespace}"`;
}

interface Pki {
  /** Stands in for kube-apiserver's front-proxy CA (requestheader-client-ca-file). */
  requestheaderCa: CertificateAuthority;
  /** Stands in for the cluster's client CA (client-ca-file). */
  clientCa: CertificateAuthority;
  /** Signs the adapter's serving certificate, so the test client verifies the server for real. */
  servingCa: CertificateAuthority;
  serving: CertificateAndKey;
  /** The aggregator's proxy client certificate (CN in requestheader-allowed-names). */
  frontProxy: CertificateAndKey;
  /** Signed by the front-proxy CA but with a CN that is not allowed. */
  frontProxyWrongName: CertificateAndKey;
  /** Same CN as the real front proxy, signed by a CA the adapter does not trust. */
  untrusted: CertificateAndKey;
  /** An ordinary x509 client (CN bob, O team-b) signed by the client CA. */
  bob: CertificateAndKey;
}

async function createPki(): Promise<Pki> {
  const [requestheaderCa, clientCa, servingCa, otherCa] = await Promise.all([
    createCertificateAuthority('test-front-proxy-ca'),
    createCertificateAuthority('test-client-ca'),
    createCertificateAuthority('test-serving-ca'),
    createCertificateAuthority('test-untrusted-ca'),
  ]);
  return {
    requestheaderCa,
    clientCa,
    servingCa,
    serving: await servingCa.issue({ commonName: 'localhost', hosts: ['localhost'], ips: ['127.0.0.1'], usage: 'server' }),
    frontProxy: await requestheaderCa.issue({ commonName: FRONT_PROXY_CN, usage: 'client' }),
    frontProxyWrongName: await requestheaderCa.issue({ commonName: 'someone-else', usage: 'client' }),
    untrusted: await otherCa.issue({ commonName: FRONT_PROXY_CN, usage: 'client' }),
    bob: await clientCa.issue({ commonName: 'bob', organizations: ['team-b'], usage: 'client' }),
  };
}

interface Response {
  status: number;
  text: string;
  json: unknown;
}

/** One request (GET unless told) on a fresh connection (agent: false), so no TLS session or socket is shared between identities. */
function get(
  server: RunningServer,
  pki: Pki,
  urlPath: string,
  opts: { cert?: CertificateAndKey; headers?: Record<string, string | string[]>; method?: string } = {},
): Promise<Response> {
  return httpsGet(`${server.url}${urlPath}`, {
    method: opts.method ?? 'GET',
    ca: pki.servingCa.certPem,
    ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}),
    headers: opts.headers ?? {},
  });
}

/** The same request as get(), over HTTP/2 on a session of its own. */
function get2(
  server: RunningServer,
  pki: Pki,
  urlPath: string,
  opts: { cert?: CertificateAndKey; headers?: Record<string, string | string[]>; method?: string } = {},
) {
  return http2Get(`${server.url}${urlPath}`, {
    ca: pki.servingCa.certPem,
    ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}),
    headers: opts.headers ?? {},
    method: opts.method ?? 'GET',
  });
}

/** The protocol the server picks when a client offers both, as Go's HTTP client does. */
function negotiatedProtocol(server: RunningServer, pki: Pki): Promise<string | false | null> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), ca: pki.servingCa.certPem, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(socket.alpnProtocol);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** `n` group names of about 40 bytes each. */
function manyGroups(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `system:serviceaccounts:namespace-number-${i}`);
}

async function startAdapter(fake: FakeKubeApiServer, pki: Pki, dir: string, overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const certFile = path.join(dir, `serving-${Math.random().toString(36).slice(2)}.crt`);
  const keyFile = `${certFile.slice(0, -4)}.key`;
  await writeFile(certFile, pki.serving.certPem);
  await writeFile(keyFile, pki.serving.keyPem, { mode: 0o600 });
  const options: ServeOptions = {
    ...parseServeArgs([
      '--prometheus-url=http://127.0.0.1:9', // never queried: no test reads a defined metric
      '--prometheus-timeout=2s',
      '--query-cache-ttl=0',
      `--kubeconfig=${fake.kubeconfigPath}`,
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--tls-cert-file=${certFile}`,
      `--tls-private-key-file=${keyFile}`,
    ]),
    ...overrides,
  };
  return startServer(options, pino({ level: 'silent' }));
}

/** SARs the fake received for one user, in order. */
function sarsFor(fake: FakeKubeApiServer, user: string): FakeSubjectAccessReviewSpec[] {
  return fake.sarRequests().filter((s) => s.user === user);
}

/** Removes keys whose value is undefined or '' so expectations do not depend on omitempty choices. */
function compact<T extends object | undefined>(o: T): T {
  if (!o) return o;
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as T;
}

/** Policy of the fake: metric names carry the intended decision, so cached decisions never collide across tests. */
function policy(spec: FakeSubjectAccessReviewSpec): { allowed: boolean } {
  const target = spec.resourceAttributes?.subresource ?? spec.nonResourceAttributes?.path ?? '';
  return { allowed: !target.includes('denied') };
}

describe('delegated authentication and authorization (adapter against the FAKE kube-apiserver)', () => {
  let pki: Pki;
  let fake: FakeKubeApiServer;
  let adapter: RunningServer;
  let dir: string;

  before(async () => {
    pki = await createPki();
    dir = await mkdtemp(path.join(tmpdir(), 'delegated-auth-test-'));
    fake = await startFakeKubeApiServer();
    // What kube-apiserver writes for aggregated servers; every list value is a JSON-encoded string array.
    fake.setAuthenticationConfigMap({
      'client-ca-file': pki.clientCa.certPem,
      'requestheader-client-ca-file': pki.requestheaderCa.certPem,
      'requestheader-allowed-names': JSON.stringify([FRONT_PROXY_CN]),
      'requestheader-username-headers': '["X-Remote-User"]',
      'requestheader-uid-headers': '["X-Remote-Uid"]',
      'requestheader-group-headers': '["X-Remote-Group"]',
      'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
    });
    const hpaUser = {
      username: 'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
      uid: 'uid-hpa',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system'],
    };
    // The TokenReview cache is per adapter process, so the caching test has a token no other test sends.
    fake.setTokens({ 'hpa-token': hpaUser, 'hpa-token-for-cache-test': hpaUser });
    fake.setAuthorizer(policy);
    adapter = await startAdapter(fake, pki, dir);
  });

  after(async () => {
    await adapter?.close();
    await fake?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('front proxy (requestheader) authentication', () => {
    const proxied = {
      'X-Remote-User': 'alice',
      'X-Remote-Group': ['team-a', 'oncall'],
      'X-Remote-Extra-Scopes': 'metrics-read',
      'X-Remote-Extra-Acme.io%2fproject': 'p1',
    };

    it('sends a SubjectAccessReview with the proxied user, groups, extra and the resource attributes; allowed -> 404 for an unknown metric', async () => {
      const res = await get(adapter, pki, metricPath('fp_allowed_metric'), { cert: pki.frontProxy, headers: proxied });
      assert.equal(res.status, 404, res.text);
      assert.equal((res.json as { kind: string }).kind, 'Status');
      assert.equal((res.json as { reason: string }).reason, 'NotFound');

      const sars = sarsFor(fake, 'alice').filter((s) => s.resourceAttributes?.subresource === 'fp_allowed_metric');
      assert.equal(sars.length, 1);
      const sar = sars[0]!;
      assert.equal(sar.user, 'alice');
      assert.deepEqual(sar.groups, ['team-a', 'oncall', 'system:authenticated']);
      assert.deepEqual(sar.extra, { scopes: ['metrics-read'], 'acme.io/project': ['p1'] });
      assert.equal(sar.nonResourceAttributes, undefined);
      assert.deepEqual(compact(sar.resourceAttributes), podMetricAttributes('fp_allowed_metric'));
    });

    it('denied by the fake authorizer -> 403 Status with kube-apiserver\'s message', async () => {
      const res = await get(adapter, pki, metricPath('fp_denied_metric'), { cert: pki.frontProxy, headers: proxied });
      assert.equal(res.status, 403, res.text);
      assert.deepEqual(res.json, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: forbiddenText('alice', 'fp_denied_metric'),
        reason: 'Forbidden',
        code: 403,
      });
      assert.deepEqual(compact(sarsFor(fake, 'alice').at(-1)?.resourceAttributes), podMetricAttributes('fp_denied_metric'));
    });

    it('passes X-Remote-Uid through to the SubjectAccessReview; empty group values are dropped', async () => {
      const res = await get(adapter, pki, metricPath('fp_uid_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'carol', 'X-Remote-Uid': 'uid-carol', 'X-Remote-Group': [''] } });
      assert.equal(res.status, 404, res.text);
      const sar = sarsFor(fake, 'carol').at(-1);
      assert.equal(sar?.uid, 'uid-carol');
      assert.deepEqual(sar?.groups, ['system:authenticated']);
    });

    it('system:kube-aggregator in system:masters is allowed without any SubjectAccessReview', async () => {
      const before = fake.sarRequests().length;
      const headers = { 'X-Remote-User': 'system:kube-aggregator', 'X-Remote-Group': 'system:masters' };
      const discovery = await get(adapter, pki, DISCOVERY, { cert: pki.frontProxy, headers });
      assert.equal(discovery.status, 200, discovery.text);
      assert.equal((discovery.json as { kind: string }).kind, 'APIResourceList');
      const metric = await get(adapter, pki, metricPath('masters_denied_metric'), { cert: pki.frontProxy, headers });
      assert.equal(metric.status, 404, 'system:masters skips authorization even where the policy would deny');
      assert.equal(fake.sarRequests().length, before, 'no SubjectAccessReview for system:masters');
    });

    it('spoofed X-Remote-* headers without a client certificate are ignored: the request is system:anonymous', async () => {
      const headers = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
      const res = await get(adapter, pki, metricPath('spoof_denied_metric'), { headers });
      assert.equal(res.status, 403, res.text);
      assert.equal((res.json as { message: string }).message, forbiddenText('system:anonymous', 'spoof_denied_metric'));
      const sars = fake.sarRequests().filter((s) => s.resourceAttributes?.subresource === 'spoof_denied_metric');
      assert.equal(sars.length, 1);
      assert.equal(sars[0]!.user, 'system:anonymous');
      assert.deepEqual(sars[0]!.groups, ['system:unauthenticated']);
      assert.equal(sarsFor(fake, 'admin').length, 0, 'the spoofed user never reaches authorization');
    });

    it('spoofed headers with a certificate from an untrusted CA -> 401, no review', async () => {
      const before = fake.sarRequests().length;
      const headers = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
      for (const p of [metricPath('untrusted_metric'), DISCOVERY]) {
        const res = await get(adapter, pki, p, { cert: pki.untrusted, headers });
        assert.equal(res.status, 401, res.text);
        assert.deepEqual(res.json, UNAUTHORIZED);
      }
      assert.equal(fake.sarRequests().length, before);
    });

    it('a front-proxy CA certificate whose CN is not in requestheader-allowed-names -> 401', async () => {
      const before = fake.sarRequests().length;
      const headers = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
      const res = await get(adapter, pki, metricPath('wrong_cn_metric'), { cert: pki.frontProxyWrongName, headers });
      assert.equal(res.status, 401, res.text);
      assert.deepEqual(res.json, UNAUTHORIZED);
      assert.equal(fake.sarRequests().length, before);
    });
  });

  describe('a certificate that proves nothing is an authentication failure, not anonymous', () => {
    it('the front-proxy certificate without X-Remote-User -> 401 (it is no client-ca-file certificate either)', async () => {
      const before = fake.sarRequests().length;
      const res = await get(adapter, pki, metricPath('no_user_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-Group': 'system:masters' } });
      assert.equal(res.status, 401, res.text);
      assert.deepEqual(res.json, UNAUTHORIZED);
      assert.equal(fake.sarRequests().length, before);
    });

    it('a failed certificate does not stop a valid bearer token (the authenticators are a union)', async () => {
      const res = await get(adapter, pki, metricPath('cert_and_token_metric'), { cert: pki.untrusted, headers: { Authorization: 'Bearer hpa-token', 'X-Remote-User': 'admin' } });
      assert.equal(res.status, 404, res.text);
      assert.equal(fake.sarRequests().at(-1)?.user, 'system:serviceaccount:kube-system:horizontal-pod-autoscaler');
    });
  });

  describe('x509 client certificates (client-ca-file)', () => {
    it('user = CN, groups = O plus system:authenticated; X-Remote-* headers are not trusted from such a client', async () => {
      const res = await get(adapter, pki, metricPath('x509_allowed_metric'), { cert: pki.bob, headers: { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' } });
      assert.equal(res.status, 404, res.text);
      const sar = sarsFor(fake, 'bob').at(-1);
      assert.deepEqual(sar?.groups, ['team-b', 'system:authenticated']);
      assert.deepEqual(compact(sar?.resourceAttributes), podMetricAttributes('x509_allowed_metric'));
      assert.equal(sarsFor(fake, 'admin').length, 0);
    });
  });

  describe('bearer tokens (TokenReview)', () => {
    const hpa = 'system:serviceaccount:kube-system:horizontal-pod-autoscaler';

    it('a valid token: the TokenReview user is authorized, and the review is cached (two requests, one TokenReview)', async () => {
      const token = 'hpa-token-for-cache-test';
      const reviews = () => fake.tokenReviewRequests().filter((r) => r.token === token).length;
      assert.equal(reviews(), 0);
      const first = await get(adapter, pki, metricPath('token_allowed_metric'), { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(first.status, 404, first.text);
      assert.equal(reviews(), 1);
      const sar = sarsFor(fake, hpa).at(-1);
      assert.equal(sar?.uid, 'uid-hpa');
      assert.deepEqual(sar?.groups, ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated']);
      assert.deepEqual(compact(sar?.resourceAttributes), podMetricAttributes('token_allowed_metric'));

      const second = await get(adapter, pki, metricPath('token_denied_metric'), { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(second.status, 403, second.text);
      assert.equal((second.json as { message: string }).message, forbiddenText(hpa, 'token_denied_metric'));
      assert.equal(reviews(), 1, 'the second request reused the cached TokenReview');
    });

    it('the scheme is case-insensitive and an empty token is no credential at all, as in kube-apiserver', async () => {
      const res = await get(adapter, pki, metricPath('token_scheme_metric'), { headers: { Authorization: 'bearer hpa-token' } });
      assert.equal(res.status, 404, res.text);
      assert.equal(fake.sarRequests().at(-1)?.user, hpa);
      const empty = await get(adapter, pki, metricPath('empty_token_denied_metric'), { headers: { Authorization: 'Bearer ' } });
      assert.equal(empty.status, 403, empty.text);
      assert.equal(fake.sarRequests().at(-1)?.user, 'system:anonymous');
      assert.equal(fake.tokenReviewRequests().filter((r) => !r.token).length, 0, 'no TokenReview for an empty token');
    });

    it('an unknown token -> 401 (no anonymous fallback), and no SubjectAccessReview', async () => {
      const before = fake.sarRequests().length;
      const res = await get(adapter, pki, metricPath('bad_token_metric'), { headers: { Authorization: 'Bearer not-a-token' } });
      assert.equal(res.status, 401, res.text);
      assert.deepEqual(res.json, UNAUTHORIZED);
      assert.equal(fake.sarRequests().length, before);
      assert.deepEqual(fake.tokenReviewRequests().filter((r) => r.token === 'not-a-token'), [{ token: 'not-a-token' }]);
    });
  });

  describe('paths', () => {
    it('/healthz, /livez and /readyz answer 200 ok without a SubjectAccessReview', async () => {
      const before = fake.sarRequests().length;
      for (const p of ['/healthz', '/livez', '/readyz']) {
        const res = await get(adapter, pki, p);
        assert.equal(res.status, 200, `${p}: ${res.text}`);
        assert.equal(res.text, 'ok');
      }
      assert.equal(fake.sarRequests().length, before);
    });

    it('discovery of custom.metrics.k8s.io/v1beta2 is authorized with nonResourceAttributes', async () => {
      const res = await get(adapter, pki, DISCOVERY, { cert: pki.frontProxy, headers: { 'X-Remote-User': 'dora' } });
      assert.equal(res.status, 200, res.text);
      const sars = sarsFor(fake, 'dora');
      assert.equal(sars.length, 1);
      assert.deepEqual(sars[0]!.nonResourceAttributes, { path: DISCOVERY, verb: 'get' });
      assert.equal(sars[0]!.resourceAttributes, undefined);
      assert.deepEqual(sars[0]!.groups, ['system:authenticated']);
    });

    it('denied discovery -> 403 with kube-apiserver\'s non-resource message', async () => {
      // The fake denies paths containing "denied": ask for a path below the group that the router does not know.
      const p = `${DISCOVERY}-denied`;
      const res = await get(adapter, pki, p, { cert: pki.frontProxy, headers: { 'X-Remote-User': 'erin' } });
      assert.equal(res.status, 403, res.text);
      assert.equal((res.json as { message: string }).message, `forbidden: User "erin" cannot get path "${p}"`);
      assert.deepEqual(sarsFor(fake, 'erin')[0]?.nonResourceAttributes, { path: p, verb: 'get' });
    });
  });

  describe('verbs as kube-apiserver derives them (RequestInfo)', () => {
    it('HEAD on a non-resource path is authorized as verb head, not get', async () => {
      const res = await get(adapter, pki, DISCOVERY, { method: 'HEAD', cert: pki.frontProxy, headers: { 'X-Remote-User': 'ivan' } });
      assert.equal(res.status, 200);
      assert.deepEqual(sarsFor(fake, 'ivan').map((s) => s.nonResourceAttributes), [{ path: DISCOVERY, verb: 'head' }]);
    });

    it('HEAD on a metric is authorized as get, like GET', async () => {
      const res = await get(adapter, pki, metricPath('head_metric'), { method: 'HEAD', cert: pki.frontProxy, headers: { 'X-Remote-User': 'ivan' } });
      assert.equal(res.status, 404);
      assert.deepEqual(compact(sarsFor(fake, 'ivan').at(-1)?.resourceAttributes), podMetricAttributes('head_metric'));
    });

    it('writes are authorized as create / delete / deletecollection and then refused with 405', async () => {
      const headers = { 'X-Remote-User': 'judy' };
      const post = await get(adapter, pki, metricPath('write_metric'), { method: 'POST', cert: pki.frontProxy, headers });
      const del = await get(adapter, pki, metricPath('write_metric'), { method: 'DELETE', cert: pki.frontProxy, headers });
      const delAll = await get(adapter, pki, `${DISCOVERY}/namespaces/default/pods`, { method: 'DELETE', cert: pki.frontProxy, headers });
      assert.deepEqual([post.status, del.status, delAll.status], [405, 405, 405]);
      assert.deepEqual(sarsFor(fake, 'judy').map((s) => s.resourceAttributes?.verb), ['create', 'delete', 'deletecollection']);
    });

    it('any watch value but 0 or false makes a collection read a watch', async () => {
      const queries = ['watch=1', 'watch=true', 'watch=0', 'watch=false', 'watch=FALSE', ''];
      const verbs: (string | undefined)[] = [];
      for (const [i, q] of queries.entries()) {
        // One user per query, so the decision cache cannot hide a SubjectAccessReview.
        await get(adapter, pki, `${DISCOVERY}/namespaces/default/pods${q ? `?${q}` : ''}`, { cert: pki.frontProxy, headers: { 'X-Remote-User': `kate-${i}` } });
        verbs.push(sarsFor(fake, `kate-${i}`)[0]?.resourceAttributes?.verb);
      }
      assert.deepEqual(verbs, ['watch', 'watch', 'list', 'list', 'list', 'list']);
    });
  });

  describe('decision cache', () => {
    it('two identical requests -> one SubjectAccessReview', async () => {
      const headers = { 'X-Remote-User': 'frank', 'X-Remote-Group': ['g1', 'g2'] };
      const a = await get(adapter, pki, metricPath('cached_allowed_metric'), { cert: pki.frontProxy, headers });
      const b = await get(adapter, pki, metricPath('cached_allowed_metric'), { cert: pki.frontProxy, headers });
      assert.deepEqual([a.status, b.status], [404, 404]);
      const c = await get(adapter, pki, metricPath('cached_denied_metric'), { cert: pki.frontProxy, headers });
      const d = await get(adapter, pki, metricPath('cached_denied_metric'), { cert: pki.frontProxy, headers });
      assert.deepEqual([c.status, d.status], [403, 403]);
      assert.deepEqual(
        sarsFor(fake, 'frank').map((s) => s.resourceAttributes?.subresource),
        ['cached_allowed_metric', 'cached_denied_metric'],
        'allowed and denied decisions are both cached',
      );
      // A different identity is a different decision.
      await get(adapter, pki, metricPath('cached_allowed_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'frank', 'X-Remote-Group': 'g1' } });
      assert.equal(sarsFor(fake, 'frank').length, 3);
    });
  });

  describe('failures of the fake kube-apiserver', () => {
    it('a SubjectAccessReview error -> 500 InternalError, and the error is not cached as a decision', async () => {
      fake.setAuthorizer(() => {
        throw new Error('fake authorizer outage');
      });
      try {
        const res = await get(adapter, pki, metricPath('outage_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'gina' } });
        assert.equal(res.status, 500, res.text);
        assert.equal((res.json as { reason: string }).reason, 'InternalError');
      } finally {
        fake.setAuthorizer(policy);
      }
      const again = await get(adapter, pki, metricPath('outage_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'gina' } });
      assert.equal(again.status, 404, again.text);
    });
  });

  describe('over HTTP/2 (node:http2 client), as kube-apiserver\'s aggregator connects', () => {
    const proxied = { 'X-Remote-User': 'h2-alice', 'X-Remote-Group': ['team-a', 'oncall'], 'X-Remote-Extra-Scopes': 'metrics-read' };

    it('a client offering h2 and http/1.1 gets h2', async () => {
      assert.equal(await negotiatedProtocol(adapter, pki), 'h2');
    });

    it('front proxy: the certificate and every X-Remote-* header reach the SubjectAccessReview', async () => {
      const res = await get2(adapter, pki, metricPath('h2_fp_allowed_metric'), { cert: pki.frontProxy, headers: proxied });
      assert.equal(res.alpnProtocol, 'h2');
      assert.equal(res.status, 404, res.text);
      const sar = sarsFor(fake, 'h2-alice').at(-1);
      assert.deepEqual(sar?.groups, ['team-a', 'oncall', 'system:authenticated']);
      assert.deepEqual(sar?.extra, { scopes: ['metrics-read'] });
      assert.deepEqual(compact(sar?.resourceAttributes), podMetricAttributes('h2_fp_allowed_metric'));
      const denied = await get2(adapter, pki, metricPath('h2_fp_denied_metric'), { cert: pki.frontProxy, headers: proxied });
      assert.equal(denied.status, 403, denied.text);
      assert.equal((denied.json as { message: string }).message, forbiddenText('h2-alice', 'h2_fp_denied_metric'));
    });

    it('concurrent requests of different users on one session are each authenticated from their own headers', async () => {
      const session = await connectHttp2(adapter.url, { ca: pki.servingCa.certPem, cert: pki.frontProxy.certPem, key: pki.frontProxy.keyPem });
      try {
        const users = ['h2-u0', 'h2-u1', 'h2-u2', 'h2-u3', 'h2-u4'];
        const results = await Promise.all(
          users.map((u) => http2Request(session, metricPath(`h2_mux_${u.slice(-1)}_metric`), { 'x-remote-user': u, 'x-remote-group': `group-of-${u}` })),
        );
        assert.deepEqual(results.map((r) => r.status), [404, 404, 404, 404, 404]);
        for (const u of users) {
          const sar = sarsFor(fake, u);
          assert.equal(sar.length, 1, u);
          assert.deepEqual(sar[0]!.groups, [`group-of-${u}`, 'system:authenticated']);
          assert.equal(sar[0]!.resourceAttributes?.subresource, `h2_mux_${u.slice(-1)}_metric`);
        }
      } finally {
        session.close();
      }
    });

    it('a user in 1000 groups (beyond Node\'s defaults of 128 HTTP/2 header pairs and 16 KiB of HTTP/1.1 headers), over both protocols', async () => {
      const groups = manyGroups(1000);
      const h2 = await get2(adapter, pki, metricPath('many_groups_h2_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'h2-groupie', 'X-Remote-Group': groups } });
      assert.equal(h2.status, 404, h2.text);
      assert.deepEqual(sarsFor(fake, 'h2-groupie').at(-1)?.groups, [...groups, 'system:authenticated']);
      const h1 = await get(adapter, pki, metricPath('many_groups_h1_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'h1-groupie', 'X-Remote-Group': groups } });
      assert.equal(h1.status, 404, h1.text);
      assert.deepEqual(sarsFor(fake, 'h1-groupie').at(-1)?.groups, [...groups, 'system:authenticated']);
    });

    it('x509 client certificate: user = CN, groups = O', async () => {
      const res = await get2(adapter, pki, metricPath('h2_x509_metric'), { cert: pki.bob, headers: { 'X-Remote-User': 'admin' } });
      assert.equal(res.status, 404, res.text);
      assert.equal(fake.sarRequests().at(-1)?.user, 'bob');
      assert.deepEqual(fake.sarRequests().at(-1)?.groups, ['team-b', 'system:authenticated']);
    });

    it('spoofed headers without a certificate are anonymous; with an untrusted certificate they are 401', async () => {
      const headers = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
      const anonymous = await get2(adapter, pki, metricPath('h2_spoof_denied_metric'), { headers });
      assert.equal(anonymous.status, 403, anonymous.text);
      assert.equal((anonymous.json as { message: string }).message, forbiddenText('system:anonymous', 'h2_spoof_denied_metric'));
      const untrusted = await get2(adapter, pki, metricPath('h2_untrusted_metric'), { cert: pki.untrusted, headers });
      assert.equal(untrusted.status, 401, untrusted.text);
      assert.deepEqual(untrusted.json, UNAUTHORIZED);
      assert.equal(sarsFor(fake, 'admin').length, 0);
    });

    it('bearer tokens work over HTTP/2', async () => {
      const res = await get2(adapter, pki, metricPath('h2_token_metric'), { headers: { Authorization: 'Bearer hpa-token' } });
      assert.equal(res.status, 404, res.text);
      assert.equal(fake.sarRequests().at(-1)?.user, 'system:serviceaccount:kube-system:horizontal-pod-autoscaler');
    });
  });

  describe('--disable-http2 and --http2-max-streams-per-connection', () => {
    let h1only: RunningServer;
    let fewStreams: RunningServer;
    before(async () => {
      h1only = await startAdapter(fake, pki, dir, { disableHttp2: true });
      fewStreams = await startAdapter(fake, pki, dir, { http2MaxStreamsPerConnection: 7 });
    });
    after(async () => {
      await h1only?.close();
      await fewStreams?.close();
    });

    it('the stream limit is announced to HTTP/2 clients: 250 (Go\'s default) unless the flag says otherwise', async () => {
      for (const [server, expected] of [[adapter, 250], [fewStreams, 7]] as const) {
        const session = http2Connect(server.url, { ca: pki.servingCa.certPem });
        try {
          const settings = await new Promise<Settings>((resolve, reject) => {
            session.once('remoteSettings', resolve);
            session.once('error', reject);
          });
          assert.equal(settings.maxConcurrentStreams, expected);
        } finally {
          session.close();
        }
      }
    });

    it('is a real flag, off by default, with Go\'s boolean spellings', () => {
      assert.equal(parseServeArgs([]).disableHttp2, false);
      assert.equal(parseServeArgs(['--disable-http2']).disableHttp2, true);
      assert.equal(parseServeArgs(['--disable-http2=false']).disableHttp2, false);
      assert.equal(parseServeArgs(['--http2-max-streams-per-connection=1000']).http2MaxStreamsPerConnection, 1000);
    });

    it('offers no h2: a client offering both gets HTTP/1.1, and an HTTP/2-only client cannot talk to it', async () => {
      assert.notEqual(await negotiatedProtocol(h1only, pki), 'h2');
      await assert.rejects(get2(h1only, pki, DISCOVERY, { cert: pki.frontProxy, headers: { 'X-Remote-User': 'h1-only' } }));
      const res = await get(h1only, pki, DISCOVERY, { cert: pki.frontProxy, headers: { 'X-Remote-User': 'h1-only' } });
      assert.equal(res.status, 200, res.text);
    });
  });

  describe('no client CAs known (--authentication-skip-lookup without CA files)', () => {
    let blind: RunningServer;
    before(async () => {
      blind = await startAdapter(fake, pki, dir, { authenticationSkipLookup: true });
    });
    after(async () => {
      await blind?.close();
    });

    it('a presented certificate is ignored and the request is system:anonymous, as the start-up warning says', async () => {
      const res = await get(blind, pki, metricPath('blind_denied_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' } });
      assert.equal(res.status, 403, res.text);
      assert.equal((res.json as { message: string }).message, forbiddenText('system:anonymous', 'blind_denied_metric'));
      assert.equal(sarsFor(fake, 'admin').length, 0);
    });

    it('bearer tokens still work', async () => {
      const res = await get(blind, pki, metricPath('blind_token_metric'), { headers: { Authorization: 'Bearer hpa-token' } });
      assert.equal(res.status, 404, res.text);
    });
  });

  describe('--anonymous-auth=false', () => {
    let strict: RunningServer;
    before(async () => {
      strict = await startAdapter(fake, pki, dir, { anonymousAuth: false });
    });
    after(async () => {
      await strict?.close();
    });

    it('a request without credentials -> 401, even with spoofed headers; no review', async () => {
      const before = fake.sarRequests().length;
      const attempts: Record<string, string>[] = [{}, { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' }];
      for (const headers of attempts) {
        const res = await get(strict, pki, metricPath('anon_metric'), { headers });
        assert.equal(res.status, 401, res.text);
        assert.deepEqual(res.json, UNAUTHORIZED);
      }
      const discovery = await get(strict, pki, DISCOVERY);
      assert.equal(discovery.status, 401);
      assert.equal(fake.sarRequests().length, before);
    });

    it('health checks still answer without credentials', async () => {
      const res = await get(strict, pki, '/healthz');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'ok');
    });

    it('the front proxy still authenticates', async () => {
      const res = await get(strict, pki, metricPath('strict_allowed_metric'), { cert: pki.frontProxy, headers: { 'X-Remote-User': 'hank' } });
      assert.equal(res.status, 404, res.text);
      assert.equal(sarsFor(fake, 'hank').length, 1);
    });
  });
});
