/**
 * Soak run: the packaged adapter (bin/prometheus-metrics-adapter.js, a separate process) under a steady load from
 * autocannon for a bounded time, while the real Prometheus behind it is SIGKILLed at 40% of the run and replaced at
 * 60%. Reports requests, errors by status inside and outside the outage, latency percentiles per phase, and the
 * adapter's RSS (and, through bench/soak-probe.ts, its event-loop lag and heap) over time.
 *
 *   npm run bench:soak -- [--minutes 10] [--pods 200] [--connections 16] [--namespaces 4] [--grace 5] [--interval 10]
 *                         [--no-probe] [--adapter-bin <path to another checkout's bin/prometheus-metrics-adapter.js>]
 *                         [--memory-limit <quantity>|none] [--node-options <NODE_OPTIONS>|none] (default: as deploy/20-deployment.yaml runs the adapter)
 *
 * Everything listens on 127.0.0.1: a real Prometheus with backfilled data, a FAKE Kubernetes API for the pod list,
 * and a TCP proxy in front of Prometheus so that the replacement can come up on another port behind the address the
 * adapter was started with. Exit code 0 when the run completes with the adapter alive, 1 if it died or the setup
 * failed, 130 when interrupted. The report's checks (errors only in the outage, stable RSS) are printed, not enforced.
 */
import autocannon from 'autocannon';
import { type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, createReadStream, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freeLoopbackPort, startPrometheus, type PrometheusProcess, type SeriesSpec, type StartPrometheusOptions } from '../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer } from '../test/harness/fake-kube-apiserver.ts';
import { AdapterRuntime, adapterArgs, httpsGet, lastLines, procStatusMb, sleep, spawnAdapter, warnIfStaleBuild } from './adapter-process.ts';

// ---------------------------------------------------------------------------------------------------------------
// Options

function numberArg(name: string, def: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${name} must be a number in [${min}, ${max}], got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
}
const MINUTES = numberArg('minutes', 10, 0.25, 240);
const PODS = Math.floor(numberArg('pods', 200, 8, 20_000));
const CONNECTIONS = Math.floor(numberArg('connections', 16, 1, 1024));
const NAMESPACES = Math.floor(numberArg('namespaces', 4, 1, 50));
const GRACE_S = numberArg('grace', 5, 0, 120);
const INTERVAL_S = numberArg('interval', 10, 1, 600);
const PROBE = !process.argv.includes('--no-probe');
const RUNTIME = new AdapterRuntime(process.argv);
const binIndex = process.argv.indexOf('--adapter-bin');

const RUN_MS = Math.round(MINUTES * 60_000);
const KILL_AT_MS = Math.round(RUN_MS * 0.4);
const RESTART_AT_MS = Math.round(RUN_MS * 0.6);
const GRACE_MS = GRACE_S * 1000;
// Setup (backfill, adapter start, cache sync) and teardown are a few seconds each; anything far beyond that is a hang.
const HARD_DEADLINE_MS = RUN_MS + 5 * 60_000;

const REPO = fileURLToPath(new URL('..', import.meta.url));
// Another checkout's launcher can be soaked instead, e.g. a build of a release tag next to the working tree.
const BIN = binIndex === -1 ? path.join(REPO, 'bin', 'prometheus-metrics-adapter.js') : path.resolve(process.argv[binIndex + 1] ?? '');
const PROBE_MODULE = path.join(REPO, 'bench', 'soak-probe.ts');

const wallStart = Date.now();
const stamp = (): string => new Date().toISOString().slice(11, 19);
const say = (m: string): void => console.log(`${stamp()} ${m}`);

// ---------------------------------------------------------------------------------------------------------------
// Latency histogram: log buckets 1% wide from 1 µs, so memory stays constant however long the run and percentiles
// are within 0.5% of the exact value.

const BUCKETS = 2500;
const LOG_RATIO = Math.log(1.01);

class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  record(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const i = Math.min(BUCKETS - 1, Math.floor(Math.log(us) / LOG_RATIO));
    this.counts[i]! += 1;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  add(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
  }

  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const target = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) return Math.min(this.max, Math.exp((i + 0.5) * LOG_RATIO) / 1000);
    }
    return this.max;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Request accounting

type Phase = 'before' | 'down' | 'after';
const PHASES: readonly Phase[] = ['before', 'down', 'after'];

class Tally {
  ok = 0;
  /** sinceStart() of the first and last failure, to show how fast errors start and stop around the outage. */
  firstErrorAt: number | null = null;
  lastErrorAt: number | null = null;
  /** Non-2xx HTTP statuses by code, and transport failures by error code ("ECONNRESET", "timeout"). */
  readonly errors = new Map<string, number>();
  readonly latency = new Histogram();

  get total(): number {
    let n = this.ok;
    for (const v of this.errors.values()) n += v;
    return n;
  }

  get errorCount(): number {
    let n = 0;
    for (const v of this.errors.values()) n += v;
    return n;
  }

