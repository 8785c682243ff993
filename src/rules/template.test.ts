import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, TemplateError } from './template.ts';

const FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice', 'Window'];

test('renders fields, index lookups and slices the way Go templates do', () => {
  const t = compileTemplate(
    'sum(rate(<<.Series>>{<<.LabelMatchers>>}[<<.Window>>])) by (<<.GroupBy>>) <<index .LabelValuesByName "pod">> <<.GroupBySlice>>',
    FIELDS,
  );
  const out = t.render({
    Series: 'http_requests_total',
    LabelMatchers: 'namespace="default",pod=~"a|b"',
    Window: '2m',
    GroupBy: 'pod',
    GroupBySlice: ['pod', 'container'],
    LabelValuesByName: { pod: 'a|b', namespace: 'default' },
  });
  assert.equal(
    out,
    'sum(rate(http_requests_total{namespace="default",pod=~"a|b"}[2m])) by (pod) a|b [pod container]',
  );
  assert.deepEqual([...t.fields].sort(), ['GroupBy', 'GroupBySlice', 'LabelMatchers', 'LabelValuesByName', 'Series', 'Window']);
});

test('keeps newlines and surrounding text verbatim', () => {
  const src = 'sum by (<<.GroupBy>>) (\n  irate (\n    <<.Series>>{<<.LabelMatchers>>}[1m]\n  )\n)\n';
  const out = compileTemplate(src, FIELDS).render({ GroupBy: 'pod', Series: 'x', LabelMatchers: 'a="b"' });
  assert.equal(out, 'sum by (pod) (\n  irate (\n    x{a="b"}[1m]\n  )\n)\n');
});

test('honours trim markers', () => {
  const out = compileTemplate('a  <<- .Series ->>   b', FIELDS).render({ Series: 'S' });
  assert.equal(out, 'aSb');
});

test('a missing index key renders as empty, like a Go map lookup', () => {
  const out = compileTemplate('[<<index .LabelValuesByName "node">>]', FIELDS).render({ LabelValuesByName: {} });
  assert.equal(out, '[]');
});

test('rejects unknown fields and unsupported actions at compile time with a useful message', () => {
  assert.throws(() => compileTemplate('<<.Serie>>', FIELDS), (e: unknown) =>
    e instanceof TemplateError && /\.Serie, which does not exist; available: \.Series/.test(e.message));
  assert.throws(() => compileTemplate('<<range .GroupBySlice>>', FIELDS), /unsupported template action/);
  assert.throws(() => compileTemplate('x{<<.LabelMatchers}', FIELDS), /unclosed action/);
});

test('text without actions is returned unchanged, including a lone ">>"', () => {
  assert.equal(compileTemplate('a >> b', FIELDS).render({}), 'a >> b');
});
