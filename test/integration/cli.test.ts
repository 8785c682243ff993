/** The packaged command as users run it: bin/prometheus-metrics-adapter.js in a child process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeLoopbackPort, startPrometheus } from '../../src/demo/prometheus-process.ts';
import { demoSeries, demoWorkload } from '../../src/demo/workload.ts';

const BIN = new URL('../../bin/prometheus-metrics-adapter.js', import.meta.url).pathname;
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

test('--help documents every flag, including prometheus-adapter\'s names', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const flag of [
    '--config', '--prometheus-url', '--metrics-relist-interval', '--secure-port', '--tls-cert-file', '--tls-private-key-file',
    '--cert-dir', '--kubeconfig', '--prometheus-token-file', '--prometheus-ca-file', '--prometheus-header', '--v',
    '--lister-kubeconfig', '--master-url', '--prometheus-verb', '--prometheus-client-tls-cert-file', '--query-cache-ttl',
  ]) {
    assert.match(r.stdout, new RegExp(`\\n  ${flag.replace(/-/g, '\\-')}[ ,<]`), flag);
  }
});

test('an invalid rule file stops start-up with file, rule and reason', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pma-cli-'));
  const file = path.join(dir, 'rules.yaml');
  writeFileSync(file, 'metrics:\n- name: cpu\n  resource: pods\n  query: x{<<.Labels>>}\n');
  const r = run([`--config=${file}`, '--insecure-disable-auth', '--bind-address=127.0.0.1', '--object-source=prometheus', '--secure-port=0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`invalid rule file ${file.replace(/[.]/g, '\\.')}:\\n  - line 2: metrics\\[0\\] \\(cpu\\): query: template uses \\.Labels, which does not exist`));
});

test('bad flags and unsafe combinations are refused with a message', () => {
  const unsafe = run(['--insecure-disable-auth', '--bind-address=0.0.0.0', '--object-source=prometheus']);
  assert.equal(unsafe.status, 1);
  assert.match(unsafe.stderr, /--insecure-disable-auth is only allowed with a loopback --bind-address/);
  const badDuration = run(['--query-cache-ttl=5 minutes']);
  assert.notEqual(badDuration.status, 0);
  assert.match(badDuration.stderr, /--query-cache-ttl: "5 minutes" is not a duration/);
  const badVerb = run(['--prometheus-verb=PUT']);
  assert.notEqual(badVerb.status, 0);
  assert.match(badVerb.stderr, /Allowed choices are GET, POST/);
});

test('serves HTTPS with the seed spelling of flags, and exits cleanly on SIGTERM', async () => {
  const now = Math.floor(Date.now() / 1000);
  const prometheus = await startPrometheus({ series: demoSeries(demoWorkload(), now - 3600), fromSeconds: now - 3600, toSeconds: now + 3600, stepSeconds: 15 });
  const port = await freeLoopbackPort();
  const child = spawn(process.execPath, [
    BIN,
    '/adapter', // prometheus-adapter's Helm chart passes the binary path as an argument
    `--prometheus-url=${prometheus.url}`,
    '--object-source=prometheus',
    '--insecure-disable-auth',
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    '--v=4',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    const get = (p: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`https://127.0.0.1:${port}${p}`, { rejectUnauthorized: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = await get('/readyz').then((r) => r.status === 200, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ready, `the adapter came up; stderr:\n${stderr}`);
    const res = await get('/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/pod_cpu_used_1m?labelSelector=app%3Dweb');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body).items.map((i: { describedObject: { name: string } }) => i.describedObject.name), ['web-5f6b7-q9wzt', 'web-5f6b7-xk2lp']);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(stderr, /shutting down/);
    // Read after exit: logs are written asynchronously and flushed on shutdown.
    // --v=4 logs each Prometheus query with its rule, PromQL, duration and sample count, as JSON lines.
    const queryLog = stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === 'prometheus query' && /pod_cpu_used_1m/.test(l.rule));
    assert.ok(queryLog, stderr);
    assert.match(queryLog.query, /rate\(container_cpu_usage_seconds_total\{namespace="default",container!="",container!="POD"\}\[1m\]\)/);
    assert.equal(typeof queryLog.ms, 'number');
    // ...and each request one line with its rule, PromQL, duration and number of items.
    const requestLog = stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && /pod_cpu_used_1m/.test(l.url));
    assert.ok(requestLog, stderr);
    assert.equal(requestLog.items, 2);
    assert.equal(requestLog.status, 200);
    assert.equal(typeof requestLog.ms, 'number');
    // With --object-source=prometheus the object lookup is a query too; the rule's own query is among them.
    assert.ok(requestLog.rules.some((r: string) => /rules\.yaml metrics\[0\] \(pod_cpu_used_1m\)$/.test(r)), JSON.stringify(requestLog.rules));
    assert.ok(
      requestLog.queries.some((q: { query: string }) => /rate\(container_cpu_usage_seconds_total\{namespace="default",container!="",container!="POD"\}\[1m\]\)/.test(q.query)),
      JSON.stringify(requestLog.queries),
    );
  } finally {
    child.kill('SIGKILL');
    await prometheus.stop();
  }
});

test('the README documents every flag that --help lists', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const flags = [...run(['--help']).stdout.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help' && f !== '--version');
  assert.ok(flags.length > 20);
  for (const flag of flags) assert.ok(readme.includes(`\`${flag}\``), `README mentions ${flag}`);
});
