// Static checks of deploy/grafana-dashboard.json: it imports into Grafana (inputs, schema, layout), and every
// metric and label its PromQL names exists in SelfMetrics' registry, so a renamed metric breaks this test
// rather than a panel nobody looks at until an incident.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { METRIC_PREFIX, SelfMetrics } from '../src/observability/self-metrics.ts';

const FILE = fileURLToPath(new URL('../deploy/grafana-dashboard.json', import.meta.url));
const DATASOURCE = '${DS_PROMETHEUS}';
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs?: { name?: string; type?: string; pluginId?: string }[];
  schemaVersion?: number;
  uid?: string;
  title?: string;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: { query?: string } | string; datasource?: { uid?: string } }[] };
}

const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as Dashboard;
const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);

interface Family {
  readonly type: string;
  readonly labels: ReadonlySet<string>;
}

/** Sample names a query can select, with their labels: histograms as _bucket (with le), _sum and _count. */
function seriesNames(): Map<string, Family> {
  const out = new Map<string, Family>();
  const registry = new SelfMetrics().registry;
  for (const metric of registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames: string[] }[]) {
    const labels = new Set([...metric.labelNames, ...TARGET_LABELS]);
    if (metric.type === 'histogram') {
      out.set(`${metric.name}_bucket`, { type: 'histogram', labels: new Set([...labels, 'le']) });
      out.set(`${metric.name}_sum`, { type: 'histogram', labels });
      out.set(`${metric.name}_count`, { type: 'histogram', labels });
    } else {
      out.set(metric.name, { type: metric.type, labels });
    }
  }
  return out;
}

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'count', 'rate', 'increase', 'histogram_quantile', 'time', 'clamp_min', 'abs']);
const AGGREGATIONS = new Set(['sum', 'max', 'min', 'avg', 'count']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['bool', 'and', 'or', 'unless', 'offset']);

interface ExprRefs {
  metrics: string[];
  /** Label names in selectors, per metric. */
  matcherLabels: [metric: string, label: string][];
  /** Label names in by/without/on/ignoring/group_left lists. */
  groupingLabels: string[];
}

/**
 * A reader for the PromQL subset the dashboard uses: enough to tell metric names from functions, keywords,
 * label names and Grafana variables. Anything it does not understand fails the test, so the subset cannot
 * silently grow past what is checked.
 */
function readRefs(expr: string): ExprRefs {
  const refs: ExprRefs = { metrics: [], matcherLabels: [], groupingLabels: [] };
  let i = 0;
  const skipSpace = (): void => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++;
  };
  const ident = (): string | null => {
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    if (!m) return null;
    i += m[0].length;
    return m[0];
  };
  const skipString = (): void => {
    assert.equal(expr[i], '"');
    i++;
    while (expr[i] !== '"') {
      assert.ok(i < expr.length, `unterminated string in ${expr}`);
      if (expr[i] === '\\') i++;
      i++;
    }
    i++;
  };
  const labelList = (): string[] => {
    skipSpace();
    assert.equal(expr[i], '(', `expected a label list at ${i} in ${expr}`);
    i++;
    const names: string[] = [];
    for (;;) {
      skipSpace();
      if (expr[i] === ')') {
        i++;
        return names;
      }
      const name = ident();
      assert.ok(name, `expected a label name at ${i} in ${expr}`);
      names.push(name);
      skipSpace();
      if (expr[i] === ',') i++;
    }
  };
  const selector = (metric: string): void => {
    i++; // {
    for (;;) {
      skipSpace();
      if (expr[i] === '}') {
        i++;
        return;
      }
      const label = ident();
      assert.ok(label, `expected a label name at ${i} in ${expr}`);
      refs.matcherLabels.push([metric, label]);
      skipSpace();
      const op = /^(=~|!~|!=|=)/.exec(expr.slice(i));
      assert.ok(op, `expected a matcher operator at ${i} in ${expr}`);
      i += op[0].length;
      skipSpace();
      skipString();
      skipSpace();
      if (expr[i] === ',') i++;
    }
  };
  while (i < expr.length) {
    skipSpace();
    if (i >= expr.length) break;
    const ch = expr[i]!;
    if (ch === '"') {
      skipString();
      continue;
    }
    if (ch === '[') {
      const end = expr.indexOf(']', i);
      assert.ok(end > i, `unterminated range in ${expr}`);
      assert.match(expr.slice(i, end + 1), /^\[(\$[a-zA-Z_]+|\d+[smhdwy])\]$/, `bad range in ${expr}`);
      i = end + 1;
      continue;
    }
    if (/[0-9.]/.test(ch)) {
      i += /^[0-9.e+-]+/.exec(expr.slice(i))![0].length;
      continue;
    }
    if ('(),+-*/<>=!^%'.includes(ch)) {
      i++;
      continue;
    }
    const name = ident();
    assert.ok(name, `unexpected ${JSON.stringify(ch)} at ${i} in ${expr}`);
    if (GROUPING.has(name)) {
      skipSpace();
      // group_left/group_right may stand without a label list.
      if (expr[i] === '(') refs.groupingLabels.push(...labelList());
      continue;
    }
    if (KEYWORDS.has(name)) continue;
    skipSpace();
    // An aggregation may put its by/without clause before the parenthesis: sum by (x) (...).
    if (expr[i] === '(' || (AGGREGATIONS.has(name) && /^(by|without)\b/.test(expr.slice(i)))) {
      assert.ok(FUNCTIONS.has(name), `${name}() in ${expr} is not a function this check knows`);
      continue;
    }
    refs.metrics.push(name);
    if (expr[i] === '{') selector(name);
  }
  return refs;
}

