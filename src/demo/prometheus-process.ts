/**
 * A real, throw-away Prometheus for the demo, the integration tests and the benchmarks.
 *
 * The data is backfilled instead of scraped so that every sample is a pure function of its timestamp: tests can
 * compute the expected answer of any query, and two runs see the same numbers.
 *
 * Findings on Prometheus 2.42 (Debian 2.42.0+ds), which shaped this module:
 * - `promtool tsdb create-blocks-from openmetrics` accepts samples with timestamps in the future, and Prometheus
 *   loads such blocks at startup ("Found healthy block" with maxt > now) and answers instant queries at now, at
 *   now + 50m and in the past from them. A series that stops at `toSeconds` lingers for the 5m lookback and then
 *   disappears, so callers pick `toSeconds` beyond the end of their run (e.g. now + 1h).
 * - promtool cuts the input into blocks of `--max-block-duration` (hidden flag, default 2h) and re-reads the whole
 *   file for every block: 40 days at a 5m step took 29 s with the default and 0.1 s with a large value. A large
 *   value gives one or two blocks, which Prometheus serves without complaint.
 * - Time retention drops whole blocks that end more than the retention before the newest block's end, right at
 *   startup ("Deleting obsolete block"): 40 days in 2h blocks lost everything older than 15 days under the
 *   default retention. The retention is therefore set far beyond any dataset.
 * - Startup to a 200 on `/-/ready` takes about 0.1–0.2 s on a small dataset.
 * - `prometheus_http_requests_total{handler="/api/v1/query"}` is incremented before the client sees the end of the
 *   response, so a count read after an awaited query already includes it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, rmSync, statSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface PrometheusBinaries {
  prometheus: string;
  promtool: string;
}

export interface SeriesSpec {
  name: string;
  help?: string;
  /**
   * For `counter`, `value` must be non-decreasing in time and finite (a counter reset would silently change what
   * `rate()` returns); the writer rejects a decreasing counter. A counter named `*_total` is declared as the
   * OpenMetrics family without the suffix, as the format requires.
   */
  type: 'gauge' | 'counter';
  labels: Record<string, string>;
  /** Called once per step with the sample's timestamp (Unix seconds, millisecond precision). */
  value: (unixSeconds: number) => number;
  /** The series stops here (Unix seconds): a target that went away, for stale-data tests. */
  until?: number;
}

export interface StartPrometheusOptions {
  /**
   * An array may list a family's series in any order. Any other iterable is written as it is produced, so that
   * millions of series never exist at once (benchmarks); it must then yield each family's series contiguously.
   */
  series: SeriesSpec[] | Iterable<SeriesSpec>;
  fromSeconds: number;
  /** Inclusive. Put it beyond the end of the run: queries later than `toSeconds` + 5m see nothing. */
  toSeconds: number;
  stepSeconds: number;
  log?: (m: string) => void;
  extraArgs?: string[];
  /**
   * Loopback exporters to scrape as well, for data that must follow objects created during a test (the
   * end-to-end suite's pods get their names from a ReplicaSet). `honor_labels` keeps the exporter's labels.
   */
  scrape?: { targets: string[]; intervalSeconds: number };
}

export interface PrometheusProcess {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  port: number;
  /** The TSDB directory; it lives in a temporary directory that stop() deletes. */
  dataDir: string;
  stop(): Promise<void>;
  /** Sum over status codes of `prometheus_http_requests_total{handler="/api/v1/query"}`. */
  queryRequestCount(): Promise<number>;
  /** The last lines Prometheus logged, for failure messages. */
  logTail(): string;
  /** Every PromQL expression Prometheus evaluated, in order, from its own query log. */
  queryLog(): Promise<string[]>;
}

export interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

const INSTALL_HINT =
  'Install it with `sudo apt-get install prometheus` (Debian/Ubuntu), or put the `prometheus` and `promtool` ' +
  'binaries on PATH, or set PROMETHEUS_BIN and PROMTOOL_BIN to their paths.';

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const KILL_WAIT_MS = 5_000;
const PORT_ATTEMPTS = 3;

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function lookPath(name: string): string | null {
  // /usr/bin is appended because a stripped-down PATH (some CI runners, sudo) should not hide the Debian package.
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

function resolveBinary(envName: string, defaultName: string): string | null {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') {
    // An explicit choice that does not work must not be replaced by whatever else is installed.
    if (!fromEnv.includes('/')) return lookPath(fromEnv);
    return isExecutableFile(fromEnv) ? path.resolve(fromEnv) : null;
  }
  return lookPath(defaultName);
}