  error(key: string): void {
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    const at = sinceStart();
    this.firstErrorAt ??= at;
    this.lastErrorAt = at;
  }
}

const phaseTally: Record<Phase, Tally> = { before: new Tally(), down: new Tally(), after: new Tally() };
let intervalTally = new Tally();

/** Milliseconds since the load started; every timestamp of the run is on this clock. */
let t0 = 0;
const sinceStart = (): number => performance.now() - t0;
let killedAt: number | null = null;
let restoredAt: number | null = null;

/** The down window runs from the SIGKILL to GRACE after the replacement answered /-/ready. */
function phaseAt(at: number): Phase {
  if (killedAt === null || at < killedAt) return 'before';
  if (restoredAt === null || at < restoredAt + GRACE_MS) return 'down';
  return 'after';
}
const phaseNow = (): Phase => phaseAt(sinceStart());

function recordResponse(status: number, ms: number): void {
  const tallies = [phaseTally[phaseNow()], intervalTally];
  for (const t of tallies) {
    if (status >= 200 && status < 300) t.ok++;
    else t.error(String(status));
    t.latency.record(ms);
  }
}

function recordTransportError(err: unknown): void {
  const e = err as { code?: string; message?: string };
  const key = e.code ?? (e.message === 'request timed out' ? 'timeout' : (e.message ?? 'error'));
  phaseTally[phaseNow()].error(key);
  intervalTally.error(key);
}

// ---------------------------------------------------------------------------------------------------------------
// Synthetic cluster: pods spread over namespaces, each with an app and a tier label, and three series per pod that
// are pure functions of time, so the replacement Prometheus serves exactly the same answers.

const APPS = ['web', 'api', 'worker', 'cache'] as const;
const TIER: Record<(typeof APPS)[number], string> = { web: 'frontend', api: 'frontend', worker: 'backend', cache: 'backend' };
interface Pod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
}
const pods: Pod[] = [];
for (let i = 0; i < PODS; i++) {
  const app = APPS[Math.floor(i / NAMESPACES) % APPS.length]!;
  pods.push({ namespace: `soak-${i % NAMESPACES}`, name: `${app}-${i}`, labels: { app, tier: TIER[app] } });
}

const dataStart = Math.floor(Date.now() / 1000) - 1800;
const series: SeriesSpec[] = [];
pods.forEach((p, i) => {
  const base = { namespace: p.namespace, pod: p.name };
  series.push({ name: 'soak_cpu_seconds_total', type: 'counter', labels: { ...base, container: 'app' }, value: (t) => (0.05 + (i % 20) / 100) * (t - dataStart) });
  series.push({ name: 'soak_memory_bytes', type: 'gauge', labels: { ...base, container: 'app' }, value: (t) => 2 ** 27 + i * 2 ** 20 + 2 ** 23 * Math.sin(t / 300 + i) });
  series.push({ name: 'soak_http_requests_total', type: 'counter', labels: { ...base, code: '200' }, value: (t) => (1 + (i % 10)) * (t - dataStart) });
});
const prometheusOptions: StartPrometheusOptions = {
  series,
  fromSeconds: dataStart,
  // Beyond the run plus setup, teardown and the 5m lookback, so no query ever falls off the end of the data.
  toSeconds: Math.floor(Date.now() / 1000) + Math.ceil(HARD_DEADLINE_MS / 1000) + 3600,
  stepSeconds: 15,
};

const RULES = `metrics:
- name: cpu
  resource: pods
  windows: [1m]
  query: sum by (<<.GroupBy>>) (rate(soak_cpu_seconds_total{<<.LabelMatchers>>}[<<.Window>>]))
- name: memory_bytes
  resource: pods
  query: sum by (<<.GroupBy>>) (soak_memory_bytes{<<.LabelMatchers>>})
- name: http_requests_per_second
  resource: pods
  windows: [1m]
  query: sum by (<<.GroupBy>>) (rate(soak_http_requests_total{<<.LabelMatchers>>}[<<.Window>>]))
- name: namespace_http_requests_per_second
  resource: namespaces
  objectLabel: namespace
  windows: [1m]
  query: sum by (<<.GroupBy>>) (rate(soak_http_requests_total{<<.LabelMatchers>>}[<<.Window>>]))
`;

const ns = (k: number): string => `soak-${k % NAMESPACES}`;
const podsIn = (namespace: string, match: (p: Pod) => boolean = () => true): number => pods.filter((p) => p.namespace === namespace && match(p)).length;
// With few --pods a namespace can lack an app (8 pods leave soak-2 without a worker); any pod of the namespace asks
// the same single-object path then, where the mix would otherwise fail to build.
const firstPod = (namespace: string, app: string): string =>
  (pods.find((p) => p.namespace === namespace && p.labels['app'] === app) ?? pods.find((p) => p.namespace === namespace)!).name;
