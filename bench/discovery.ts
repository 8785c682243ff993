/**
 * Series discovery at scale: how long the adapter's first relist (prometheus-adapter `seriesQuery` rules, asked of
 * `/api/v1/series`) takes and how much memory the adapter needs for it, at 10k, 100k and 1M series.
 *
 *   npm run bench:discovery -- [--series 10000,100000,1000000] [--runs 3] [--adapter-bin <another checkout's bin/prometheus-metrics-adapter.js>]
 *                              [--memory-limit <quantity>|none] [--node-options <NODE_OPTIONS>|none] (default: as deploy/20-deployment.yaml runs the adapter)
 *
 * Per scale, a real Prometheus is backfilled with that many synthetic series (container-style labels on a handful of
 * metric names), a FAKE Kubernetes API serves resource discovery, and the packaged adapter runs as a separate
 * process, started anew for every run. Per run it reports the relist time the adapter logs, the time from spawning
 * the process until GET /apis/custom.metrics.k8s.io/v1beta2 lists every expected metric, the adapter's peak RSS
 * (VmHWM) and its RSS once the list is served (VmRSS), and, as the floor, how long Prometheus itself takes to answer
 * the same series requests (fired together, as the relist does, bodies drained without parsing).
 * Everything listens on 127.0.0.1. Exit code 0 when every run finished, 1 when a run failed (a crash is reported in
 * the table, not hidden), 130 when interrupted.
 */
import { type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPort, startPrometheus, type PrometheusProcess, type SeriesSpec } from '../src/demo/prometheus-process.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../test/harness/fake-kube-apiserver.ts';
import { AdapterRuntime, adapterArgs, httpsGet, lastLines, procCpuMs, procStatusMb, sleep, spawnAdapter, warnIfStaleBuild } from './adapter-process.ts';

// ---------------------------------------------------------------------------------------------------------------
// Options

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}
function fail(message: string): never {
  console.error(message);
  process.exit(2);
}
const SCALES = (arg('series') ?? '10000,100000,1000000').split(',').map((s) => {
  const n = Number(s.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 10 || n > 20_000_000) fail(`--series takes a comma-separated list of series counts in [10, 20000000], got ${s}`);
  return n;
});
const RUNS = Number(arg('runs') ?? 3);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 100) fail(`--runs must be an integer in [1, 100], got ${arg('runs')}`);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const RUNTIME = new AdapterRuntime(process.argv);
const BIN = path.resolve(arg('adapter-bin') ?? path.join(REPO, 'bin', 'prometheus-metrics-adapter.js'));
// A relist over millions of series must be measured, not cut off by the default 30 s budget.
const PROMETHEUS_TIMEOUT = '10m';
const RUN_DEADLINE_MS = 15 * 60_000;

const stamp = (): string => new Date().toISOString().slice(11, 19);
const say = (m: string): void => console.log(`${stamp()} ${m}`);

// ---------------------------------------------------------------------------------------------------------------
// Synthetic series: what a cluster's cAdvisor and application metrics look like to a seriesQuery, spread evenly over
// the metric names. Label values are as long as real ones, since the size of the answer is what discovery pays for.

interface MetricDef {
  name: string;
  type: 'gauge' | 'counter';
  /** Whether the series carry a container label (cAdvisor) or not (application metrics). */
  container: boolean;
}
const METRICS: readonly MetricDef[] = [
  { name: 'container_cpu_usage_seconds_total', type: 'counter', container: true },
  { name: 'container_memory_working_set_bytes', type: 'gauge', container: true },
  { name: 'container_network_receive_bytes_total', type: 'counter', container: true },
  { name: 'http_requests_total', type: 'counter', container: false },
  { name: 'queue_depth', type: 'gauge', container: false },
];
const CONTAINERS_PER_POD = 2;
const PODS_PER_NAMESPACE = 500;

