/**
 * Speed and cost of `pods/%2A/<metric>?labelSelector=` at several scales, next to the floor: the same PromQL sent
 * straight to Prometheus. Prints markdown tables; asserts nothing.
 *
 *   npm run bench:latency -- [--pods 10,100,1000,5000] [--runs 3] [--requests 200] [--concurrency 50] [--seconds 5]
 *                            [--startups 5] [--adapter-bin <another checkout's bin/prometheus-metrics-adapter.js>]
 *                            [--memory-limit <quantity>|none] [--node-options <NODE_OPTIONS>|none] (default: as deploy/20-deployment.yaml runs the adapter)
 *
 * Everything listens on 127.0.0.1: a real Prometheus with backfilled data (one namespace per scale, N pods each), a
 * FAKE Kubernetes API for the pod lists, and the packaged adapter (bin/prometheus-metrics-adapter.js) as separate
 * processes, one with a warm cache and one with --query-cache-ttl=0, so the load generator here never shares an
 * event loop with the code it measures. bench/soak-probe.ts is preloaded into them for event-loop lag.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freeLoopbackPort, startPrometheus, type SeriesSpec } from '../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer } from '../test/harness/fake-kube-apiserver.ts';
import { readExposition } from '../test/harness/exposition-reader.ts';
import { AdapterRuntime, adapterArgs, procStatusMb, sleep, spawnAdapter, warnIfStaleBuild } from './adapter-process.ts';

// ---------------------------------------------------------------------------------------------------------------
// Options

function listArg(name: string, def: number[]): number[] {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return def;
  const values = (process.argv[i + 1] ?? '').split(',').map(Number);
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 1 || v > 20_000)) {
    console.error(`--${name} takes comma-separated whole numbers in [1, 20000], got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return values;
}
const numberArg = (name: string, def: number): number => listArg(name, [def])[0]!;

const SCALES = listArg('pods', [10, 100, 1000, 5000]);
const RUNS = numberArg('runs', 3);
const REQUESTS = numberArg('requests', 200);
const CONNECTIONS = numberArg('concurrency', 50);
const SECONDS = numberArg('seconds', 5);
const STARTUPS = numberArg('startups', 5);

const REPO = fileURLToPath(new URL('..', import.meta.url));
const binIndex = process.argv.indexOf('--adapter-bin');
// Another checkout's launcher (built) can be measured instead, for before/after figures.
const BIN = binIndex === -1 ? path.join(REPO, 'bin', 'prometheus-metrics-adapter.js') : path.resolve(process.argv[binIndex + 1] ?? '');
const RUNTIME = new AdapterRuntime(process.argv);
const PROBE = pathToFileURL(path.join(REPO, 'bench', 'soak-probe.ts')).href;
const SERIES = 'bench_cpu_seconds_total';
const PREFIX = 'prometheus_metrics_adapter_';
const ns = (pods: number): string => `scale-${pods}`;
const metricPath = (pods: number, metric: string): string =>
  `/apis/custom.metrics.k8s.io/v1beta2/namespaces/${ns(pods)}/pods/%2A/${metric}?labelSelector=app%3Dweb`;

const say = (m: string): void => console.error(`${new Date().toISOString().slice(11, 19)} ${m}`);

// ---------------------------------------------------------------------------------------------------------------
// Statistics

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? sorted[0]!;
}
/** Median and p99 over every sample of every run, and the spread of the runs' own medians. */
function summary(runs: readonly (readonly number[])[]): { median: number; p99: number; runMedians: number[] } {
  const all = runs.flat().sort((a, b) => a - b);
  const runMedians = runs.map((r) => quantile([...r].sort((a, b) => a - b), 0.5));
  return { median: quantile(all, 0.5), p99: quantile(all, 0.99), runMedians };
}
const ms = (v: number): string => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) : 'n/a');
const spread = (v: readonly number[]): string => (v.length < 2 ? '' : ` (${ms(Math.min(...v))}–${ms(Math.max(...v))})`);
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

// ---------------------------------------------------------------------------------------------------------------
// Clients: keep-alive, one connection, the body read but not parsed (parsing would be the client's cost, not the
// server's), so a sample is the time from writing the request to the last byte of the answer.

