import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleFile } from '../config/load.ts';
import { renderRuleQuery } from './render-query.ts';
import { parseSelector } from './selector.ts';

const rule = (extra = '', query = 'sum by (<<.GroupBy>>) (x{<<.LabelMatchers>>}) <<index .LabelValuesByName "pod">> <<.GroupBySlice>>') =>
  parseRuleFile('r.yaml', `metrics:\n- name: m\n  resource: pods\n  query: '${query}'\n${extra}`).metrics[0]!;

test('LabelMatchers follow prometheus-adapter: metric selector by key, then namespace, then objects', () => {
  const q = renderRuleQuery(rule('  queryScope: objects\n'), {
    namespace: 'team-a',
    names: ['web-1', 'web.2'],
    metricSelector: parseSelector('verb=GET,code in (200,201)'),
  });
  assert.equal(q, 'sum by (pod) (x{code=~"200|201",verb="GET",namespace="team-a",pod=~"web-1|web\\\\.2"}) web-1|web.2 [pod]');
});

test('a namespace-wide query has no object matcher, so every label selector shares it', () => {
  const q = renderRuleQuery(rule(), { namespace: 'team-a', names: null, metricSelector: [] });
  assert.equal(q, 'sum by (pod) (x{namespace="team-a"})  [pod]');
});

test('one name is an equality matcher; root-scoped objects have no namespace matcher', () => {
  assert.equal(renderRuleQuery(rule(), { namespace: null, names: ['a'], metricSelector: [] }), 'sum by (pod) (x{pod="a"}) a [pod]');
});

test('an empty name list or an empty rendered query is an error, never a query that matches everything', () => {
  assert.throws(() => renderRuleQuery(rule(), { namespace: 'x', names: [], metricSelector: [] }), /no object names to query/);
  assert.throws(() => renderRuleQuery(rule('', '<<.Series>>'), { namespace: 'x', names: null, metricSelector: [] }), /rendered an empty query/);
});

test('metric selector operators Prometheus cannot express are refused', () => {
  assert.throws(() => renderRuleQuery(rule(), { namespace: 'x', names: null, metricSelector: parseSelector('size>3') }), /invalid metricLabelSelector: operator gt is not supported/);
  assert.throws(() => renderRuleQuery(rule(), { namespace: 'x', names: null, metricSelector: parseSelector('app.kubernetes.io/name=web') }), (e: any) => e.code === 400);
});

test('a query with no matcher of its own still yields valid matcher lists', () => {
  const q = renderRuleQuery(rule('', 'sum by (<<.GroupBy>>) (x{<<.LabelMatchers>>,container!=""})'), { namespace: null, names: null, metricSelector: [] });
  assert.equal(q, 'sum by (pod) (x{__unused__="",container!=""})');
});