function expressions(): { where: string; expr: string; label?: string }[] {
  const out: { where: string; expr: string; label?: string }[] = [];
  for (const p of panels) for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/s.exec(q);
    assert.ok(m, `variable ${v.name}: ${q} is not label_values(selector, label)`);
    out.push({ where: `variable $${v.name}`, expr: m[1]!, label: m[2]! });
  }
  return out;
}

describe('deploy/grafana-dashboard.json', () => {
  it('imports into Grafana: schema, title, uid, a datasource input used by every query', () => {
    assert.ok((dashboard.schemaVersion ?? 0) >= 36, `schemaVersion ${dashboard.schemaVersion} < 36`);
    assert.ok(dashboard.title && dashboard.uid);
    assert.deepEqual(
      dashboard.__inputs?.map((i) => [i.name, i.type, i.pluginId]),
      [['DS_PROMETHEUS', 'datasource', 'prometheus']],
    );
    for (const p of panels) {
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, DATASOURCE, `panel "${p.title}"`);
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid ?? DATASOURCE, DATASOURCE, `panel "${p.title}"`);
    }
    for (const v of dashboard.templating?.list ?? []) if (v.type === 'query') assert.equal(v.datasource?.uid, DATASOURCE, `$${v.name}`);
  });

  it('has unique panel ids and a layout without overlaps inside 24 columns', () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'duplicate panel ids');
    const cells = new Set<string>();
    for (const p of panels) {
      const g = p.gridPos;
      assert.ok(g, `panel "${p.title}" has no gridPos`);
      assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `panel "${p.title}" is outside the grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `panel "${p.title}" overlaps another at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('uses only metrics and labels that SelfMetrics exports', () => {
    const known = seriesNames();
    const exprs = expressions();
    assert.ok(exprs.length >= 20, 'the reader found too few queries');
    const used = new Set<string>();
    for (const { where, expr, label } of exprs) {
      const refs = readRefs(expr);
      assert.ok(refs.metrics.length > 0, `${where}: no metric in ${expr}`);
      for (const metric of refs.metrics) {
        assert.ok(metric.startsWith(METRIC_PREFIX), `${where}: ${metric} is not one of the adapter's metrics`);
        assert.ok(known.has(metric), `${where}: ${metric} does not exist (a histogram is queried as _bucket, _sum or _count)`);
        used.add(metric);
      }
      for (const [metric, l] of refs.matcherLabels) {
        assert.ok(known.get(metric)!.labels.has(l), `${where}: ${metric} has no label ${l}`);
      }
      const available = new Set(refs.metrics.flatMap((m) => [...known.get(m)!.labels]));
      for (const l of [...refs.groupingLabels, ...(label ? [label] : [])]) {
        assert.ok(available.has(l), `${where}: no metric of ${expr} has the label ${l}`);
      }
    }
    // The list: each family shows up somewhere.
    for (const family of [
      'requests_total',
      'requests_duration_seconds_bucket',
      'prometheus_queries_total',
      'prometheus_query_duration_seconds_bucket',
      'query_cache_requests_total',
      'discovery_relist_duration_seconds_bucket',
      'discovery_series',
      'discovery_metrics',
      'config_reloads_total',
      'config_last_reload_success_timestamp_seconds',
      'value_age_seconds_bucket',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      assert.ok(used.has(`${METRIC_PREFIX}${family}`), `no panel shows ${METRIC_PREFIX}${family}`);
    }
  });

  it('the reader used above tells metrics from everything else', () => {
    const refs = readRefs(
      'sum by (group, code) (rate(a_total{job=~"$job", code!~"2.."}[$__rate_interval])) / ignoring (code) group_left sum by (group) (rate(b{x="}{"}[5m])) > 0',
    );
    assert.deepEqual(refs.metrics, ['a_total', 'b']);
    assert.deepEqual(refs.matcherLabels, [['a_total', 'job'], ['a_total', 'code'], ['b', 'x']]);
    assert.deepEqual(refs.groupingLabels, ['group', 'code', 'code', 'group']);
    assert.throws(() => readRefs('sumx(a)'), /not a function/);
  });
});