const V2 = '/apis/custom.metrics.k8s.io/v1beta2';
const V1 = '/apis/custom.metrics.k8s.io/v1beta1';
/** The request mix, with the item count each answer must have (checked once before the load starts). */
const MIX: { path: string; items: number }[] = [
  { path: `${V2}/namespaces/${ns(0)}/pods/*/cpu_1m?labelSelector=app%3Dweb`, items: podsIn(ns(0), (p) => p.labels['app'] === 'web') },
  { path: `${V2}/namespaces/${ns(1)}/pods/*/cpu_1m?labelSelector=tier%3Dbackend`, items: podsIn(ns(1), (p) => p.labels['tier'] === 'backend') },
  { path: `${V2}/namespaces/${ns(2)}/pods/*/memory_bytes?labelSelector=app%20in%20(web%2Capi)`, items: podsIn(ns(2), (p) => p.labels['app'] === 'web' || p.labels['app'] === 'api') },
  { path: `${V2}/namespaces/${ns(3)}/pods/*/http_requests_per_second_1m`, items: podsIn(ns(3)) },
  { path: `${V1}/namespaces/${ns(0)}/pods/*/http_requests_per_second_1m?labelSelector=app!%3Dcache`, items: podsIn(ns(0), (p) => p.labels['app'] !== 'cache') },
  { path: `${V2}/namespaces/${ns(1)}/pods/${firstPod(ns(1), 'web')}/cpu_1m`, items: 1 },
  { path: `${V2}/namespaces/${ns(2)}/pods/${firstPod(ns(2), 'worker')}/memory_bytes`, items: 1 },
  { path: `${V1}/namespaces/${ns(3)}/pods/${firstPod(ns(3), 'api')}/http_requests_per_second_1m`, items: 1 },
  { path: `${V2}/namespaces/${ns(1)}/metrics/namespace_http_requests_per_second_1m`, items: 1 },
];

// ---------------------------------------------------------------------------------------------------------------
// TCP proxy: the adapter's --prometheus-url points here for the whole run; the upstream port changes when the
// replacement Prometheus starts. While the upstream is dead, connections are accepted and then reset, which is what
// a Service in front of a crashed Prometheus pod looks like to the adapter.

interface Proxy {
  port: number;
  upstreamPort: number;
  accepted: number;
  upstreamFailures: number;
  close(): Promise<void>;
}

async function startProxy(upstreamPort: number): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const state = { upstreamPort, accepted: 0, upstreamFailures: 0 };
  const server = net.createServer((client) => {
    state.accepted++;
    const upstream = net.connect(state.upstreamPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
    });
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    upstream.on('error', () => {
      if (!connected) state.upstreamFailures++;
      // resetAndDestroy makes the adapter see ECONNRESET, as it would from a dead endpoint, rather than a clean EOF.
      client.resetAndDestroy();
      teardown();
    });
    client.on('error', teardown);
    upstream.on('close', teardown);
    client.on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get upstreamPort() {
      return state.upstreamPort;
    },
    set upstreamPort(p: number) {
      state.upstreamPort = p;
    },
    get accepted() {
      return state.accepted;
    },
    get upstreamFailures() {
      return state.upstreamFailures;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** startPrometheus does not hand out the pid, and only a SIGKILL of Prometheus itself is a crash. */
function prometheusPid(dataDir: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    // The watchdog shell next to it has the same arguments; only the exec'd process has prometheus as argv[0].
    if (path.basename(argv[0] ?? '') === 'prometheus' && argv.includes(`--storage.tsdb.path=${dataDir}`)) return Number(entry);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// The adapter process

interface AdapterExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/**
 * The adapter logs straight into a file. Through a pipe to this process, which is busy generating load, the burst of
 * warnings while Prometheus is down (two per failed request) would back up into pino's buffer inside the adapter and
 * show up as the adapter's own memory growth.
 */
interface LogSummary {
  /** warn/error/fatal lines by level and message, split by the phase their timestamp falls in. */
  counts: Map<string, Record<Phase, number>>;
  lines: number;
  tail: string[];
}

async function summarizeLog(file: string, loadStartedWall: number): Promise<LogSummary> {
  const counts = new Map<string, Record<Phase, number>>();
  const tail: string[] = [];
  let lines = 0;
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    if (line === '') continue;
    lines++;
    tail.push(line.length > 400 ? `${line.slice(0, 400)}...` : line);
    if (tail.length > 30) tail.shift();
    const m = /"level":(\d+)/.exec(line);
    const level = m ? Number(m[1]) : 50;
    if (level < 40) continue;
    const msg = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    const key = `${level >= 60 ? 'fatal' : level >= 50 ? 'error' : 'warn'}: ${msg.length > 90 ? `${msg.slice(0, 90)}...` : msg}`;
    if (!counts.has(key) && counts.size >= 40) continue;
    const time = Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? '');
    const c = counts.get(key) ?? { before: 0, down: 0, after: 0 };
    // Lines from startup count as "before"; a line without a time is counted where the outage would not hide it.
    c[Number.isFinite(time) ? phaseAt(Math.max(0, time - loadStartedWall)) : 'after']++;
    counts.set(key, c);
  }
  return { counts, lines, tail };
}

function logHasFatal(file: string): boolean {
  try {
    return /"level":60/.test(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

interface ProbeLine {
  t: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
}
function readProbe(file: string): ProbeLine[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ProbeLine);
  } catch {
    return [];
  }
}

const fmt = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const fmtErrors = (m: Map<string, number>): string =>
  m.size === 0 ? '-' : [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(' ');

// ---------------------------------------------------------------------------------------------------------------
// Main

const cleanups: (() => Promise<void> | void)[] = [];
let adapter: ChildProcess | null = null;
let adapterExit: AdapterExit | null = null;
let shuttingDown = false;

async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      say(`cleanup: ${(err as Error).message}`);
    }
  }
}