export function findPrometheusBinaries(): PrometheusBinaries | null {
  const prometheus = resolveBinary('PROMETHEUS_BIN', 'prometheus');
  const promtool = resolveBinary('PROMTOOL_BIN', 'promtool');
  return prometheus !== null && promtool !== null ? { prometheus, promtool } : null;
}

/** Keeps the last lines of a chatty stream so that an error can show what led to it. */
class LineRing {
  private readonly lines: string[] = [];
  private partial = '';
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > this.capacity) this.lines.shift();
    }
  }

  tail(count = this.capacity): string {
    const all = this.partial === '' ? this.lines : [...this.lines, this.partial];
    return all.slice(-count).join('\n');
  }
}

/** `echo` receives the output as it comes, for commands slow enough (apt-get) that silence looks like a hang. */
function runCommand(
  command: string,
  args: string[],
  options: { echo?: (m: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const ring = new LineRing(40);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    const onData = (d: Buffer): void => {
      ring.push(d);
      if (options.echo !== undefined) {
        for (const line of d.toString().split('\n')) if (line.trim() !== '') options.echo(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) {
        resolve();
        return;
      }
      const output = ring.tail();
      reject(
        new Error(
          `${[command, ...args].join(' ')} failed (${signal ?? `exit code ${code}`})` +
            (output === '' ? '' : `:\n${output}`),
        ),
      );
    });
  });
}

let aptUpdate: Promise<void> | null = null;
let aptInstall: Promise<void> | null = null;

async function installWithApt(log: (m: string) => void): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (aptUpdate === null) {
    log('prometheus/promtool not found; running apt-get update');
    aptUpdate = runCommand('apt-get', ['update'], { echo: log, env });
  }
  await aptUpdate;
  if (aptInstall === null) {
    log('running apt-get install -y prometheus');
    aptInstall = runCommand('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], {
      echo: log,
      env,
    });
  }
  await aptInstall;
}

export async function ensurePrometheus(log: (msg: string) => void): Promise<PrometheusBinaries> {
  const found = findPrometheusBinaries();
  if (found !== null) return found;
  for (const envName of ['PROMETHEUS_BIN', 'PROMTOOL_BIN']) {
    const value = process.env[envName];
    if (value !== undefined && value !== '' && resolveBinary(envName, '') === null) {
      throw new Error(`${envName}=${value} is not an executable file. ${INSTALL_HINT}`);
    }
  }
  if (process.getuid?.() !== 0) {
    throw new Error(`Prometheus is not installed: \`prometheus\` and \`promtool\` were not found. ${INSTALL_HINT}`);
  }
  try {
    await installWithApt(log);
  } catch (err) {
    throw new Error(`Installing Prometheus failed: ${(err as Error).message}\n${INSTALL_HINT}`);
  }
  const installed = findPrometheusBinaries();
  if (installed === null) {
    throw new Error(`apt-get install prometheus succeeded but the binaries are still not found. ${INSTALL_HINT}`);
  }
  return installed;
}

// ---------------------------------------------------------------------------------------------------------------
// OpenMetrics backfill file

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  // JS prints 1e+21 and 1e-7, both of which Go's ParseFloat reads.
  return String(v);
}

function formatLabels(labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return '';
  return `{${names.map((n) => `${n}="${escapeLabelValue(labels[n] ?? '')}"`).join(',')}}`;
}

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string | undefined;
  series: SeriesSpec[];
}

function checkNames(s: SeriesSpec): void {
  if (!METRIC_NAME.test(s.name)) throw new Error(`invalid metric name ${JSON.stringify(s.name)}`);
  for (const label of Object.keys(s.labels)) {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) {
      throw new Error(`invalid label name ${JSON.stringify(label)} on ${s.name}`);
    }
  }
}

/**
 * A streamed iterable's families as they come, with the checks groupFamilies makes, except for duplicate series:
 * remembering every key would hold the millions of series streaming is for.
 */
function* streamFamilies(series: Iterable<SeriesSpec>): Generator<{ family: Omit<Family, 'series'>; series: SeriesSpec }> {
  const done = new Set<string>();
  let current: Omit<Family, 'series'> | null = null;
  for (const s of series) {
    checkNames(s);
    if (current === null || current.name !== s.name) {
      if (current !== null) done.add(current.name);
      if (done.has(s.name)) throw new Error(`the series of ${s.name} are not contiguous; a streamed iterable must yield each family's series together`);
      current = { name: s.name, type: s.type, help: s.help };
    } else if (current.type !== s.type) {
      throw new Error(`${s.name} is declared both as ${current.type} and as ${s.type}`);
    }
    yield { family: current, series: s };
  }
}