interface Answer {
  status: number;
  body: Buffer;
  ms: number;
}
const tlsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
const plainAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
function get(url: string): Promise<Answer> {
  const secure = url.startsWith('https:');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = (secure ? httpsRequest : httpRequest)(url, { agent: secure ? tlsAgent : plainAgent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
async function getJson(url: string): Promise<{ status: number; json: any; bytes: number }> {
  const a = await get(url);
  let json: unknown;
  try {
    json = JSON.parse(a.body.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: a.status, json, bytes: a.body.length };
}

interface Target {
  readonly url: string;
  readonly items: (json: any) => number;
}

/**
 * REQUESTS rounds, each one request to every target in turn, in alternating order: Prometheus's own speed drifts
 * over a run (head compaction, its garbage collector), and interleaving lets every target see the same drift.
 */
async function interleaved(targets: readonly Target[], want: number): Promise<number[][]> {
  for (const t of targets) {
    const first = await getJson(t.url);
    const items = first.status === 200 ? t.items(first.json) : -1;
    if (items !== want) throw new Error(`${t.url}: expected 200 with ${want} items, got ${first.status} with ${items}`);
    for (let i = 0; i < 10; i++) await get(t.url); // warm-up: JIT, connection
  }
  const samples = targets.map((): number[] => []);
  for (let i = 0; i < REQUESTS; i++) {
    // Alternate the order: a query runs faster right after the same query (warm CPU caches in Prometheus), which
    // would otherwise always favour whichever target comes second.
    const order = i % 2 === 0 ? [...targets.keys()] : [...targets.keys()].reverse();
    for (const k of order) {
      const t = targets[k]!;
      const a = await get(t.url);
      if (a.status !== 200) throw new Error(`${t.url}: HTTP ${a.status}: ${a.body.toString('utf8').slice(0, 300)}`);
      samples[k]!.push(a.ms);
    }
  }
  return samples;
}

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}
async function load(url: string): Promise<LoadResult> {
  const r = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    ...(url.startsWith('https:') ? { tlsOptions: { rejectUnauthorized: false } } : {}),
  } as autocannon.Options);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

// ---------------------------------------------------------------------------------------------------------------
// The adapter, as its own process

interface Adapter {
  url: string;
  metricsUrl: string;
  pid: number;
  probeFile: string;
  stop(): Promise<void>;
}
const dir = mkdtempSync(path.join(os.tmpdir(), 'pma-bench-'));
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<unknown>)[] = [];

async function startAdapter(name: string, args: string[], kubeconfig: string, prometheusUrl: string, readyPath: string, readyItems: number): Promise<Adapter & { startupMs: number }> {
  const port = await freeLoopbackPort();
  const metricsPort = await freeLoopbackPort();
  const probeFile = path.join(dir, `${name}.probe.jsonl`);
  const t0 = performance.now();
  const child = spawnAdapter(
    BIN,
    [...adapterArgs({ config: path.join(dir, 'rules.yaml'), port, kubeconfig, prometheusUrl }), '--max-objects-per-request=20000',
      `--metrics-bind-address=127.0.0.1:${metricsPort}`, ...args],
    { stdout: 'ignore', stderr: 'pipe', nodeArgs: ['--import', PROBE], env: RUNTIME.env({ ...process.env, PMA_SOAK_PROBE_FILE: probeFile, PMA_SOAK_PROBE_INTERVAL_MS: '1000' }), cgroup: RUNTIME.cgroup() },
  );
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const url = `https://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`adapter ${name} exited with ${child.exitCode}: ${stderr}`);
    const r = await getJson(`${url}${readyPath}`).catch(() => null);
    if (r?.status === 200 && r.json?.items?.length === readyItems) break;
    if (Date.now() > deadline) throw new Error(`adapter ${name} did not serve ${readyPath} within 60 s: ${stderr}`);
    await sleep(5);
  }
  const startupMs = performance.now() - t0;
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    pid: child.pid!,
    probeFile,
    startupMs,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      child.stdin?.end();
      children.delete(child);
    },
  };
}

/** bench/relay-floor.ts as its own process: TLS in, the same Prometheus round trip, TLS out, nothing else. */
async function startRelayFloor(prometheusUrl: string): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [path.join(REPO, 'bench', 'relay-floor.ts'), prometheusUrl], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench/relay-floor.ts exited with ${code}`)));
    child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
  });
  return {
    url: `https://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      await exited;
      children.delete(child);
    },
  };
}

// The report's mb() takes bytes, as for os.totalmem(); an adapter already gone reads as NaN rather than throwing
// inside the RSS sampler's interval.
const rssBytes = (pid: number): number => (procStatusMb(pid, 'VmRSS') ?? Number.NaN) * 2 ** 20;
/** The V8 heap limit the probe reported: what Node made of the memory it may use. */
function heapLimitMb(probeFile: string): string {
  try {
    const first = readFileSync(probeFile, 'utf8').split('\n')[0] ?? '';
    return (JSON.parse(first) as { heapLimitMb: number }).heapLimitMb.toFixed(0);
  } catch {
    return 'unknown';
  }
}

/** Worst event-loop lag p99 the probe reported since `sinceMs`. */
function lagP99Ms(probeFile: string, sinceMs: number): number {
  let text = '';
  try {
    text = readFileSync(probeFile, 'utf8');
  } catch {
    return Number.NaN;
  }
  let worst = Number.NaN;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const p = JSON.parse(line) as { t: number; lagP99Ms: number };
    if (p.t >= sinceMs) worst = Number.isNaN(worst) ? p.lagP99Ms : Math.max(worst, p.lagP99Ms);
  }
  return worst;
}

// ---------------------------------------------------------------------------------------------------------------
// Prometheus's own account of what it was asked

async function prometheusCounters(url: string): Promise<{ queries: number; bytes: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const families = readExposition(text);
  let queries = 0;
  let bytes = 0;
  for (const s of families.get('prometheus_http_requests_total')?.samples ?? []) if (s.labels['handler'] === '/api/v1/query') queries += s.value;
  for (const s of families.get('prometheus_http_response_size_bytes')?.samples ?? []) {
    if (s.name === 'prometheus_http_response_size_bytes_sum' && s.labels['handler'] === '/api/v1/query') bytes += s.value;
  }
  return { queries, bytes };
}

/**
 * What a Deployment's pod carries besides name and labels, about 1.5 KB: the watch caches receive all of it even
 * as metadata-only objects, so the adapter's memory is measured with it.
 */
function podMetadata(namespace: string, i: number): Record<string, unknown> {
  const hash = (i * 2654435761).toString(16).padStart(8, '0').slice(-8);
  const time = '2026-11-25T08:00:00Z';
  return {
    generateName: 'web-7c9d8-',
    uid: `${hash}-0000-4000-8000-${hash}${hash.slice(0, 4)}`,
    creationTimestamp: time,
    annotations: {
      'kubectl.kubernetes.io/restartedAt': time,
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '8080',
      'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true',
    },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7c9d8', uid: `rs-${namespace}`, controller: true, blockOwnerDeletion: true }],
    managedFields: [
      {
        manager: 'kube-controller-manager',
        operation: 'Update',
        apiVersion: 'v1',
        time,
        fieldsType: 'FieldsV1',
        fieldsV1: {
          'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {} }, 'f:ownerReferences': { '.': {}, [`k:{"uid":"rs-${namespace}"}`]: {} } },
          'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:ports': {}, 'f:resources': {} } }, 'f:dnsPolicy': {}, 'f:restartPolicy': {} },
        },
      },
      {
        manager: 'kubelet',
        operation: 'Update',
        apiVersion: 'v1',
        time,
        fieldsType: 'FieldsV1',
        subresource: 'status',
        fieldsV1: { 'f:status': { 'f:conditions': { 'k:{"type":"Ready"}': { '.': {}, 'f:lastProbeTime': {}, 'f:status': {}, 'f:type': {} } }, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:phase': {}, 'f:podIP': {}, 'f:startTime': {} } },
      },
    ],
  };
}

/**
 * Median time Prometheus itself spent evaluating each query text (its query log's execTotalTime), over the
 * queries the adapter sent: those are evaluated at whole seconds, the direct client's at the current time.
 */
function evaluationTimes(queryLog: string): Map<string, number> {
  const byQuery = new Map<string, number[]>();
  let text = '';
  try {
    text = readFileSync(queryLog, 'utf8');
  } catch {
    return new Map();
  }
  for (const line of text.split('\n')) {
    if (!line) continue;
    const entry = JSON.parse(line) as { params?: { query?: string; start?: string }; stats?: { timings?: { execTotalTime?: number } } };
    const query = entry.params?.query;
    const seconds = entry.stats?.timings?.execTotalTime;
    if (query === undefined || seconds === undefined || !entry.params?.start?.endsWith('.000Z')) continue;
    let list = byQuery.get(query);
    if (!list) byQuery.set(query, (list = []));
    list.push(seconds * 1000);
  }
  return new Map([...byQuery].map(([q, v]) => [q, quantile(v.sort((a, b) => a - b), 0.5)]));
}

/** Seconds the adapter spent, by its own account: serving requests, and waiting for Prometheus inside them. */
async function adapterTimes(adapter: Adapter): Promise<{ requests: number; requestSeconds: number; queries: number; querySeconds: number }> {
  const families = readExposition(await (await fetch(adapter.metricsUrl)).text());
  const sum = (family: string, sample: string): number =>
    (families.get(family)?.samples ?? []).filter((s) => s.name === sample).reduce((a, s) => a + s.value, 0);
  return {
    requests: sum(`${PREFIX}requests_duration_seconds`, `${PREFIX}requests_duration_seconds_count`),
    requestSeconds: sum(`${PREFIX}requests_duration_seconds`, `${PREFIX}requests_duration_seconds_sum`),
    queries: sum(`${PREFIX}prometheus_query_duration_seconds`, `${PREFIX}prometheus_query_duration_seconds_count`),
    querySeconds: sum(`${PREFIX}prometheus_query_duration_seconds`, `${PREFIX}prometheus_query_duration_seconds_sum`),
  };
}

/**
 * The counters once Prometheus has finished what the last load left queued: autocannon stops sending at the end
 * of its time, but answers still in flight are counted when they complete, and would be charged to the next load.
 */
async function settledCounters(url: string): Promise<{ queries: number; bytes: number }> {
  let last = await prometheusCounters(url);
  for (;;) {
    await sleep(250);
    const next = await prometheusCounters(url);
    if (next.queries === last.queries) return next;
    last = next;
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  warnIfStaleBuild(BIN, 'bench:latency', say);
  const now = Math.floor(Date.now() / 1000);
  const start = now - 1800;
  const series: SeriesSpec[] = [];
  for (const pods of SCALES) {
    for (let i = 0; i < pods; i++) {
      series.push({ name: SERIES, type: 'counter', labels: { namespace: ns(pods), pod: `web-${i}`, container: 'app' }, value: (t) => (0.1 + (i % 1000) / 1000) * (t - start) });
    }
  }
  say(`backfilling ${series.length} series and starting Prometheus`);
  const prometheus = await startPrometheus({ series, fromSeconds: start, toSeconds: now + 3600, stepSeconds: 15 });
  cleanups.push(() => prometheus.stop());
  const kube = await startFakeKubeApiServer();
  cleanups.push(() => kube.stop());
  for (const pods of SCALES) for (let i = 0; i < pods; i++) kube.addPod(ns(pods), `web-${i}`, { app: 'web' }, { metadata: { name: `web-${i}`, ...podMetadata(ns(pods), i) } });
  const query = `sum by (<<.GroupBy>>) (rate(${SERIES}{<<.LabelMatchers>>}[<<.Window>>]))`;
  writeFileSync(
    path.join(dir, 'rules.yaml'),
    // cpu: the default scope, one query per namespace whatever the selector; cpu_by_name: the pod names in the
    // query, as prometheus-adapter's rules always do, to show how that query grows.
    `metrics:\n- name: cpu\n  resource: pods\n  windows: [1m]\n  query: ${query}\n` +
      `- name: cpu_by_name\n  resource: pods\n  windows: [1m]\n  queryScope: objects\n  query: ${query}\n`,
  );

  const relay = await startRelayFloor(prometheus.url);
  cleanups.push(() => relay.stop());

  const largest = Math.max(...SCALES);
  say('measuring start-up time');
  const startups: number[] = [];
  for (let i = 0; i < STARTUPS; i++) {
    const a = await startAdapter(`startup-${i}`, [], kube.kubeconfigPath, prometheus.url, metricPath(largest, 'cpu_1m'), largest);
    startups.push(a.startupMs);
    await a.stop();
  }

  const cached = await startAdapter('cached', ['--query-cache-ttl=1h'], kube.kubeconfigPath, prometheus.url, metricPath(SCALES[0]!, 'cpu_1m'), SCALES[0]!);
  const uncached = await startAdapter('uncached', ['--query-cache-ttl=0'], kube.kubeconfigPath, prometheus.url, metricPath(SCALES[0]!, 'cpu_1m'), SCALES[0]!);
  const idleRss = { cached: rssBytes(cached.pid), uncached: rssBytes(uncached.pid) };

  interface Row {
    pods: number;
    /** Mean time the uncached adapter took per request by its own clock, and of that, per Prometheus query. */
    serverMs: number;
    promql: string;
    /** Median time Prometheus spent evaluating the adapter's query, by its query log. */
    evalMs: number;
    queryMs: number;
    cached: ReturnType<typeof summary>;
    uncached: ReturnType<typeof summary>;
    direct: ReturnType<typeof summary>;
    relay: ReturnType<typeof summary>;
    codec: ReturnType<typeof summary>;
    load: { cached: LoadResult[]; uncached: LoadResult[]; direct: LoadResult[] };
    queriesPerRequest: number;
    promBytesPerRequest: number;
    answerBytes: number;
    longest: { cpu: number; byName: number; byNameStatus: number };
    cachedQueriesPerRequestUnderLoad: number;
    rssUnderLoad: { cached: number; uncached: number };
    lagP99: { cached: number; uncached: number };
  }
  const rows: Row[] = [];
  const items = (json: any): number => json?.items?.length ?? -1;
  const results = (json: any): number => json?.data?.result?.length ?? -1;

  for (const pods of SCALES) {
    const cpuPath = metricPath(pods, 'cpu_1m');
    // The exact PromQL the adapter sends, read from Prometheus's query log, is what the direct client sends.
    const logBefore = (await prometheus.queryLog()).length;
    const counters0 = await prometheusCounters(prometheus.url);
    const probe = await getJson(`${uncached.url}${cpuPath}`);
    const counters1 = await prometheusCounters(prometheus.url);
    const sent = (await prometheus.queryLog()).slice(logBefore);
    const promql = sent[sent.length - 1];
    if (probe.status !== 200 || items(probe.json) !== pods || promql === undefined) {
      throw new Error(`${cpuPath}: HTTP ${probe.status}, ${items(probe.json)} items, queries seen: ${sent.length}`);
    }
    const directUrl = `${prometheus.url}/api/v1/query?${new URLSearchParams({ query: promql })}`;
    const relayUrl = `${relay.url}/?${new URLSearchParams({ query: promql, bytes: String(probe.bytes) })}`;
    const codecUrl = `${relay.url}/?${new URLSearchParams({ query: promql, codec: `${ns(pods)}/cpu_1m/60` })}`;
    // The codec floor must do the adapter's work: its answer is the adapter's items (in Prometheus's order, and
    // evaluated a moment apart: compared without order and timestamps).
    const codecProbe = await getJson(codecUrl);
    const comparable = (json: any): string =>
      JSON.stringify(((json?.items ?? []) as { timestamp?: string; describedObject: { name: string } }[]).map(({ timestamp: _t, ...rest }) => rest).sort((a, b) => (a.describedObject.name < b.describedObject.name ? -1 : 1)));
    if (codecProbe.status !== 200 || comparable(codecProbe.json) !== comparable(probe.json)) {
      throw new Error(`codec floor: HTTP ${codecProbe.status}, ${items(codecProbe.json)} items, ${codecProbe.bytes} bytes: not the adapter's answer (${pods} items, ${probe.bytes} bytes)`);
    }

    const byNameBefore = (await prometheus.queryLog()).length;
    const byName = await getJson(`${uncached.url}${metricPath(pods, 'cpu_by_name_1m')}`);
    const byNameSent = (await prometheus.queryLog()).slice(byNameBefore);

    say(`${pods} pods: sequential requests, ${RUNS} runs of ${REQUESTS}`);
    const seq = { cached: [] as number[][], uncached: [] as number[][], direct: [] as number[][], relay: [] as number[][], codec: [] as number[][] };
    const times = { requests: 0, requestSeconds: 0, queries: 0, querySeconds: 0 };
    for (let run = 0; run < RUNS; run++) {
      const [c] = await interleaved([{ url: `${cached.url}${cpuPath}`, items }], pods);
      const t0 = await adapterTimes(uncached);
      // The pair whose ratio is reported sees the same Prometheus.
      const [u, d, f, k] = await interleaved(
        [
          { url: `${uncached.url}${cpuPath}`, items },
          { url: directUrl, items: results },
          { url: relayUrl, items: () => pods },
          { url: codecUrl, items },
        ],
        pods,
      );
      const t1 = await adapterTimes(uncached);
      for (const k of Object.keys(times) as (keyof typeof times)[]) times[k] += t1[k] - t0[k];
      seq.cached.push(c!);
      seq.uncached.push(u!);
      seq.direct.push(d!);
      seq.relay.push(f!);
      seq.codec.push(k!);
    }

    say(`${pods} pods: ${CONNECTIONS} connections for ${SECONDS} s, ${RUNS} runs`);
    const loads = { cached: [] as LoadResult[], uncached: [] as LoadResult[], direct: [] as LoadResult[] };
    const rssUnderLoad = { cached: 0, uncached: 0 };
    const loadStarted = Date.now();
    let cachedQueries = 0;
    let cachedRequests = 0;
    for (let run = 0; run < RUNS; run++) {
      for (const target of ['cached', 'uncached', 'direct'] as const) {
        const adapter = target === 'cached' ? cached : target === 'uncached' ? uncached : null;
        const before = await settledCounters(prometheus.url);
        let peak = 0;
        const sampler = adapter ? setInterval(() => (peak = Math.max(peak, rssBytes(adapter.pid))), 200) : null;
        const r = await load(adapter ? `${adapter.url}${cpuPath}` : directUrl);
        if (sampler) clearInterval(sampler);
        if (adapter) rssUnderLoad[target as 'cached' | 'uncached'] = Math.max(rssUnderLoad[target as 'cached' | 'uncached'], peak);
        if (target === 'cached') {
          cachedQueries += (await prometheusCounters(prometheus.url)).queries - before.queries;
          cachedRequests += r.rps * SECONDS;
        }
        if (r.non2xx > 0 || r.errors > 0) say(`  ${target}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
        loads[target].push(r);
      }
    }
    await sleep(1100); // one more probe interval, so the lag of the last load is on file

    rows.push({
      pods,
      serverMs: (times.requestSeconds / times.requests) * 1000,
      promql,
      evalMs: Number.NaN,
      queryMs: (times.querySeconds / times.queries) * 1000,
      cached: summary(seq.cached),
      uncached: summary(seq.uncached),
      direct: summary(seq.direct),
      relay: summary(seq.relay),
      codec: summary(seq.codec),
      load: loads,
      queriesPerRequest: counters1.queries - counters0.queries,
      promBytesPerRequest: counters1.bytes - counters0.bytes,
      answerBytes: probe.bytes,
      longest: { cpu: Math.max(...sent.map((q) => q.length)), byName: Math.max(0, ...byNameSent.map((q) => q.length)), byNameStatus: byName.status },
      cachedQueriesPerRequestUnderLoad: cachedRequests > 0 ? cachedQueries / cachedRequests : Number.NaN,
      rssUnderLoad,
      lagP99: { cached: lagP99Ms(cached.probeFile, loadStarted), uncached: lagP99Ms(uncached.probeFile, loadStarted) },
    });
  }

  await cached.stop();
  await uncached.stop();
  const evaluation = evaluationTimes(path.join(path.dirname(prometheus.dataDir), 'query.log'));
  for (const r of rows) r.evalMs = evaluation.get(r.promql) ?? Number.NaN;

  const cpu = os.cpus();
  const commit = (() => {
    try {
      return readFileSync(path.join(REPO, '.git', 'HEAD'), 'utf8').startsWith('ref:')
        ? readFileSync(path.join(REPO, '.git', readFileSync(path.join(REPO, '.git', 'HEAD'), 'utf8').slice(5).trim()), 'utf8').trim().slice(0, 12)
        : readFileSync(path.join(REPO, '.git', 'HEAD'), 'utf8').trim().slice(0, 12);
    } catch {
      return 'unknown';
    }
  })();
  const out: string[] = [];
  const p = (line = ''): void => void out.push(line);
  p(`machine: ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${mb(os.totalmem())} MiB, Node ${process.versions.node}, commit ${commit}`);
  p(`${RUNTIME.note()} (V8 heap limit in the adapters: ${heapLimitMb(uncached.probeFile)} MB).`);
  p(`runs: ${RUNS}; sequential: ${REQUESTS} requests a run after 10 warm-up, one keep-alive connection per target, uncached, direct, relay-floor and codec-floor requests in turn, the order reversed every other round; load: ${CONNECTIONS} connections for ${SECONDS} s a run.`);
  p('Latency figures are median / p99 in ms over all samples of all runs; parentheses: the lowest and highest run median.');
  p();
  p('### One HPA: sequential `pods/*/cpu_1m?labelSelector=app=web`');
  p();
  p('| pods | adapter, warm cache | adapter, uncached | Prometheus directly, same PromQL | uncached / direct (median) | relay floor (Node HTTPS, no processing) | relay / direct | codec floor (relay + the adapter\'s reader and writer) | codec / direct | uncached, adapter\'s clock: request / query (mean) | Prometheus evaluation (query log, median) |');
  p('|---:|---|---|---|---:|---|---:|---|---:|---|---:|');
  for (const r of rows) {
    const cell = (s: ReturnType<typeof summary>): string => `${ms(s.median)} / ${ms(s.p99)}${spread(s.runMedians)}`;
    p(`| ${r.pods} | ${cell(r.cached)} | ${cell(r.uncached)} | ${cell(r.direct)} | ${(r.uncached.median / r.direct.median).toFixed(2)}x | ${cell(r.relay)} | ${(r.relay.median / r.direct.median).toFixed(2)}x | ${cell(r.codec)} | ${(r.codec.median / r.direct.median).toFixed(2)}x | ${ms(r.serverMs)} / ${ms(r.queryMs)} | ${ms(r.evalMs)} |`);
  }
  p();
  p(`### ${CONNECTIONS} HPAs at once: ${CONNECTIONS} connections, requests/s and latency median / p99 (ms)`);
  p();
  p('| pods | adapter, warm cache | adapter, uncached | Prometheus directly | Prometheus queries per cached answer |');
  p('|---:|---|---|---|---:|');
  for (const r of rows) {
    const cell = (l: LoadResult[]): string => {
      const rps = l.map((x) => x.rps).sort((a, b) => a - b);
      const p50 = l.map((x) => x.p50).sort((a, b) => a - b);
      const p99 = l.map((x) => x.p99).sort((a, b) => a - b);
      return `${quantile(rps, 0.5).toFixed(0)} req/s, ${ms(quantile(p50, 0.5))} / ${ms(quantile(p99, 0.5))}`;
    };
    p(`| ${r.pods} | ${cell(r.load.cached)} | ${cell(r.load.uncached)} | ${cell(r.load.direct)} | ${r.cachedQueriesPerRequestUnderLoad.toFixed(5)} |`);
  }
  p();
  p('### Cost of one uncached HPA request');
  p();
  p('| pods | Prometheus queries | bytes from Prometheus | bytes of the answer | longest PromQL (namespace scope) | longest PromQL (names in the query) |');
  p('|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    p(`| ${r.pods} | ${r.queriesPerRequest} | ${r.promBytesPerRequest} | ${r.answerBytes} | ${r.longest.cpu} chars | ${r.longest.byName} chars (HTTP ${r.longest.byNameStatus}) |`);
  }
  p();
  p('### The adapter process under load');
  p();
  p(`RSS when idle after start: warm-cache adapter ${mb(idleRss.cached)} MiB, uncached adapter ${mb(idleRss.uncached)} MiB.`);
  p();
  p('| pods | RSS peak under load, warm cache | RSS peak, uncached | event-loop lag p99 (worst 1 s window), warm cache | lag p99, uncached |');
  p('|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    p(`| ${r.pods} | ${mb(r.rssUnderLoad.cached)} MiB | ${mb(r.rssUnderLoad.uncached)} MiB | ${ms(r.lagP99.cached)} ms | ${ms(r.lagP99.uncached)} ms |`);
  }
  p();
  const st = summary([startups]);
  p(`Start-up to the first served \`pods/*\` answer (${largest} pods; process spawn, TLS, rule load, pod cache sync, query), ${STARTUPS} starts: median ${ms(st.median)} ms, p99 ${ms(st.p99)} ms.`);
  console.log(out.join('\n'));
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  tlsAgent.destroy();
  plainAgent.destroy();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
