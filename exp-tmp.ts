import { request, Agent } from 'node:http';
import { startPrometheus, type SeriesSpec } from './src/demo/prometheus-process.ts';
import { PrometheusHttpClient } from './src/prometheus/http-client.ts';
import { QueryLimiter } from './src/prometheus/query-limiter.ts';
import { QueryEngine } from './src/prometheus/query-engine.ts';
const N = Number(process.argv[2] ?? 1000);
const now = Math.floor(Date.now() / 1000); const start = now - 1800;
const series: SeriesSpec[] = [];
for (let i = 0; i < N; i++) series.push({ name: 'x_total', type: 'counter', labels: { namespace: 'b', pod: `web-${i}` }, value: (t) => (0.1 + i / 1000) * (t - start) });
const prom = await startPrometheus({ series, fromSeconds: start, toSeconds: now + 3600, stepSeconds: 15 });
const q = 'sum by (pod) (rate(x_total{namespace="b"}[1m]))';
const client = new PrometheusHttpClient({ url: prom.url, timeoutMs: 30000 } as any);
const gate = new QueryLimiter(client, { maxConcurrent: 16, maxQueued: 256, timeoutMs: 30000, backendUrl: 'x' });
const engine = new QueryEngine(gate, { cacheTtlMs: 0, cacheMaxEntries: 100 });
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const raw = (withTime = true) => new Promise<number>((res, rej) => { const t0 = performance.now(); const r = request(`${prom.url}/api/v1/query?${new URLSearchParams(withTime ? { query: q, time: String(Math.floor(Date.now()/1000)) } : { query: q })}`, { agent }, (resp) => { const c: Buffer[] = []; resp.on('data', (d) => c.push(d)); resp.on('end', () => { JSON.parse(Buffer.concat(c).toString()); res(performance.now() - t0); }); }); r.on('error', rej); r.end(); });
const timed = (f: () => Promise<unknown>) => async () => { const t0 = performance.now(); await f(); return performance.now() - t0; };
const viaClient = timed(() => client.query(q, Math.floor(Date.now() / 1000)));
const viaGate = timed(() => gate.query(q, Math.floor(Date.now() / 1000)));
const viaEngine = timed(() => engine.query(q, 'r'));
const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1]!.toFixed(2);
for (let round = 0; round < 3; round++) {
  const r: Record<string, number[]> = { raw: [], rawNoTime: [], engine: [] };
  for (let i = 0; i < 100; i++) { r.raw!.push(await raw()); r.rawNoTime!.push(await raw(false)); r.engine!.push(await viaEngine()); }
  console.log(`N=${N}`, Object.entries(r).map(([k, v]) => `${k} ${med(v)}`).join('  '));
}
agent.destroy(); await prom.stop(); process.exit(0);