function* syntheticSeries(total: number, dataStart: number): Generator<SeriesSpec> {
  for (let m = 0; m < METRICS.length; m++) {
    const def = METRICS[m]!;
    // The first names take the remainder, so the total is exact.
    const count = Math.floor(total / METRICS.length) + (m < total % METRICS.length ? 1 : 0);
    for (let i = 0; i < count; i++) {
      const podIndex = def.container ? Math.floor(i / CONTAINERS_PER_POD) : i;
      const namespace = `team-${String(Math.floor(podIndex / PODS_PER_NAMESPACE)).padStart(4, '0')}`;
      const pod = `workload-${(podIndex % 97).toString(36)}-${podIndex.toString(16).padStart(8, '0')}-x7k2p`;
      const labels: Record<string, string> = {
        namespace,
        pod,
        instance: `10.${(podIndex >> 16) & 255}.${(podIndex >> 8) & 255}.${podIndex & 255}:${def.container ? 10250 : 8080}`,
        job: def.container ? 'kubernetes-nodes-cadvisor' : 'kubernetes-pods',
      };
      if (def.container) labels['container'] = `app-${i % CONTAINERS_PER_POD}`;
      yield {
        name: def.name,
        type: def.type,
        labels,
        value: def.type === 'counter' ? (t) => (1 + (i % 7)) * (t - dataStart) : () => 1 + (i % 1000),
      };
    }
  }
}

/** prometheus-adapter's format, shaped like its Helm chart's default rules: three series queries in all. */
const RULES = `rules:
  - seriesQuery: '{__name__=~"^container_.*",container!="",namespace!="",pod!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
    name:
      matches: ^container_(.*)_seconds_total$
      as: ""
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
  - seriesQuery: '{__name__=~"^container_.*",container!="",namespace!="",pod!=""}'
    seriesFilters:
      - isNot: ^container_.*_seconds_total$
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
    name:
      matches: ^container_(.*)_total$
      as: "\${1}_per_second"
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
  - seriesQuery: '{__name__=~"^container_.*",container!="",namespace!="",pod!=""}'
    seriesFilters:
      - isNot: ^container_.*_total$
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
    name:
      matches: ^container_(.*)$
      as: ""
    metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
  - seriesQuery: '{namespace!="",pod!="",__name__!~"^container_.*"}'
    resources:
      template: <<.Resource>>
    name:
      matches: ^(.*)_total$
      as: "\${1}_per_second"
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
  - seriesQuery: '{namespace!="",pod!="",__name__!~"^container_.*"}'
    seriesFilters:
      - isNot: .*_total$
    resources:
      template: <<.Resource>>
    name:
      matches: ""
      as: ""
    metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
  - seriesQuery: '{__name__="queue_depth",namespace!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
    metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
`;
const SERIES_QUERIES = [
  '{__name__=~"^container_.*",container!="",namespace!="",pod!=""}',
  '{namespace!="",pod!="",__name__!~"^container_.*"}',
  '{__name__="queue_depth",namespace!=""}',
];
/** cpu_usage, memory_working_set_bytes, network_receive_bytes_per_second, http_requests_per_second, queue_depth. */
const CUSTOM_METRICS = 5;
/** Each custom metric is listed for pods and for namespaces. */
const EXPECTED_RESOURCES = CUSTOM_METRICS * 2;
/** Series the relist sees: the queue_depth series are asked twice (custom and external queries). */
const expectedRelistSeries = (total: number): number =>
  total + Math.floor(total / METRICS.length) + (METRICS.length - 1 < total % METRICS.length ? 1 : 0);

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** One series request straight to Prometheus, as the adapter sends it (gzip); returns the bytes on the wire. */
function drainSeries(url: string, match: string, startSeconds: number, endSeconds: number, encoding: 'gzip' | 'identity'): Promise<number> {
  const params = new URLSearchParams({ 'match[]': match, start: startSeconds.toFixed(3), end: endSeconds.toFixed(3) });
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/api/v1/series?${params}`, { headers: { 'Accept-Encoding': encoding }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`HTTP ${res.statusCode} for ${match}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function logLines(file: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial last line
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// One run

interface RunResult {
  relistMs: number;
  relistSeries: number;
  startToListMs: number;
  /** CPU time (user + system) the adapter process used from its start until the list was served. */
  cpuMs: number;
  peakRssMb: number;
  rssAfterMb: number;
}

class RunFailure extends Error {}

async function runAdapter(dir: string, prometheusUrl: string, kube: FakeKubeApiServer, run: string): Promise<RunResult> {
  const port = await freeLoopbackPort();
  const adapterUrl = `https://127.0.0.1:${port}`;
  const rulesFile = path.join(dir, 'rules.yaml');
  writeFileSync(rulesFile, RULES);
  const logFile = path.join(dir, `adapter-${run}.log`);
  const logFd = openSync(logFile, 'w');
  const args = [
    ...adapterArgs({ config: rulesFile, port, kubeconfig: kube.kubeconfigPath, prometheusUrl }),
    `--prometheus-timeout=${PROMETHEUS_TIMEOUT}`,
  ];
  const spawnedAt = performance.now();
  const child: ChildProcess = spawnAdapter(BIN, args, { stdout: logFd, stderr: logFd, env: RUNTIME.env(), cgroup: RUNTIME.cgroup() });
  closeSync(logFd);
  const pid = child.pid!;
  let exit: string | null = null;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = signal !== null ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    }),
  );
  let peakSeen = 0;
  try {
    const deadline = Date.now() + RUN_DEADLINE_MS;
    let startToListMs: number | null = null;
    for (;;) {
      // VmHWM is the kernel's own peak; polling VmRSS too catches a process that dies before we read its status.
      peakSeen = Math.max(peakSeen, procStatusMb(pid, 'VmHWM') ?? 0);
      if (exit !== null) throw new RunFailure(`the adapter exited (${exit}) after ${((performance.now() - spawnedAt) / 1000).toFixed(1)} s, peak RSS seen ${peakSeen.toFixed(0)} MB:\n${lastLines(logFile, 15)}`);
      const r = await httpsGet(`${adapterUrl}/apis/custom.metrics.k8s.io/v1beta2`, 10_000).catch(() => null);
      if (r?.status === 200) {
        const listed = (JSON.parse(r.body) as { resources?: unknown[] }).resources?.length ?? 0;
        if (listed >= EXPECTED_RESOURCES) {
          startToListMs = performance.now() - spawnedAt;
          break;
        }
      }
      if (Date.now() > deadline) throw new RunFailure(`the metric list was not served within ${RUN_DEADLINE_MS / 60_000} min:\n${lastLines(logFile, 15)}`);
      await sleep(25);
    }
    const rssAfterMb = procStatusMb(pid, 'VmRSS') ?? Number.NaN;
    const cpuMs = procCpuMs(pid);
    const peakRssMb = procStatusMb(pid, 'VmHWM') ?? Number.NaN;
    const relist = logLines(logFile).find((l) => l['msg'] === 'series relist' || l['msg'] === 'series relist finished with failures');
    if (!relist) throw new RunFailure(`the metric list is served but the adapter logged no relist:\n${lastLines(logFile, 15)}`);
    if (relist['failed'] !== 0) throw new RunFailure(`the relist had failures: ${JSON.stringify(relist)}`);
    return { relistMs: Number(relist['ms']), relistSeries: Number(relist['series']), startToListMs, cpuMs, peakRssMb, rssAfterMb };
  } finally {
    if (exit === null) {
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killTimer);
    }
    child.stdin?.end();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