const hardDeadline = setTimeout(() => {
  say(`hard deadline (${HARD_DEADLINE_MS / 1000} s) reached: killing everything`);
  adapter?.kill('SIGKILL');
  // startPrometheus's exit hook SIGKILLs any Prometheus still running.
  process.exit(3);
}, HARD_DEADLINE_MS);
hardDeadline.unref();

let interrupted = 0;
let stopLoad: (() => void) | null = null;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted++;
    if (interrupted === 1 && stopLoad !== null) {
      say(`${sig}: stopping the load early; the report follows`);
      stopLoad();
      return;
    }
    say(`${sig}: cleaning up and exiting`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const stale = warnIfStaleBuild(BIN, 'bench:soak', say);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'pma-soak-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const rulesFile = path.join(dir, 'rules.yaml');
  writeFileSync(rulesFile, RULES);
  const probeFile = path.join(dir, 'probe.jsonl');

  say(`backfilling ${series.length} series for ${PODS} pods in ${NAMESPACES} namespaces and starting Prometheus`);
  let prometheus: PrometheusProcess = await startPrometheus(prometheusOptions);
  let replacing: Promise<unknown> | null = null;
  // stop() is idempotent; whichever instance is current at the end gets stopped, once a replacement that was still
  // starting when the load ended has come up.
  cleanups.push(async () => {
    await replacing;
    await prometheus.stop();
  });
  const proxy = await startProxy(prometheus.port);
  cleanups.push(() => proxy.close());
  say(`Prometheus ${prometheus.url}, proxy 127.0.0.1:${proxy.port} -> :${proxy.upstreamPort}`);

  const kube = await startFakeKubeApiServer();
  cleanups.push(() => kube.stop());
  for (let k = 0; k < NAMESPACES; k++) kube.addNamespace(ns(k));
  for (const p of pods) kube.addPod(p.namespace, p.name, p.labels);

  const port = await freeLoopbackPort();
  const adapterUrl = `https://127.0.0.1:${port}`;
  const args = [
    ...adapterArgs({ config: rulesFile, port, kubeconfig: kube.kubeconfigPath, prometheusUrl: `http://127.0.0.1:${proxy.port}` }),
    '--query-cache-ttl=1s',
  ];
  const logFile = path.join(dir, 'adapter.log');
  const logFd = openSync(logFile, 'a');
  const child = spawnAdapter(BIN, args, {
    stdout: logFd,
    stderr: logFd,
    nodeArgs: PROBE ? ['--import', pathToFileURL(PROBE_MODULE).href] : [],
    env: RUNTIME.env({ ...process.env, PMA_SOAK_PROBE_FILE: probeFile, PMA_SOAK_PROBE_INTERVAL_MS: String(INTERVAL_S * 1000) }),
    cgroup: RUNTIME.cgroup(),
  });
  adapter = child;
  const pid = child.pid!;
  const exited = new Promise<AdapterExit>((resolve) => {
    child.once('exit', (code, signal) => {
      adapterExit = { code, signal, at: t0 === 0 ? 0 : sinceStart() };
      resolve(adapterExit);
    });
  });
  closeSync(logFd);
  cleanups.push(async () => {
    if (adapterExit === null) {
      child.kill('SIGKILL');
      await exited;
    }
    child.stdin!.end();
  });

  const readyBy = Date.now() + 60_000;
  for (;;) {
    if (adapterExit !== null) throw new Error(`the adapter exited during startup (${describeExit(adapterExit)}):\n${lastLines(logFile, 30)}`);
    // After a fatal startup error the adapter can linger with its exit code set but handles still open.
    if (logHasFatal(logFile)) throw new Error(`the adapter logged a fatal error during startup and is not serving:\n${lastLines(logFile, 30)}`);
    const r = await httpsGet(`${adapterUrl}/readyz`, 2000).catch(() => null);
    if (r?.status === 200) break;
    if (Date.now() > readyBy) throw new Error(`the adapter was not ready after 60 s:\n${lastLines(logFile, 30)}`);
    await sleep(100);
  }
  const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  say(`adapter pid ${pid} (${argv0}) ready at ${adapterUrl}, RSS ${fmt(procStatusMb(pid, 'VmRSS') ?? Number.NaN)} MB`);

  // The informers fill their caches after readyz; load before that would blame the outage for startup errors.
  const syncedBy = Date.now() + 60_000;
  for (const m of MIX) {
    for (;;) {
      const r = await httpsGet(`${adapterUrl}${m.path}`, 5000).catch((e: Error) => ({ status: 0, body: e.message }));
      let items = -1;
      try {
        items = (JSON.parse(r.body) as { items?: unknown[] }).items?.length ?? -1;
      } catch {
        // not JSON; reported below if it never settles
      }
      if (r.status === 200 && items === m.items) break;
      if (Date.now() > syncedBy) throw new Error(`${m.path}: expected 200 with ${m.items} items, got ${r.status}: ${r.body.slice(0, 300)}`);
      await sleep(200);
    }
  }
  say(`all ${MIX.length} paths answer with the expected item counts`);
  const rssIdle = procStatusMb(pid, 'VmRSS');

  // ---- load -------------------------------------------------------------------------------------------------
  interface RssSample {
    at: number;
    rssMb: number;
  }
  const rss: RssSample[] = [];
  const events: string[] = [];
  const event = (m: string): void => {
    const line = `+${fmt(sinceStart() / 1000)}s ${m}`;
    events.push(line);
    say(line);
  };
  let killError: string | null = null;
  let restartMs: number | null = null;

  const timers: NodeJS.Timeout[] = [];
  let finishLoad!: (r: autocannon.Result | null) => void;
  const loadDone = new Promise<autocannon.Result | null>((resolve) => (finishLoad = resolve));
  const instance = autocannon(
    {
      url: adapterUrl,
      connections: CONNECTIONS,
      duration: RUN_MS / 1000,
      requests: MIX.map((m) => ({ method: 'GET', path: m.path })),
      tlsOptions: { rejectUnauthorized: false },
      // Well above any answer the adapter gives, Prometheus down or not; a timeout here means the adapter hung.
      timeout: 10,
    },
    (err, result) => {
      if (err) say(`autocannon: ${(err as Error).message}`);
      finishLoad(err ? null : result);
    },
  );
  stopLoad = () => instance.stop();
  t0 = performance.now();
  const loadStartedWall = Date.now();
  instance.on('response', (_client, statusCode, _bytes, responseTime) => recordResponse(statusCode, responseTime));
  instance.on('reqError', recordTransportError);
  rss.push({ at: 0, rssMb: procStatusMb(pid, 'VmRSS') ?? Number.NaN });
  say(`load: ${CONNECTIONS} keep-alive HTTPS connections cycling through ${MIX.length} paths for ${MINUTES} min; SIGKILL Prometheus at +${KILL_AT_MS / 1000}s, replace it at +${RESTART_AT_MS / 1000}s`);

  void exited.then((e) => {
    if (t0 === 0 || shuttingDown) return;
    event(`ADAPTER EXITED (${describeExit(e)}); stopping the load`);
    instance.stop();
  });

  timers.push(
    setTimeout(() => {
      const pidProm = prometheusPid(prometheus.dataDir);
      if (pidProm === null) {
        killError = 'could not find the Prometheus process';
        event(killError);
        return;
      }
      killedAt = sinceStart();
      process.kill(pidProm, 'SIGKILL');
      event(`SIGKILL Prometheus pid ${pidProm}`);
      // Reaps the process and removes its data; the proxy keeps pointing at the dead port until the replacement.
      void prometheus.stop();
    }, KILL_AT_MS),
  );
  timers.push(
    setTimeout(() => {
      if (killedAt === null) return;
      const began = performance.now();
      event('starting a replacement Prometheus (same series, new backfill, new port)');
      replacing = startPrometheus(prometheusOptions).then(
        (p) => {
          prometheus = p;
          proxy.upstreamPort = p.port;
          restoredAt = sinceStart();
          restartMs = performance.now() - began;
          event(`replacement Prometheus ready at ${p.url} after ${fmt(restartMs / 1000)} s; proxy re-pointed`);
        },
        (err: Error) => event(`replacement Prometheus failed to start: ${err.message}`),
      );
    }, RESTART_AT_MS),
  );

  const intervalTimer = setInterval(() => {
    const at = sinceStart();
    const mb = procStatusMb(pid, 'VmRSS');
    if (mb !== null) rss.push({ at, rssMb: mb });
    const probe = readProbe(probeFile).at(-1);
    const t = intervalTally;
    intervalTally = new Tally();
    const line =
      `+${fmt(at / 1000, 0).padStart(4)}s ${phaseNow().padEnd(6)} req ${String(t.total).padStart(6)} ${fmt(t.total / INTERVAL_S, 0).padStart(5)}/s` +
      `  err ${fmtErrors(t.errors).padEnd(14)}  p50 ${fmt(t.latency.percentile(50), 2)} p99 ${fmt(t.latency.percentile(99), 2)} max ${fmt(t.latency.max, 1)} ms` +
      `  rss ${mb === null ? 'gone' : fmt(mb)} MB` +
      (probe && Date.now() - probe.t < INTERVAL_S * 1500 ? `  heap ${fmt(probe.heapUsedMb, 0)}/${fmt(probe.heapTotalMb, 0)} MB  loop lag p99 ${fmt(probe.lagP99Ms)} ms` : '');
    say(line);
  }, INTERVAL_S * 1000);

  const result = await loadDone;
  const loadMs = sinceStart();
  clearInterval(intervalTimer);
  for (const t of timers) clearTimeout(t);
  const endRss = procStatusMb(pid, 'VmRSS');
  if (endRss !== null) rss.push({ at: loadMs, rssMb: endRss });
  const aliveAtEnd = adapterExit === null;
  const probes = readProbe(probeFile);

  // ---- shutdown: the adapter's own SIGTERM path is part of what is soaked ------------------------------------
  let shutdown: string;
  shuttingDown = true;
  if (aliveAtEnd) {
    const began = performance.now();
    child.kill('SIGTERM');
    const e = await Promise.race([exited, sleep(15_000).then(() => null)]);
    shutdown = e === null ? 'did not exit within 15 s of SIGTERM (killed)' : `${describeExit(e)} ${fmt(performance.now() - began, 0)} ms after SIGTERM`;
  } else {
    shutdown = 'n/a (it had already exited)';
  }
  const log = await summarizeLog(logFile, loadStartedWall);
  let keptLog: string | null = null;
  if (!aliveAtEnd) {
    keptLog = path.join(os.tmpdir(), `pma-soak-adapter-${pid}.log`);
    copyFileSync(logFile, keptLog);
  }
  await cleanup();

  // ---- report ---------------------------------------------------------------------------------------------------
  const all = new Tally();
  for (const p of PHASES) {
    all.ok += phaseTally[p].ok;
    for (const [k, v] of phaseTally[p].errors) all.errors.set(k, (all.errors.get(k) ?? 0) + v);
    all.latency.add(phaseTally[p].latency);
  }
  const downEnd = restoredAt === null ? loadMs : Math.min(loadMs, restoredAt + GRACE_MS);
  const spans: Record<Phase, [number, number]> = {
    before: [0, killedAt ?? loadMs],
    down: [killedAt ?? loadMs, killedAt === null ? loadMs : downEnd],
    after: [killedAt === null ? loadMs : downEnd, loadMs],
  };
  const secs = (ms: number): string => `${fmt(ms / 1000, 1)}`;
  const out: string[] = [];
  const o = (s = ''): void => {
    out.push(s);
  };
  o();
  o('# prometheus-metrics-adapter soak report');
  o();
  o(`- run: ${fmt(loadMs / 60_000, 2)} min of load (asked ${MINUTES}), started ${new Date(loadStartedWall).toISOString()}; ${PODS} pods in ${NAMESPACES} namespaces; ${CONNECTIONS} keep-alive HTTPS connections (autocannon ${autocannonVersion()}) cycling through ${MIX.length} paths; --query-cache-ttl=1s`);
  o(`- machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}, ${os.platform()} ${os.release()}`);
  o(`- ${RUNTIME.note()}`);
  if (stale !== null) o(`- WARNING: ${stale}`);
  o(`- adapter: ${path.relative(process.cwd(), BIN) || BIN} as a separate process, pid ${pid}; alive at the end of the load: ${aliveAtEnd ? 'YES' : `NO — ${describeExit(adapterExit!)} at +${secs(adapterExit!.at)}s`}; graceful shutdown: ${shutdown}`);
  o(`- Prometheus: SIGKILL at +${killedAt === null ? `- (${killError ?? 'run ended first'})` : secs(killedAt)}s; replacement ready at +${restoredAt === null ? '-' : secs(restoredAt)}s (backfill + start ${restartMs === null ? '-' : secs(restartMs)} s); down window counted as [SIGKILL, ready + ${GRACE_S} s] = [${secs(spans.down[0])}, ${secs(spans.down[1])}] s`);
  o(`- proxy: ${proxy.accepted} connections from the adapter, ${proxy.upstreamFailures} of them found no Prometheus behind it`);
  o();
  o('## Requests and latency (all HTTP responses, any status; transport errors have no latency)');
  o();
  o('| phase | span s | requests | req/s | 2xx | errors | p50 ms | p90 ms | p99 ms | max ms |');
  o('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (name: string, t: Tally, from: number, to: number): void => {
    const dur = (to - from) / 1000;
    o(`| ${name} | ${secs(from)}–${secs(to)} | ${t.total} | ${dur > 0 ? fmt(t.total / dur, 0) : '-'} | ${t.ok} | ${t.errorCount} | ${fmt(t.latency.percentile(50), 2)} | ${fmt(t.latency.percentile(90), 2)} | ${fmt(t.latency.percentile(99), 2)} | ${fmt(t.latency.max, 1)} |`);
  };
  for (const p of PHASES) row(p, phaseTally[p], spans[p][0], spans[p][1]);
  row('**all**', all, 0, loadMs);
  o();
  o('## Errors by status');
  o();
  const keys = [...all.errors.keys()].sort();
  if (keys.length === 0) o('none');
  else {
    o('| status | before | down | after | total |');
    o('|---|---:|---:|---:|---:|');
    for (const k of keys) o(`| ${k} | ${phaseTally.before.errors.get(k) ?? 0} | ${phaseTally.down.errors.get(k) ?? 0} | ${phaseTally.after.errors.get(k) ?? 0} | ${all.errors.get(k)} |`);
  }
  const outside = phaseTally.before.errorCount + phaseTally.after.errorCount;
  o();
  o(`errors inside the down window: ${phaseTally.down.errorCount}; outside it: ${outside}`);
  const d = phaseTally.down;
  if (killedAt !== null && d.firstErrorAt !== null && d.lastErrorAt !== null) {
    o(
      `first error ${secs(d.firstErrorAt - killedAt)} s after the SIGKILL (cached answers cover up to --query-cache-ttl); ` +
        (restoredAt === null
          ? 'no replacement came up'
          : `last error ${secs(Math.abs(d.lastErrorAt - restoredAt))} s ${d.lastErrorAt >= restoredAt ? 'after' : 'before'} the replacement was ready`),
    );
  }
  if (result) {
    o(`autocannon's own totals: ${result.requests.total} requests (incl. in flight at stop), ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  o();
  o('## Adapter memory and event loop over time');
  o();
  o('| minute | RSS MB | V8 heap used / committed MB | external MB | loop lag p99 ms | loop lag max ms |');
  o('|---:|---:|---:|---:|---:|---:|');
  const nearest = <T>(xs: T[], at: (x: T) => number, target: number): T | undefined =>
    xs.reduce<T | undefined>((best, x) => (best === undefined || Math.abs(at(x) - target) < Math.abs(at(best) - target) ? x : best), undefined);
  const lastMinute = Math.floor(loadMs / 60_000 + 1e-6);
  const marks = [...Array.from({ length: lastMinute + 1 }, (_, m) => m * 60_000), ...(loadMs % 60_000 > 5000 ? [loadMs] : [])];
  for (const mark of marks) {
    const r = nearest(rss, (x) => x.at, mark);
    const pr = nearest(probes, (x) => x.t - loadStartedWall, mark);
    // Probe lines are not aligned with the load's clock; one from more than an interval away would describe another time.
    const prOk = pr !== undefined && Math.abs(pr.t - loadStartedWall - mark) <= INTERVAL_S * 600;
    o(`| ${fmt(mark / 60_000, mark % 60_000 === 0 ? 0 : 2)} | ${r ? fmt(r.rssMb) : '-'} | ${prOk ? `${fmt(pr.heapUsedMb)} / ${fmt(pr.heapTotalMb)}` : '-'} | ${prOk ? fmt(pr.externalMb) : '-'} | ${prOk ? fmt(pr.lagP99Ms) : '-'} | ${prOk ? fmt(pr.lagMaxMs) : '-'} |`);
  }
  const rssValues = rss.map((r) => r.rssMb).filter(Number.isFinite);
  const maxRss = Math.max(...rssValues);
  const startRss = rss[0]?.rssMb ?? Number.NaN;
  const finalRss = rss.at(-1)?.rssMb ?? Number.NaN;
  // Stability is judged on the stretches of steady load, where a leak shows as growth and nothing else should:
  // from 20% of the run (after JIT, caches and the heap's first expansions) to the SIGKILL, and from a minute after
  // the outage window to the end. What the outage itself leaves behind is reported next to it, not hidden.
  interface Stretch {
    from: number;
    to: number;
    first: number;
    last: number;
    slope: number;
    samples: number;
  }
  const stretch = (from: number, to: number): Stretch | null => {
    const xs = rss.filter((r) => r.at >= from && r.at <= to && Number.isFinite(r.rssMb));
    if (xs.length < 3) return null;
    const mx = xs.reduce((acc, r) => acc + r.at, 0) / xs.length;
    const my = xs.reduce((acc, r) => acc + r.rssMb, 0) / xs.length;
    const num = xs.reduce((acc, r) => acc + (r.at - mx) * (r.rssMb - my), 0);
    const den = xs.reduce((acc, r) => acc + (r.at - mx) ** 2, 0);
    return { from, to, first: xs[0]!.rssMb, last: xs.at(-1)!.rssMb, slope: den === 0 ? 0 : (num / den) * 60_000, samples: xs.length };
  };
  const steadyBefore = killedAt === null ? stretch(loadMs * 0.2, loadMs) : stretch(Math.min(loadMs * 0.2, killedAt / 2), killedAt);
  const afterFrom = restoredAt === null ? null : restoredAt + GRACE_MS;
  const steadyAfter = afterFrom === null ? null : (stretch(afterFrom + 60_000, loadMs) ?? stretch(afterFrom, loadMs));
  const RSS_LIMIT = 0.1;
  const describeStretch = (name: string, st: Stretch | null): string =>
    st === null
      ? `${name}: too short to judge`
      : `${name} (${secs(st.from)}–${secs(st.to)} s, ${st.samples} samples): ${fmt(st.first)} -> ${fmt(st.last)} MB (${st.last >= st.first ? '+' : ''}${fmt(((st.last - st.first) / st.first) * 100)}%, trend ${fmt(st.slope, 2)} MB/min)`;
  const grewTooMuch = (st: Stretch | null): boolean => st !== null && (st.last - st.first) / st.first > RSS_LIMIT;
  // null: a run too short to have three samples in a steady stretch says nothing either way.
  const rssStable: boolean | null =
    grewTooMuch(steadyBefore) || grewTooMuch(steadyAfter) ? false : steadyBefore === null || (restoredAt !== null && steadyAfter === null) ? null : true;
  const probeNear = (at: number): ProbeLine | undefined => {
    const pr = nearest(probes, (x) => x.t - loadStartedWall, at);
    return pr !== undefined && Math.abs(pr.t - loadStartedWall - at) <= INTERVAL_S * 1000 ? pr : undefined;
  };
  const heapBeforeKill = killedAt === null ? undefined : probeNear(killedAt - INTERVAL_S * 500);
  const heapAtEnd = probeNear(loadMs);
  const lagP99 = probes.length > 0 ? Math.max(...probes.map((p) => p.lagP99Ms)) : Number.NaN;
  const lagMax = probes.length > 0 ? Math.max(...probes.map((p) => p.lagMaxMs)) : Number.NaN;
  o();
  o(`RSS: idle after startup ${fmt(rssIdle ?? Number.NaN)} MB, at load start ${fmt(startRss)} MB, max ${fmt(maxRss)} MB, end ${fmt(finalRss)} MB`);
  o(`- ${describeStretch('steady load before the outage', steadyBefore)}`);
  if (restoredAt !== null) o(`- ${describeStretch('steady load after the outage', steadyAfter)}`);
  if (steadyBefore !== null && steadyAfter !== null) {
    o(
      `- the outage left RSS ${fmt(steadyAfter.first - steadyBefore.last)} MB higher than just before it` +
        (heapBeforeKill && heapAtEnd ? `; V8 heap committed ${fmt(heapBeforeKill.heapTotalMb)} MB before the SIGKILL, ${fmt(heapAtEnd.heapTotalMb)} MB at the end` : ''),
    );
  }
  if (PROBE) o(`event-loop lag (per ${INTERVAL_S} s interval, from bench/soak-probe.ts inside the adapter): worst p99 ${fmt(lagP99)} ms, worst max ${fmt(lagMax)} ms`);
  o();
  o('## Adapter warn/error log lines');
  o();
  o(`${log.lines} lines in all`);
  o();
  if (log.counts.size === 0) o('no warn/error/fatal lines');
  else {
    o('| line | before | down | after |');
    o('|---|---:|---:|---:|');
    for (const [k, c] of [...log.counts.entries()].sort((a, b) => b[1].before + b[1].down + b[1].after - (a[1].before + a[1].down + a[1].after))) {
      o(`| ${k.replace(/\|/g, '\\|')} | ${c.before} | ${c.down} | ${c.after} |`);
    }
  }
  o();
  o('## Timeline');
  o();
  for (const e of events) o(`- ${e}`);
  o();
  o('## Checks');
  o();
  const check = (ok: boolean | null, what: string): void => o(`- ${ok === null ? 'NOT JUDGED' : ok ? 'PASS' : 'FAIL'}: ${what}`);
  check(aliveAtEnd, `adapter still running at the end of the load${aliveAtEnd ? '' : ` (${describeExit(adapterExit!)})`}`);
  check(killedAt !== null && restoredAt !== null, 'Prometheus was killed and replaced during the run');
  check(outside === 0, `errors only while Prometheus was down (${outside} outside the window)`);
  check(phaseTally.after.total > 0 && phaseTally.after.errorCount === 0, `the adapter recovered: ${phaseTally.after.ok} successful requests after the window, ${phaseTally.after.errorCount} errors`);
  check(rssStable, `RSS stable under steady load: grew by at most ${RSS_LIMIT * 100}% across each steady stretch (details above)`);
  if (!aliveAtEnd) {
    o();
    o('## Last adapter log lines');
    o();
    o(`(whole log kept at ${keptLog})`);
    o();
    for (const l of log.tail) o(`    ${l}`);
  }
  console.log(out.join('\n'));
  return aliveAtEnd ? 0 : 1;
}

function describeExit(e: AdapterExit): string {
  return e.signal !== null ? `killed by ${e.signal}` : `exit code ${e.code}`;
}

function autocannonVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(REPO, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

let code: number;
try {
  code = await main();
} catch (err) {
  console.error(`soak run failed: ${(err as Error).stack ?? err}`);
  code = 1;
}
await cleanup();
clearTimeout(hardDeadline);
say(`done in ${fmt((Date.now() - wallStart) / 1000)} s, exit code ${interrupted > 0 ? 130 : code}`);
process.exit(interrupted > 0 ? 130 : code);
