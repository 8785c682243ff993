import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { loadRuleFile, parseRuleFile } from './load.ts';
import { nativeRuleFileSchema } from './native-schema.ts';

const problems = (text: string): string[] => {
  try {
    parseRuleFile('rules.yaml', text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, /^invalid rule file rules\.yaml:/);
    return [...err.problems];
  }
  assert.fail('expected the file to be rejected');
};

test('the shipped config/rules.yaml loads and serves the seed metrics', async () => {
  const set = await loadRuleFile(new URL('../../config/rules.yaml', import.meta.url).pathname);
  const names = set.metrics.map((r) => `${r.resource}/${r.metric}`);
  for (const want of [
    'pods/pod_cpu_used_1m',
    'pods/pod_cpu_used_5m',
    'pods/container_cpu_used_1m',
    'pods/pod_cpu_usage_for_limit_1m',
    'pods/pod_memory_working_set_bytes',
    'pods/http_requests_per_second_1m',
    'deployments.apps/deployment_http_requests_per_second_1m',
  ]) {
    assert.ok(names.includes(want), `${want} in ${names.join(', ')}`);
  }
});

test('windows produce one metric each, with the window in the name and the template', () => {
  const { metrics: rules } = parseRuleFile(
    'r.yaml',
    'metrics:\n- name: cpu\n  resource: pods\n  windows: [1m, 5m]\n  query: rate(x{<<.LabelMatchers>>}[<<.Window>>])\n- name: rps_{window}_avg\n  resource: deployments.apps\n  windows: [30s]\n  query: y\n',
  );
  assert.deepEqual(
    rules.map((r) => [r.metric, r.window, r.objectLabel, r.namespaceLabel, r.queryScope]),
    [
      ['cpu_1m', { text: '1m', seconds: 60 }, 'pod', 'namespace', 'namespace'],
      ['cpu_5m', { text: '5m', seconds: 300 }, 'pod', 'namespace', 'namespace'],
      ['rps_30s_avg', { text: '30s', seconds: 30 }, 'deployment', 'namespace', 'namespace'],
    ],
  );
  assert.equal(rules[1]!.query.render({ LabelMatchers: 'a="b"', Window: '5m' }), 'rate(x{a="b"}[5m])');
});

test('every problem is reported with its place: line, rule index and name, field, reason', () => {
  const found = problems(
    [
      'metrics:',
      '- name: ok',
      '  resource: pods',
      '  query: x',
      '- name: typo',
      '  resource: pods',
      '  qurey: x',
      '- name: bad_window',
      '  resource: pods',
      '  windows: [1 minute]',
      '  query: x',
    ].join('\n'),
  );
  assert.deepEqual(found, [
    'line 5: metrics[1] (typo): missing required key "query"',
    'line 5: metrics[1] (typo): unknown key "qurey"',
    'line 10: metrics[2] (bad_window): windows[0]: must match pattern "^([0-9]+(ms|s|m|h|d|w|y))+$"',
  ]);
});

test('template mistakes, unknown resources without objectLabel and duplicates are rejected', () => {
  const found = problems(
    [
      'metrics:',
      '- name: a',
      '  resource: pods',
      '  query: x{<<.LabelMatcher>>}',
      '- name: b',
      '  resource: widgets.example.com',
      '  query: x',
      '- name: c',
      '  resource: pods',
      '  query: x',
      '- name: c',
      '  resource: pods',
      '  query: y',
    ].join('\n'),
  );
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(found[0]!, /^line 2: metrics\[0\] \(a\): query: template uses \.LabelMatcher, which does not exist; available: \.Series, \.LabelMatchers/);
  assert.match(found[1]!, /^line 5: metrics\[1\] \(b\): objectLabel: cannot derive the Prometheus label for resource "widgets\.example\.com"/);
  assert.match(found[2]!, /^line 11: metrics\[3\] \(c\): name: metric "c" for pods is already defined by metrics\[2\]/);
});

test('YAML syntax errors, empty files and mixed formats get a clear message', () => {
  assert.match(problems('metrics:\n  - name: [unclosed\n')[0]!, /^line \d+, column \d+: /);
  assert.deepEqual(problems(''), [
    "the file is empty: expected a `metrics:` list, or prometheus-adapter's `rules`, `externalRules` or `resourceRules`",
  ]);
  assert.deepEqual(problems('metrics: []\nrules:\n- seriesQuery: up\n'), [
    "line 1: top level: the native `metrics:` list cannot be mixed with prometheus-adapter's `rules` in one file; use one format per file",
  ]);
  assert.match(problems('metrics: []\nextra: 1\n')[0]!, /top level: unknown key "extra"/);
});

