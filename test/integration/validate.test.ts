/** `prometheus-metrics-adapter validate`: exit codes a CI job can rely on, against a real Prometheus. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { demoSeries, demoWorkload } from '../../src/demo/workload.ts';

const BIN = new URL('../../bin/prometheus-metrics-adapter.js', import.meta.url).pathname;
const CONFIG = new URL('../../config/rules.yaml', import.meta.url).pathname;
const CHART = new URL('../fixtures/prometheus-adapter/chart-defaults.yaml', import.meta.url).pathname;
const validate = (...args: string[]) => spawnSync(process.execPath, [BIN, 'validate', ...args], { encoding: 'utf8', timeout: 60_000 });

describe('validate', () => {
  let prometheus: PrometheusProcess;
  before(async () => {
    const now = Math.floor(Date.now() / 1000);
    prometheus = await startPrometheus({ series: demoSeries(demoWorkload(), now - 3600), fromSeconds: now - 3600, toSeconds: now + 3600, stepSeconds: 15 });
  });
  after(async () => prometheus?.stop());

  it('exit 0 for the shipped rules against a Prometheus that has their data, with a line per metric', () => {
    const r = validate(CONFIG, `--prometheus-url=${prometheus.url}`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /valid \(11 metrics, 0 discovery rules\)/);
    assert.match(r.stdout, /ok {3}pod_cpu_used_1m \(pods\): 5 samples, 5 carry the object label "pod", 5 finite/);
  });

  it('exit 0 for a prometheus-adapter file; discovery queries are reported', () => {
    const r = validate(CHART, `--prometheus-url=${prometheus.url}`);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /series discovery:\n {2}ok {3}\{__name__=~"\^container_\.\*",container!="POD",namespace!="",pod!=""\}: \d+ series/);
  });

  it('exit 1 for an invalid file, with file, line, rule and reason; exit 2 when Prometheus checks fail', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pma-validate-'));
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'metrics:\n- name: x\n  resource: pods\n  query: x{<<.Bad>>}\n');
    const invalid = validate(bad);
    assert.equal(invalid.status, 1);
    assert.match(invalid.stdout, /line 2: metrics\[0\] \(x\): query: template uses \.Bad/);
    const brokenQuery = path.join(dir, 'broken.yaml');
    writeFileSync(brokenQuery, 'metrics:\n- name: x\n  resource: pods\n  query: sum by (<<.GroupBy>>) (rate(x{<<.LabelMatchers>>}))\n');
    const failing = validate(brokenQuery, `--prometheus-url=${prometheus.url}`);
    assert.equal(failing.status, 2, failing.stdout);
    assert.match(failing.stdout, /FAIL x \(pods\): Prometheus at http:\/\/127\.0\.0\.1:\d+ rejected the query \(bad_data: /);
    const unreachable = validate(CONFIG, '--prometheus-url=http://127.0.0.1:9');
    assert.equal(unreachable.status, 2);
    assert.match(unreachable.stdout, /FAIL pod_cpu_used_1m \(pods\): Prometheus at http:\/\/127\.0\.0\.1:9 is unreachable/);
  });
});
