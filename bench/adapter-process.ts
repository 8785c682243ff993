/**
 * The adapter as a separate process under a benchmark: how the benches start it, check which build it is, read its
 * memory and talk to it. Shared by bench/soak.ts, bench/discovery.ts and bench/latency.ts so that all three measure
 * an adapter started and observed the same way.
 */
import { spawn, type ChildProcess, type IOType } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { milliValue } from '../src/api/quantity.ts';

/**
 * Same watchdog idea as src/demo/prometheus-process.ts: `sh` keeps the read end of our stdin pipe, and when the bench
 * dies in any way (even SIGKILL, where no cleanup of ours runs) the adapter gets SIGTERM, then SIGKILL after 10 s.
 * `exec` makes the adapter take over the shell's pid, so child.pid is the adapter itself (for /proc/<pid>/status).
 */
const WATCHDOG = [
  'exec 3<&0 </dev/null',
  '(',
  '  cat <&3 >/dev/null 2>&1',
  '  alive() { s=$(cut -d" " -f3 /proc/$$/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; }',
  '  alive && kill -TERM $$ 2>/dev/null',
  '  i=0',
  '  while alive && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
  '  [ $i -ge 100 ] && kill -KILL $$ 2>/dev/null',
  ') >/dev/null 2>&1 &',
  'exec 3<&-',
  // Into the memory cgroup before exec, so that Node sizes its heap from the limit from its first instruction.
  'if [ -n "$PMA_BENCH_CGROUP_PROCS" ]; then echo $$ > "$PMA_BENCH_CGROUP_PROCS" || exit 125; fi',
  'exec "$0" "$@"',
].join('\n');

/**
 * The flags every bench starts the adapter with: listening on loopback only, with authentication off, since the
 * benches measure the adapter's serving path and not the API server's TokenReview and SubjectAccessReview round trips.
 */