test('a prometheus-adapter file loads into series rules; a native file has none', () => {
  const adapter = parseRuleFile('pa.yaml', 'rules:\n- seriesQuery: up\n  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})\n');
  assert.deepEqual([adapter.metrics.length, adapter.seriesRules.length, adapter.resourceRules], [0, 1, null]);
  assert.equal(adapter.seriesRules[0]!.origin, 'pa.yaml rules[0]');
  const native = parseRuleFile('n.yaml', 'metrics:\n- name: m\n  resource: pods\n  query: x\n');
  assert.deepEqual([native.metrics.length, native.seriesRules.length, native.resourceRules], [1, 0, null]);
});

test('a file that cannot be read names the file', async () => {
  await assert.rejects(loadRuleFile('/nonexistent/rules.yaml'), /invalid rule file \/nonexistent\/rules\.yaml:\n {2}- cannot read the file: ENOENT/);
});

test('schema/rules.schema.json is the schema the loader uses (run scripts/write-schema.mjs after changes)', () => {
  const published = JSON.parse(readFileSync(new URL('../../schema/rules.schema.json', import.meta.url), 'utf8'));
  assert.deepEqual(published, JSON.parse(JSON.stringify(nativeRuleFileSchema)));
});

test('skipInvalidRules: bad templates, windows and duplicates are skipped and reported, the rest loads', () => {
  const text = [
    'metrics:',
    '- name: good',
    '  resource: pods',
    '  query: x{<<.LabelMatchers>>}',
    '- name: bad_template',
    '  resource: pods',
    '  query: x{<<.Nope>>}',
    '- name: good',
    '  resource: pods',
    '  query: y',
    '- name: half_bad',
    '  resource: pods',
    '  windows: [1m, 500ms]',
    '  query: z',
    '- name: bad_template',
    '  resource: pods',
    '  query: w',
    '',
  ].join('\n');
  const { ruleFile, skipped } = parseRuleFile('r.yaml', text, { skipInvalidRules: true });
  // A skipped rule's name stays free: the last rule takes `bad_template`; a rule is served whole or not at all.
  assert.deepEqual(ruleFile.metrics.map((m) => m.metric), ['good', 'bad_template']);
  assert.equal(skipped.length, 3);
  assert.match(skipped[0]!, /^line 5: metrics\[1\] \(bad_template\): query: .*Nope/);
  assert.match(skipped[1]!, /metrics\[2\] \(good\): name: metric "good" for pods is already defined by metrics\[0\]/);
  assert.match(skipped[2]!, /metrics\[3\] \(half_bad\): windows: "500ms"/);
  // Start-up stays strict about the same file.
  assert.throws(() => parseRuleFile('r.yaml', text), ConfigError);
});

test('skipInvalidRules: a YAML or schema error still rejects the whole file', () => {
  assert.throws(() => parseRuleFile('r.yaml', 'metrics: [', { skipInvalidRules: true }), ConfigError);
  assert.throws(() => parseRuleFile('r.yaml', 'metrics:\n- name: m\n  resource: pods\n', { skipInvalidRules: true }), /missing required key "query"/);
  assert.throws(
    () => parseRuleFile('r.yaml', 'rules:\n- seriesQuery: up\n  bogus: 1\n', { skipInvalidRules: true }),
    /unknown key "bogus"/,
  );
});

test('skipInvalidRules in prometheus-adapter format: a rule with a bad regex is skipped, the others load', () => {
  const text = [
    'rules:',
    '- seriesQuery: up',
    '  name: { matches: "(" }',
    '  metricsQuery: sum(<<.Series>>)',
    '- seriesQuery: other',
    '  metricsQuery: sum(<<.Series>>)',
    'externalRules:',
    '- seriesQuery: ext',
    '  metricsQuery: sum(<<.Bad>>)',
    '',
  ].join('\n');
  const { ruleFile, skipped } = parseRuleFile('pa.yaml', text, { skipInvalidRules: true });
  assert.deepEqual(ruleFile.seriesRules.map((r) => r.origin), ['pa.yaml rules[1]']);
  assert.equal(skipped.length, 2);
  assert.match(skipped[0]!, /rules\[0\]\.name\.matches: invalid regular expression/);
  assert.match(skipped[1]!, /externalRules\[0\]\.metricsQuery/);
});