/** OpenMetrics wants each family's samples contiguous and each series' timestamps increasing. */
function groupFamilies(series: SeriesSpec[]): Family[] {
  const byName = new Map<string, Family>();
  const seen = new Set<string>();
  for (const s of series) {
    checkNames(s);
    const key = s.name + formatLabels(s.labels);
    if (seen.has(key)) throw new Error(`duplicate series ${key}`);
    seen.add(key);
    const family = byName.get(s.name);
    if (family === undefined) {
      byName.set(s.name, { name: s.name, type: s.type, help: s.help, series: [s] });
      continue;
    }
    if (family.type !== s.type) throw new Error(`${s.name} is declared both as ${family.type} and as ${s.type}`);
    family.help ??= s.help;
    family.series.push(s);
  }
  return [...byName.values()];
}

function familyHeader(family: Omit<Family, 'series'>): string {
  // A counter family is named without `_total`; a counter sample without the suffix would not be valid
  // OpenMetrics, so such a family is declared `unknown` (the TSDB stores no metadata from a backfill anyway).
  let familyName = family.name;
  let type: string = family.type;
  if (family.type === 'counter') {
    if (family.name.endsWith('_total')) familyName = family.name.slice(0, -'_total'.length);
    else type = 'unknown';
  }
  let header = `# TYPE ${familyName} ${type}\n`;
  if (family.help !== undefined) header += `# HELP ${familyName} ${escapeHelp(family.help)}\n`;
  return header;
}

/** Every series after its family's header, families contiguous. */
function* orderedSeries(series: SeriesSpec[] | Iterable<SeriesSpec>): Generator<{ family: Omit<Family, 'series'>; series: SeriesSpec }> {
  if (!Array.isArray(series)) {
    yield* streamFamilies(series);
    return;
  }
  for (const family of groupFamilies(series)) for (const s of family.series) yield { family, series: s };
}

/** Returns the number of series and of samples written. */
async function writeOpenMetrics(file: string, opts: StartPrometheusOptions): Promise<{ series: number; samples: number }> {
  const { fromSeconds, toSeconds, stepSeconds } = opts;
  if (!Number.isFinite(fromSeconds) || !Number.isFinite(toSeconds) || toSeconds < fromSeconds) {
    throw new Error(`invalid time range [${fromSeconds}, ${toSeconds}]`);
  }
  if (!Number.isFinite(stepSeconds) || stepSeconds <= 0) throw new Error(`invalid step ${stepSeconds}`);
  // Multiplying instead of accumulating keeps a fractional step from drifting; the epsilon keeps `to` itself.
  const steps = Math.floor((toSeconds - fromSeconds) / stepSeconds + 1e-9) + 1;
  const times: number[] = [];
  const timeText: string[] = [];
  for (let i = 0; i < steps; i++) {
    const t = Math.round((fromSeconds + i * stepSeconds) * 1000) / 1000;
    times.push(t);
    timeText.push(String(t));
  }

  const handle = await open(file, 'w');
  let chunk: string[] = [];
  let chunkSize = 0;
  let samples = 0;
  let seriesCount = 0;
  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    await handle.write(chunk.join(''));
    chunk = [];
    chunkSize = 0;
  };
  try {
    let lastFamily: Omit<Family, 'series'> | null = null;
    for (const { family, series: s } of orderedSeries(opts.series)) {
      if (family !== lastFamily) {
        chunk.push(familyHeader(family));
        lastFamily = family;
      }
      seriesCount++;
      const prefix = s.name + formatLabels(s.labels) + ' ';
      let previous = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < times.length; i++) {
        const t = times[i] as number;
        if (s.until !== undefined && t > s.until) break;
        const v = s.value(t);
        if (s.type === 'counter') {
          if (!Number.isFinite(v) || v < previous) {
            throw new Error(`counter ${prefix.trim()} is not finite and non-decreasing at ${t}: ${previous} -> ${v}`);
          }
          previous = v;
        }
        const line = `${prefix}${formatValue(v)} ${timeText[i]}\n`;
        chunk.push(line);
        chunkSize += line.length;
        samples++;
        if (chunkSize > 1 << 20) await flush();
      }
    }
    chunk.push('# EOF\n');
    await flush();
  } finally {
    await handle.close();
  }
  return { series: seriesCount, samples };
}

// ---------------------------------------------------------------------------------------------------------------
// Process management

interface LiveInstance {
  child: ChildProcess;
  root: string;
}

