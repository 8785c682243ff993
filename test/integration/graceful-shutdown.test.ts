/**
 * SIGTERM on the packaged command (bin/prometheus-metrics-adapter.js, which runs dist/): the listener closes at
 * once, requests in flight finish, open HTTP/2 sessions do not hold the process, and it exits 0. Prometheus is
 * a FAKE HTTP server that answers every query after a delay, so a request is reliably in flight at the signal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'node:https';
import { connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { after, before, test } from 'node:test';
import { closeGracefully } from '../../src/api/app.ts';
import { freeLoopbackPort } from '../../src/demo/prometheus-process.ts';
import { startTestAdapter } from '../harness/adapter.ts';
import { startFakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { connectHttp2, http2Request } from '../harness/http2-client.ts';

const BIN = new URL('../../bin/prometheus-metrics-adapter.js', import.meta.url).pathname;
const DELAY_MS = 1000;
const METRIC = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/pod_cpu_used_1m?labelSelector=app%3Dweb';

/** FAKE Prometheus: every instant query gets one sample for pod default/web-1, after a delay. */
class FakeSlowPrometheus {
  readonly #server: Server;
  queries = 0;
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  constructor(delayMs: number) {
    this.#server = createServer((req, res) => {
      if (!req.url?.startsWith('/api/v1/query')) {
        res.writeHead(404).end();
        return;
      }
      this.queries++;
      for (const w of this.#waiters) if (this.queries >= w.n) w.resolve();
      req.resume();
      setTimeout(() => {
        const sample = { metric: { namespace: 'default', pod: 'web-1', label_app: 'web' }, value: [Date.now() / 1000, '0.5'] };
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [sample] } }));
      }, delayMs).unref();
    });
  }

  /** Resolves once this many queries have arrived (their answers are still a delay away). */
  queriesReached(n: number): Promise<void> {
    if (this.queries >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    assert.ok(address && typeof address === 'object');
    return `http://127.0.0.1:${address.port}`;
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function httpsGet(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}${path}`, { rejectUnauthorized: false, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the error code of a plain TCP connection attempt, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

let prometheus: FakeSlowPrometheus;
let prometheusUrl: string;

before(async () => {
  prometheus = new FakeSlowPrometheus(DELAY_MS);
  prometheusUrl = await prometheus.start();
});

after(async () => {
  await prometheus?.stop();
});

test('SIGTERM: no new connections, requests in flight (HTTP/1.1 and HTTP/2) finish with 200, idle HTTP/2 sessions do not block, exit 0', async () => {
  const port = await freeLoopbackPort();
  const child = spawn(
    process.execPath,
    [BIN, `--prometheus-url=${prometheusUrl}`, '--object-source=prometheus', '--insecure-disable-auth', '--bind-address=127.0.0.1', `--secure-port=${port}`, '--query-cache-ttl=0'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  const sessions: Awaited<ReturnType<typeof connectHttp2>>[] = [];
  const agents: Agent[] = [];
  try {
    let ready = false;
    for (let i = 0; i < 150 && !ready; i++) {
      ready = await httpsGet(port, '/readyz').then((r) => r.status === 200, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ready, `the adapter came up; stderr:\n${stderr}`);

    // A long-lived, idle HTTP/2 session like the aggregator's, and one that has a request in flight.
    const idle = await connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const busy = await connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    sessions.push(idle, busy);
    assert.equal((await http2Request(idle, '/healthz')).status, 200);
    assert.equal(idle.alpnProtocol, 'h2');

    // One after the other, so each is known to be past routing (waiting for Prometheus) before the signal.
    // Keep-alive, as most HTTP/1.1 clients are: the server has to close the connection once the answer is out.
    const keepAlive = new Agent({ keepAlive: true });
    agents.push(keepAlive);
    let h1Done = false;
    const h1 = httpsGet(port, METRIC, keepAlive).then((r) => ((h1Done = true), r));
    await prometheus.queriesReached(1);
    const h2 = http2Request(busy, METRIC);
    await prometheus.queriesReached(2);
    const signalled = Date.now();
    child.kill('SIGTERM');

    // The listener closes at once, while the requests are still waiting for Prometheus.
    let attempt = await tryConnect(port);
    // A connection the kernel accepted into the backlog just before the close is reset, not refused: that is the
    // close happening, so try again until the port refuses.
    for (let i = 0; i < 20 && (attempt === 'connected' || attempt === 'ECONNRESET'); i++) {
      await new Promise((r) => setTimeout(r, 25));
      attempt = await tryConnect(port);
    }
    assert.equal(attempt, 'ECONNREFUSED', 'a new connection after SIGTERM is refused');
    assert.equal(h1Done, false, 'the listener closed before the request in flight finished');

    const [r1, r2] = await Promise.all([h1, h2]);
    assert.equal(r1.status, 200, r1.body);
    assert.deepEqual(JSON.parse(r1.body).items.map((i: { describedObject: { name: string } }) => i.describedObject.name), ['web-1']);
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.json.items.map((i: { describedObject: { name: string } }) => i.describedObject.name), ['web-1']);
    const finished = Date.now();

    const { code, at } = await exited;
    assert.equal(code, 0, stderr);
    assert.ok(at - finished < 2_000, `exited ${at - finished} ms after the last response`);
    assert.ok(at - signalled < 8_000, `exited ${at - signalled} ms after SIGTERM, well inside the 10 s grace period`);
    assert.match(stderr, /shutting down/);
  } finally {
    for (const s of sessions) s.destroy();
    for (const a of agents) a.destroy();
    child.kill('SIGKILL');
  }
});

test('a request that outlives the grace period is cut off, and the close finishes anyway', async () => {
  const stuck = new FakeSlowPrometheus(120_000);
  const adapter = await startTestAdapter({ config: new URL('../../config/rules.yaml', import.meta.url).pathname, prometheusUrl: await stuck.start(), objectSource: 'prometheus', prometheusTimeoutMs: 300_000 });
  const session = await connectHttp2(adapter.url, { rejectUnauthorized: false });
  try {
    const inFlight = http2Request(session, METRIC).then(
      (r) => (r.status ? `answered ${r.status}` : 'cut: the stream ended without a response'),
      (err: Error) => `cut: ${err.message}`,
    );
    await stuck.queriesReached(1);
    const started = Date.now();
    assert.equal(await closeGracefully(adapter.server.app, 300), false, 'reports that the grace period ran out');
    assert.ok(Date.now() - started < 2_000, `closed ${Date.now() - started} ms after the grace period began`);
    assert.match(await inFlight, /^cut: /);
  } finally {
    session.destroy();
    await adapter.close();
    await stuck.stop();
  }
});

test('a start-up failure after the watches began (port in use) still exits 1', async () => {
  const fake = await startFakeKubeApiServer();
  fake.setAuthenticationConfigMap({ 'requestheader-allowed-names': '[]' });
  const blocker = createTcpServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const address = blocker.address();
  assert.ok(address && typeof address === 'object');
  const child = spawn(
    process.execPath,
    [BIN, `--kubeconfig=${fake.kubeconfigPath}`, `--prometheus-url=${prometheusUrl}`, '--bind-address=127.0.0.1', `--secure-port=${address.port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    const code = await Promise.race([
      new Promise<number | null>((resolve) => child.on('exit', resolve)),
      new Promise<string>((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000).unref()),
    ]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /cannot start: listen EADDRINUSE/);
  } finally {
    child.kill('SIGKILL');
    blocker.close();
    await fake.stop();
  }
});