export function adapterArgs(o: { config: string; port: number; kubeconfig: string; prometheusUrl: string }): string[] {
  return [
    `--config=${o.config}`,
    '--insecure-disable-auth',
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--kubeconfig=${o.kubeconfig}`,
    `--prometheus-url=${o.prometheusUrl}`,
  ];
}

export interface SpawnAdapterOptions {
  /** Where the adapter's stdout and stderr go; stdin is always the watchdog's pipe. */
  stdout: IOType | number;
  stderr: IOType | number;
  /** Node flags that must come before the launcher, such as `--import` of bench/soak-probe.ts. */
  nodeArgs?: readonly string[];
  /** Unset: the bench's own environment. */
  env?: NodeJS.ProcessEnv;
  /** A memory cgroup (memoryCgroup()) to run in; removed once the adapter has exited. */
  cgroup?: MemoryCgroup | null;
}

/**
 * Starts `node [nodeArgs] bin [args]` under the watchdog. process.execPath is Node 24, so the launcher imports dist/
 * in-process instead of re-spawning: one pid. Once the adapter has exited, end child.stdin so that the watchdog's
 * subshell, still waiting on the pipe, goes too.
 */
export function spawnAdapter(bin: string, args: readonly string[], options: SpawnAdapterOptions): ChildProcess {
  const cgroup = options.cgroup ?? null;
  const child = spawn('/bin/sh', ['-c', WATCHDOG, process.execPath, ...(options.nodeArgs ?? []), bin, ...args], {
    stdio: ['pipe', options.stdout, options.stderr],
    env: cgroup === null ? options.env : { ...(options.env ?? process.env), PMA_BENCH_CGROUP_PROCS: cgroup.procsFile },
  });
  if (cgroup !== null) child.once('exit', () => cgroup.remove());
  return child;
}

// ---------------------------------------------------------------------------------------------------------------
// The adapter as its Deployment runs it: memory limit and Node options

export interface MemoryLimit {
  /** As written in the manifest, e.g. `512Mi`. */
  readonly text: string;
  readonly bytes: number;
  readonly source: string;
}

const DEPLOYMENT = fileURLToPath(new URL('../deploy/20-deployment.yaml', import.meta.url));

interface DeployedContainer {
  resources?: { limits?: { memory?: string } };
  env?: { name?: string; value?: string }[];
}

/** The adapter's container in deploy/20-deployment.yaml. */
function deployedContainer(): DeployedContainer {
  for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
    const o = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: ({ name?: string } & DeployedContainer)[] } } } };
    if (o?.kind !== 'Deployment') continue;
    const container = o.spec?.template?.spec?.containers?.find((c) => c.name === 'prometheus-metrics-adapter');
    if (container !== undefined) return container;
  }
  throw new Error(`${DEPLOYMENT} has no prometheus-metrics-adapter container`);
}

/**
 * The memory limit of the adapter's container. Node sizes its heap from the memory limit it runs under (a 259 MB heap
 * under 512Mi, 4.2 GB on a 24 GiB machine without one), and with the heap how often and how long it collects garbage:
 * the benches run the adapter under this limit so that their figures are the deployed adapter's.
 */
export function deploymentMemoryLimit(): MemoryLimit {
  const text = deployedContainer().resources?.limits?.memory;
  if (text === undefined) throw new Error(`${DEPLOYMENT} sets no memory limit for the prometheus-metrics-adapter container`);
  return { text: String(text), bytes: quantityBytes(String(text)), source: path.relative(process.cwd(), DEPLOYMENT) };
}

/** A Kubernetes memory quantity (`512Mi`) in bytes; throws for text that is no quantity. */
function quantityBytes(text: string): number {
  return Number(milliValue(text) / 1000n);
}

/** NODE_OPTIONS of the adapter's container (its garbage collector's settings), or '' when it sets none. */
export function deploymentNodeOptions(): string {
  return deployedContainer().env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
}

/** `--memory-limit <quantity>` or `none`, else the Deployment's limit; null for none. */
export function memoryLimitOption(argv: readonly string[]): MemoryLimit | null {
  const i = argv.indexOf('--memory-limit');
  if (i === -1) return deploymentMemoryLimit();
  const text = argv[i + 1] ?? '';
  if (text === 'none') return null;
  let bytes: number;
  try {
    bytes = quantityBytes(text);
  } catch {
    bytes = Number.NaN;
  }
  if (!(bytes >= 64 * 2 ** 20)) {
    console.error(`--memory-limit takes a Kubernetes quantity of at least 64Mi (e.g. 512Mi) or "none", got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return { text, bytes, source: '--memory-limit' };
}

export interface MemoryCgroup {
  /** The file a process writes its pid to, to join. */
  readonly procsFile: string;
  /** Once its processes have exited; best effort. */
  remove(): void;
}

let cgroups = 0;

/**
 * A new memory cgroup limited to `limit`, as the container runtime makes for the adapter's container: cgroup v2 where
 * the memory controller is on the unified hierarchy, else v1's memory hierarchy. Null where neither can be written
 * (not root, no memory controller, a read-only /sys/fs/cgroup); `why` then says so, for the report.
 */
export function memoryCgroup(limit: MemoryLimit): { cgroup: MemoryCgroup | null; why: string } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => {
    // <id> <parent> <major:minor> <root> <mount point> <options> [optional fields] - <type> <source> <super options>
    const [left = '', right = ''] = line.split(' - ');
    const [type = '', , superOptions = ''] = right.split(' ');
    return { point: left.split(' ')[4] ?? '', type, superOptions: superOptions.split(',') };
  });
  const name = `pma-bench-${process.pid}-${++cgroups}`;
  const attempts: { dir: string; limitFile: string }[] = [];
  for (const m of mounts) {
    if (m.type === 'cgroup2' && readOr(path.join(m.point, 'cgroup.controllers')).split(' ').includes('memory')) {
      attempts.push({ dir: path.join(m.point, name), limitFile: 'memory.max' });
    } else if (m.type === 'cgroup' && m.superOptions.includes('memory')) {
      attempts.push({ dir: path.join(m.point, name), limitFile: 'memory.limit_in_bytes' });
    }
  }
  let why = attempts.length === 0 ? 'this machine has no cgroup memory controller' : '';
  for (const { dir, limitFile } of attempts) {
    // v2 hands the controller down only where the parent enables it for its children; the bench changes no such setting.
    if (limitFile === 'memory.max' && !readOr(path.join(path.dirname(dir), 'cgroup.subtree_control')).split(' ').includes('memory')) {
      why = `the memory controller is not enabled for children of ${path.dirname(dir)}`;
      continue;
    }
    try {
      mkdirSync(dir);
      writeFileSync(path.join(dir, limitFile), String(limit.bytes));
      return {
        cgroup: {
          procsFile: path.join(dir, 'cgroup.procs'),
          remove: () => {
            try {
              if (existsSync(dir)) rmdirSync(dir);
            } catch {
              // still has a process; the kernel keeps an empty cgroup harmlessly until the next boot
            }
          },
        },
        why: '',
      };
    } catch (err) {
      try {
        if (existsSync(dir)) rmdirSync(dir);
      } catch {
        // as above
      }
      why = `cannot create a memory cgroup under ${path.dirname(dir)}: ${(err as Error).message}`;
    }
  }
  return { cgroup: null, why };
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * The adapter runs from dist/: a build older than the sources would measure yesterday's code without saying so.
 * `script` is the npm script that builds before running the bench, for the hint. Logged through the bench's own `log`
 * (stdout or stderr, whichever its progress goes to) and returned, for a report that should carry it too.
 */