const live = new Set<LiveInstance>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Only synchronous work is possible here; the watchdog (below) finishes the job if SIGKILL is not enough.
  process.on('exit', () => {
    for (const instance of live) {
      try {
        instance.child.kill('SIGKILL');
      } catch {
        // already gone
      }
      try {
        rmSync(instance.root, { recursive: true, force: true });
      } catch {
        // the watchdog retries once the process is gone
      }
    }
  });
}

/**
 * Runs Prometheus through `sh` so that a watchdog holds the read end of a pipe from this Node process. When Node
 * dies in any way, including SIGKILL or a test-runner timeout where no 'exit' handler runs, the pipe closes and the
 * watchdog terminates Prometheus (SIGKILL after 10 s) and removes the temporary directory. `exec` makes
 * Prometheus take over the shell's pid, so `$$` in the watchdog and `child.pid` here are Prometheus. Asynchronous
 * lists in a non-interactive shell get /dev/null as stdin and ignore SIGINT, hence fd 3 and surviving Ctrl-C.
 */
const WATCHDOG_SCRIPT = [
  'exec 3<&0 </dev/null',
  '(',
  '  cat <&3 >/dev/null 2>&1',
  '  kill -TERM $$ 2>/dev/null',
  // A zombie counts as gone: its reaper may be an init that reaps only every few seconds.
  '  alive() {',
  '    if [ -d /proc/self ]; then',
  '      s=$(cut -d" " -f3 /proc/$$/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]',
  '    else kill -0 $$ 2>/dev/null; fi',
  '  }',
  '  i=0',
  '  while alive && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
  '  [ $i -ge 100 ] && kill -KILL $$ 2>/dev/null',
  '  [ -n "$PMA_WATCHDOG_DIR" ] && rm -rf "$PMA_WATCHDOG_DIR"',
  ') >/dev/null 2>&1 &',
  'exec 3<&-',
  'exec "$0" "$@"',
].join('\n');

export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a loopback listener'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

async function waitForExit(exited: Promise<ExitInfo>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([exited.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

class AddressInUseError extends Error {}

interface Launched {
  child: ChildProcess;
  exited: Promise<ExitInfo>;
  ring: LineRing;
}

async function launch(
  bins: PrometheusBinaries,
  root: string,
  args: string[],
  url: string,
): Promise<Launched> {
  const ring = new LineRing(200);
  const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, bins.prometheus, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PMA_WATCHDOG_DIR: root },
    cwd: root,
  });
  const instance: LiveInstance = { child, root };
  live.add(instance);
  installExitHook();
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(instance);
      resolve({ code, signal });
    });
  });
  const state: { exit: ExitInfo | null; spawnError: Error | null } = { exit: null, spawnError: null };
  child.once('error', (err) => {
    state.spawnError = err;
  });
  void exited.then((e) => {
    state.exit = e;
  });
  child.stdout?.on('data', (d: Buffer) => ring.push(d));
  child.stderr?.on('data', (d: Buffer) => ring.push(d));
  // A forgotten stop() must not keep the Node process alive; the exit hook and the watchdog clean up instead.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (state.spawnError !== null) throw new Error(`cannot start /bin/sh: ${state.spawnError.message}`);
    if (state.exit !== null) {
      const tail = ring.tail(40);
      const message = `Prometheus exited during startup (${describeExit(state.exit)}):\n${tail}`;
      if (tail.includes('address already in use')) throw new AddressInUseError(message);
      throw new Error(message);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return { child, exited, ring };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await waitForExit(exited, KILL_WAIT_MS);
      throw new Error(`Prometheus was not ready after ${READY_TIMEOUT_MS} ms:\n${ring.tail(40)}`);
    }
    await sleep(50);
  }
}