/** Nearest-rank percentile: with 3 runs p99 is the largest. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
const median = (values: number[]): number => percentile(values, 50);
const fmtS = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '–');
const fmtMb = (mb: number): string => (Number.isFinite(mb) ? mb.toFixed(0) : '–');

interface ScaleReport {
  series: number;
  backfillMs: number;
  bodyMb: number;
  gzipMb: number;
  runs: RunResult[];
  floorMs: number[];
  failures: string[];
}

function printReport(reports: ScaleReport[]): void {
  const cpus = os.cpus();
  console.log('');
  console.log(`Machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.type()} ${os.release()}`);
  console.log(`${RUNTIME.note()[0]!.toUpperCase()}${RUNTIME.note().slice(1)}.`);
  console.log(`Adapter: ${BIN}; runs per scale: ${RUNS}; figures are median / p99 (nearest rank; with 3 runs p99 is the max)`);
  console.log('');
  console.log('| series | /api/v1/series body (gzip) | Prometheus alone | adapter relist | start → metric list served | adapter CPU until served | adapter peak RSS (VmHWM) | adapter RSS after discovery | runs ok |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of reports) {
    const ok = r.runs.length;
    const col = (values: number[], f: (n: number) => string, unit: string): string =>
      values.length === 0 ? '–' : `${f(median(values))} / ${f(percentile(values, 99))} ${unit}`;
    console.log(
      `| ${r.series.toLocaleString('en-US')} | ${r.bodyMb.toFixed(1)} MB (${r.gzipMb.toFixed(1)} MB) | ${col(r.floorMs, fmtS, 's')} | ${col(
        r.runs.map((x) => x.relistMs),
        fmtS,
        's',
      )} | ${col(
        r.runs.map((x) => x.startToListMs),
        fmtS,
        's',
      )} | ${col(
        r.runs.map((x) => x.cpuMs),
        fmtS,
        's',
      )} | ${col(
        r.runs.map((x) => x.peakRssMb),
        fmtMb,
        'MB',
      )} | ${col(
        r.runs.map((x) => x.rssAfterMb),
        fmtMb,
        'MB',
      )} | ${ok}/${ok + r.failures.length} |`,
    );
  }
  for (const r of reports) for (const f of r.failures) console.log(`\n${r.series.toLocaleString('en-US')} series, failed run: ${f.split('\n')[0]}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const cleanups: (() => Promise<void> | void)[] = [];
async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (err) {
      console.error(`cleanup: ${(err as Error).message}`);
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  warnIfStaleBuild(BIN, 'bench:discovery', say);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pma-discovery-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const kube: FakeKubeApiServer = await startFakeKubeApiServer();
  cleanups.push(() => kube.stop());

  const reports: ScaleReport[] = [];
  let failed = false;
  for (const total of SCALES) {
    const now = Math.floor(Date.now() / 1000);
    // Three samples an hour apart: every series has a chunk overlapping any relist window for the next 90 minutes.
    const dataStart = now - 1800;
    say(`${total.toLocaleString('en-US')} series: backfilling and starting Prometheus`);
    const backfillStarted = performance.now();
    const prometheus: PrometheusProcess = await startPrometheus({
      series: syntheticSeries(total, dataStart),
      fromSeconds: dataStart,
      toSeconds: dataStart + 7200,
      stepSeconds: 3600,
      log: (m) => say(`  prometheus: ${m}`),
    });
    const backfillMs = performance.now() - backfillStarted;
    const report: ScaleReport = { series: total, backfillMs, bodyMb: 0, gzipMb: 0, runs: [], floorMs: [], failures: [] };
    reports.push(report);
    try {
      const end = Date.now() / 1000;
      // The adapter's window: --metrics-max-age defaults to the 10m relist interval.
      const bodies = await Promise.all(SERIES_QUERIES.map((q) => drainSeries(prometheus.url, q, end - 600, end, 'identity')));
      const gzipped = await Promise.all(SERIES_QUERIES.map((q) => drainSeries(prometheus.url, q, end - 600, end, 'gzip')));
      report.bodyMb = bodies.reduce((a, b) => a + b, 0) / 2 ** 20;
      report.gzipMb = gzipped.reduce((a, b) => a + b, 0) / 2 ** 20;
      say(`  Prometheus ready after ${fmtS(backfillMs)} s; the ${SERIES_QUERIES.length} series answers are ${report.bodyMb.toFixed(1)} MB (${report.gzipMb.toFixed(1)} MB gzipped)`);
      for (let run = 1; run <= RUNS; run++) {
        const t0 = performance.now();
        const e = Date.now() / 1000;
        await Promise.all(SERIES_QUERIES.map((q) => drainSeries(prometheus.url, q, e - 600, e, 'gzip')));
        report.floorMs.push(performance.now() - t0);
        try {
          const r = await runAdapter(dir, prometheus.url, kube, `${total}-${run}`);
          if (r.relistSeries !== expectedRelistSeries(total)) {
            throw new RunFailure(`the relist saw ${r.relistSeries} series, expected ${expectedRelistSeries(total)}`);
          }
          report.runs.push(r);
          say(
            `  run ${run}: relist ${fmtS(r.relistMs)} s, list served ${fmtS(r.startToListMs)} s after spawn, CPU ${fmtS(r.cpuMs)} s, peak RSS ${fmtMb(r.peakRssMb)} MB, RSS after ${fmtMb(r.rssAfterMb)} MB; Prometheus alone ${fmtS(report.floorMs.at(-1)!)} s`,
          );
        } catch (err) {
          if (!(err instanceof RunFailure)) throw err;
          failed = true;
          report.failures.push(err.message);
          say(`  run ${run} FAILED: ${err.message}`);
        }
      }
    } finally {
      await prometheus.stop();
    }
  }
  printReport(reports);
  return failed ? 1 : 0;
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  },
);