export function warnIfStaleBuild(bin: string, script: string, log: (message: string) => void): string | null {
  const warning = staleBuildWarning(bin, script);
  if (warning !== null) log(`WARNING: ${warning}`);
  return warning;
}

function staleBuildWarning(bin: string, script: string): string | null {
  const root = path.dirname(path.dirname(bin));
  let builtAt: number;
  try {
    builtAt = statSync(path.join(root, 'dist', 'cli', 'main.js')).mtimeMs;
  } catch {
    return `dist/ is missing: run \`npm run build\` (npm run ${script} builds first)`;
  }
  const newer: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && statSync(p).mtimeMs > builtAt) newer.push(path.relative(root, p));
    }
  };
  try {
    walk(path.join(root, 'src'));
  } catch {
    return null; // a packaged build without sources
  }
  return newer.length === 0
    ? null
    : `${path.join(root, 'dist')} is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', ...' : ''}: the adapter under test is a stale build (npm run ${script} builds first)`;
}

// A failure message quotes the end of the adapter's log, since that is where it says why it died or never got ready.
export function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The kernel's account of the process's memory: VmRSS now, VmHWM its peak. null once the process is gone, so that a
 * sampler running while the adapter dies records a gap instead of throwing.
 */
export function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * CPU time the process has used, user and system, from /proc/<pid>/stat: less sensitive than wall-clock time to
 * what else the machine is doing, so the figure to compare the adapter's own work across runs and builds. NaN once
 * the process is gone.
 */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces; the fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name (state is the first).
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1000;
  } catch {
    return Number.NaN;
  }
}
/** sysconf(_SC_CLK_TCK): 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/**
 * One request on a fresh connection (the adapter's certificate is self-signed): readiness polls must not reuse a
 * socket the adapter already closed, and a hung adapter must fail the poll rather than stall the bench.
 */
export function httpsGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// The benches poll the adapter (readiness, cache sync, settling) and have nothing else to do between polls.
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * How a bench runs its adapters: as the Deployment runs the adapter, unless `--memory-limit` or `--node-options` say
 * otherwise. Memory: a fresh cgroup per adapter process, as each would be its own container. Node options: the
 * container's NODE_OPTIONS (`--node-options none` for Node's defaults). `note()` says what was applied, for the report.
 */
export class AdapterRuntime {
  readonly limit: MemoryLimit | null;
  readonly nodeOptions: string;
  #why = '';
  #applied = false;

  constructor(argv: readonly string[]) {
    this.limit = memoryLimitOption(argv);
    const i = argv.indexOf('--node-options');
    const given = i === -1 ? undefined : argv[i + 1];
    this.nodeOptions = given === undefined ? deploymentNodeOptions() : given === 'none' ? '' : given;
  }

  /** The adapter's environment: `base` with the Node options in NODE_OPTIONS (and only those). */
  env(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    const env = { ...base };
    if (this.nodeOptions === '') delete env['NODE_OPTIONS'];
    else env['NODE_OPTIONS'] = this.nodeOptions;
    return env;
  }

  /** A cgroup for the next adapter, or null when there is no limit or none can be made (the report says why). */
  cgroup(): MemoryCgroup | null {
    if (this.limit === null) return null;
    const { cgroup, why } = memoryCgroup(this.limit);
    if (cgroup === null) this.#why = why;
    else this.#applied = true;
    return cgroup;
  }

  /** One line for the report. */
  note(): string {
    const options = `NODE_OPTIONS ${this.nodeOptions === '' ? 'unset' : `"${this.nodeOptions}"`}`;
    if (this.limit === null) return `adapter runtime: memory not limited (--memory-limit none), so Node sized its heap from the whole machine; ${options}`;
    const what = `${this.limit.text} (${this.limit.source})`;
    if (this.#applied && this.#why === '') return `adapter runtime: memory limited to ${what} by a memory cgroup per adapter process, as in its container, and Node sizes its heap from that; ${options}`;
    return `adapter runtime: memory NOT limited to ${what}: ${this.#why || 'no adapter was started'}; Node sized its heap from the whole machine, unlike in the container; ${options}`;
  }
}