/** Loopback targets only: tests and benchmarks never make Prometheus reach another address. */
function prometheusConfig(scrape: StartPrometheusOptions['scrape'], queryLogFile: string): string {
  // Prometheus's own query log: tests read the exact PromQL it received, not what the adapter says it sent.
  const queryLog = `  query_log_file: ${JSON.stringify(queryLogFile)}`;
  if (!scrape || scrape.targets.length === 0) return `global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n${queryLog}\nscrape_configs: []\n`;
  for (const t of scrape.targets) {
    if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(t)) throw new Error(`scrape target ${t} is not a loopback address`);
  }
  return [
    'global:',
    `  scrape_interval: ${scrape.intervalSeconds}s`,
    `  scrape_timeout: ${scrape.intervalSeconds}s`,
    '  evaluation_interval: 1h',
    queryLog,
    'scrape_configs:',
    '  - job_name: workload',
    '    honor_labels: true',
    '    static_configs:',
    `      - targets: [${scrape.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
}

/**
 * Backfills the series into a fresh TSDB and serves it from a Prometheus on a free loopback port. Nothing is
 * scraped: the configuration has no scrape jobs, rules, alertmanagers or remote endpoints.
 */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusProcess> {
  const log = opts.log ?? (() => {});
  const bins = await ensurePrometheus(log);
  const root = await mkdtemp(path.join(os.tmpdir(), 'pma-prometheus-'));
  try {
    const dataDir = path.join(root, 'data');
    const dataFile = path.join(root, 'backfill.om');
    const started = Date.now();
    const { series, samples } = await writeOpenMetrics(dataFile, opts);
    // --max-block-duration is hidden in 2.42's help but accepted; see the findings at the top.
    await runCommand(bins.promtool, [
      'tsdb',
      'create-blocks-from',
      'openmetrics',
      '--quiet',
      '--max-block-duration=87600h',
      dataFile,
      dataDir,
    ]);
    await rm(dataFile, { force: true });
    log(`backfilled ${series} series, ${samples} samples in ${Date.now() - started} ms`);

    const configFile = path.join(root, 'prometheus.yml');
    await writeFile(configFile, prometheusConfig(opts.scrape, path.join(root, 'query.log')));

    for (let attempt = 1; ; attempt++) {
      const port = await freeLoopbackPort();
      const url = `http://127.0.0.1:${port}`;
      const args = [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${dataDir}`,
        // Retention is measured from the newest block, which may be in the future; never drop the history.
        '--storage.tsdb.retention.time=100y',
        `--web.listen-address=127.0.0.1:${port}`,
        ...(opts.extraArgs ?? []),
      ];
      const launchStarted = Date.now();
      let launched: Launched;
      try {
        launched = await launch(bins, root, args, url);
      } catch (err) {
        // Another process may take the port between our probe and Prometheus's bind.
        if (err instanceof AddressInUseError && attempt < PORT_ATTEMPTS) {
          log(`port ${port} was taken, retrying`);
          continue;
        }
        throw err;
      }
      log(`Prometheus ready at ${url} in ${Date.now() - launchStarted} ms`);
      return makeHandle(launched, url, port, dataDir, root);
    }
  } catch (err) {
    await rm(root, { recursive: true, force: true, maxRetries: 5 });
    throw err;
  }
}

function makeHandle(launched: Launched, url: string, port: number, dataDir: string, root: string): PrometheusProcess {
  const { child, exited, ring } = launched;
  let stopping: Promise<void> | null = null;
  const stop = async (): Promise<void> => {
    // While stopping, the child must hold the event loop or Node could exit before the cleanup ran.
    child.ref();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      child.stdin?.end();
      if (!(await waitForExit(exited, STOP_GRACE_MS))) {
        child.kill('SIGKILL');
        await waitForExit(exited, KILL_WAIT_MS);
      }
    } else {
      child.stdin?.end();
    }
    await rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  return {
    url,
    port,
    dataDir,
    stop: () => (stopping ??= stop()),
    queryRequestCount: () => readQueryRequestCount(url),
    logTail: () => ring.tail(),
    async queryLog() {
      const text = await readFile(path.join(root, 'query.log'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { params?: { query?: string } }).params?.query ?? '');
    },
  };
}

async function readQueryRequestCount(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}/metrics: HTTP ${res.status}: ${text.slice(0, 200)}`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('prometheus_http_requests_total{')) continue;
    const match = /^prometheus_http_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (match === null) continue;
    if (!/(^|,)handler="\/api\/v1\/query"(,|$)/.test(match[1] ?? '')) continue;
    total += Number(match[2]);
  }
  return total;
}

/** One instant query, for tests that compare the adapter with Prometheus itself. */
export async function queryPrometheus(url: string, promql: string, timeSeconds?: number): Promise<VectorSample[]> {
  const body = new URLSearchParams({ query: promql });
  if (timeSeconds !== undefined) body.set('time', String(timeSeconds));
  const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body });
  const text = await res.text();
  let envelope: {
    status?: string;
    errorType?: string;
    error?: string;
    data?: { resultType?: string; result?: unknown };
  };
  try {
    envelope = JSON.parse(text) as typeof envelope;
  } catch {
    throw new Error(`query ${promql}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  if (envelope.status !== 'success') {
    throw new Error(`query ${promql}: HTTP ${res.status} ${envelope.errorType}: ${envelope.error}`);
  }
  const { resultType, result } = envelope.data ?? {};
  if (resultType === 'vector') return result as VectorSample[];
  if (resultType === 'scalar') return [{ metric: {}, value: result as [number, string] }];
  throw new Error(`query ${promql}: expected a vector, got ${resultType}`);
}
