/**
 * The adapter as a separate process under a benchmark: how the benches start it, check which build it is, read its
 * memory and talk to it. Shared by bench/soak.ts, bench/discovery.ts and bench/latency.ts so that all three measure
 * an adapter started and observed the same way.
 */
import { spawn, type ChildProcess, type IOType } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';

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
}

/**
 * Starts `node [nodeArgs] bin [args]` under the watchdog. process.execPath is Node 24, so the launcher imports dist/
 * in-process instead of re-spawning: one pid. Once the adapter has exited, end child.stdin so that the watchdog's
 * subshell, still waiting on the pipe, goes too.
 */
export function spawnAdapter(bin: string, args: readonly string[], options: SpawnAdapterOptions): ChildProcess {
  return spawn('/bin/sh', ['-c', WATCHDOG, process.execPath, ...(options.nodeArgs ?? []), bin, ...args], {
    stdio: ['pipe', options.stdout, options.stderr],
    env: options.env,
  });
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
