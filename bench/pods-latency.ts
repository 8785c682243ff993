/**
 * Latency of `pods/%2A/<metric>?labelSelector=` with N pods (default 50), cached and uncached, next to
 * the same PromQL sent straight to Prometheus. Real Prometheus, the adapter's real wiring, a FAKE
 * Kubernetes API for the pod list. Prints a table; asserts nothing.
 *
 *   node bench/pods-latency.ts [--pods 50] [--requests 100]
 */
import { Agent, request } from 'node:https';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import os from 'node:os';
import { pino } from 'pino';
import { startPrometheus, type SeriesSpec } from '../src/demo/prometheus-process.ts';
import { startServer } from '../src/server.ts';
import { parseServeArgs, type ServeOptions } from '../src/cli/serve-options.ts';
import { startFakeKubeApiServer } from '../test/harness/fake-kube-apiserver.ts';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};
const PODS = arg('pods', 50);
const REQUESTS = arg('requests', 100);

const now = Math.floor(Date.now() / 1000);
const start = now - 1800;
const series: SeriesSpec[] = [];
for (let i = 0; i < PODS; i++) {
  series.push({ name: 'bench_cpu_seconds_total', type: 'counter', labels: { namespace: 'bench', pod: `web-${i}`, container: 'app' }, value: (t) => (0.1 + i / 1000) * (t - start) });
}
const prometheus = await startPrometheus({ series, fromSeconds: start, toSeconds: now + 3600, stepSeconds: 15 });
const kube = await startFakeKubeApiServer();
for (let i = 0; i < PODS; i++) kube.addPod('bench', `web-${i}`, { app: 'web' });
const { writeFileSync, mkdtempSync } = await import('node:fs');
const dir = mkdtempSync(`${os.tmpdir()}/pma-bench-`);
const rules = `${dir}/rules.yaml`;
writeFileSync(rules, 'metrics:\n- name: cpu\n  resource: pods\n  windows: [1m]\n  query: sum by (<<.GroupBy>>) (rate(bench_cpu_seconds_total{<<.LabelMatchers>>}[<<.Window>>]))\n');
const PROMQL = 'sum by (pod) (rate(bench_cpu_seconds_total{namespace="bench"}[1m]))';

const base: ServeOptions = {
  ...parseServeArgs(['--bind-address=127.0.0.1', '--secure-port=0', '--insecure-disable-auth', '--query-cache-ttl=60s', `--prometheus-url=${prometheus.url}`]),
  config: rules,
  kubeconfig: kube.kubeconfigPath,
};
const log = pino({ level: 'silent' });
const cached = await startServer(base, log);
const uncached = await startServer({ ...base, queryCacheTtlMs: 0 }, log);

const tlsAgent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
function time(fn: (done: (items: number) => void, fail: (e: Error) => void) => void): Promise<{ ms: number; items: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    fn((items) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, items }), reject);
  });
}
const adapterGet = (url: string) =>
  time((done, fail) => {
    const req = request(url, { agent: tlsAgent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? done(JSON.parse(body).items.length) : fail(new Error(`${res.statusCode} ${body}`))));
    });
    req.on('error', fail);
    req.end();
  });
const promGet = () =>
  time((done, fail) => {
    const q = new URLSearchParams({ query: PROMQL, time: String(Math.floor(Date.now() / 1000)) });
    const req = httpRequest(`${prometheus.url}/api/v1/query?${q}`, { agent: httpAgent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => done(JSON.parse(body).data.result.length));
    });
    req.on('error', fail);
    req.end();
  });

const path = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/*/cpu_1m?labelSelector=app%3Dweb';
async function measure(name: string, once: () => Promise<{ ms: number; items: number }>) {
  for (let i = 0; i < 10; i++) await once(); // warm-up: connections, JIT, caches
  const ms: number[] = [];
  let items = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const r = await once();
    ms.push(r.ms);
    items = r.items;
  }
  ms.sort((a, b) => a - b);
  const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!;
  return { name, items, median: q(0.5), p99: q(0.99) };
}

const rows = [
  await measure('adapter, cached', () => adapterGet(`${cached.url}${path}`)),
  await measure('adapter, uncached (--query-cache-ttl=0)', () => adapterGet(`${uncached.url}${path}`)),
  await measure('Prometheus directly, same PromQL', promGet),
];
console.log(`\npods/*/cpu_1m?labelSelector=app=web with ${PODS} pods, ${REQUESTS} sequential requests after 10 warm-up, keep-alive connections`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}, ${os.platform()}`);
console.log('| what | items | median ms | p99 ms |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.name} | ${r.items} | ${r.median.toFixed(2)} | ${r.p99.toFixed(2)} |`);
const ratio = rows[1]!.median / rows[2]!.median;
console.log(`uncached adapter / direct Prometheus (median): ${ratio.toFixed(2)}x`);

await cached.close();
await uncached.close();
tlsAgent.destroy();
httpAgent.destroy();
await kube.stop();
await prometheus.stop();
