/**
 * Property tests with hostile input (fixed seeds, bounded runs): whatever a request carries, the
 * PromQL the adapter renders, and the PromQL a real Prometheus receives, hold exactly the intended
 * matchers and nothing else. A FAKE Kubernetes API provides the pods.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRuleFile } from '../../src/config/load.ts';
import { startPrometheus, type PrometheusProcess } from '../../src/demo/prometheus-process.ts';
import { renderRuleQuery } from '../../src/rules/render-query.ts';
import { parseSelector, SelectorParseError, type Requirement, type Selector } from '../../src/rules/selector.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../harness/fake-kube-apiserver.ts';
import { startTestAdapter, type TestAdapter } from '../harness/adapter.ts';
import { gauge, START } from '../harness/dataset.ts';
import { intendedMatcher, readLiteralAlternation, readMatchers, type MatchOp } from '../harness/promql-reader.ts';

const RULES = new URL('../fixtures/rules/hostile.yaml', import.meta.url).pathname;
const PREFIX = 'sum by (pod) (probe_metric{';
const SUFFIX = ',fixed="1"})';
/** Counts every generated input, for the closing report. */
const tried = { render: 0, http: 0, httpQueried: 0 };

type Intended = { name: string; op: MatchOp; values: string[] };
const intendedFor = intendedMatcher;

/** Reads a rendered query back and checks it is the template with exactly `intended` in the braces. */
function assertStructure(query: string, intended: Intended[]): void {
  assert.ok(query.startsWith(PREFIX) && query.endsWith(SUFFIX), `query structure changed: ${JSON.stringify(query)}`);
  const read = readMatchers(query.slice(PREFIX.length, -SUFFIX.length));
  assert.equal(read.length, intended.length, `matcher count in ${JSON.stringify(query)}`);
  read.forEach((m, i) => {
    const want = intended[i]!;
    assert.equal(m.name, want.name);
    assert.equal(m.op, want.op);
    const values = m.op === '=~' || m.op === '!~' ? readLiteralAlternation(m.value) : [m.value];
    assert.deepEqual(values, want.values, `values of ${m.name} in ${JSON.stringify(query)}`);
  });
}

const HOSTILE = ['"', '\\', '}', '{', '|', ',', '(', ')', '=', '!', '~', '\n', '\t', '`', "'", ' ', '.*', '$', '^', '#', 'or vector(1)', '"}) or vector(1) #', '\u2028', 'é', '😀', '\u0000', '\ufffd'];
const hostileString = fc
  .array(fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ maxLength: 4 }), fc.string({ unit: 'grapheme', maxLength: 3 })), { maxLength: 6 })
  .map((parts) => parts.join(''))
  .filter((s) => s.isWellFormed());
const labelName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/).filter((n) => !n.startsWith('__') && n !== 'pod' && n !== 'namespace' && n !== 'fixed');

describe('hostile input', () => {
  it('renderRuleQuery: arbitrary values, namespaces and object names stay inside their matchers', () => {
    const rule = parseRuleFile('hostile.yaml', `metrics:\n- name: probe\n  resource: pods\n  queryScope: objects\n  query: 'sum by (<<.GroupBy>>) (probe_metric{<<.LabelMatchers>>,fixed="1"})'\n`).metrics[0]!;
    const requirement = fc.oneof(
      fc.record({ key: labelName, operator: fc.constantFrom('Equals' as const, 'NotEquals' as const), values: fc.tuple(hostileString) }),
      fc.record({ key: labelName, operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.uniqueArray(hostileString, { minLength: 1, maxLength: 4 }) }),
      fc.record({ key: labelName, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const), values: fc.constant([] as string[]) }),
    );
    fc.assert(
      fc.property(
        fc.array(requirement, { maxLength: 5 }),
        hostileString.filter((s) => s !== ''),
        fc.uniqueArray(hostileString.filter((s) => s !== ''), { minLength: 1, maxLength: 5 }),
        (reqs, namespace, names) => {
          tried.render++;
          // An `in` set containing "" also matches series without the label; the renderer refuses empty sets only.
          const selector: Selector = reqs.map((r) => ({ ...r, values: [...r.values].sort() })) as Requirement[];
          let query: string;
          try {
            query = renderRuleQuery(rule, { namespace, names, metricSelector: selector });
          } catch (err) {
            // The only refusals allowed are typed ones the API turns into 400/500 Status objects.
            assert.ok((err as { code?: number }).code === 400 || (err as { code?: number }).code === 500, String(err));
            return;
          }
          const intended = [
            ...selector.map(intendedFor),
            { name: 'namespace', op: '=' as const, values: [namespace] },
            names.length === 1 ? { name: 'pod', op: '=' as const, values: names } : { name: 'pod', op: '=~' as const, values: names },
          ];
          assertStructure(query, intended);
        },
      ),
      { seed: 20261125, numRuns: 3000 },
    );
  });

  describe('through HTTP, against a real Prometheus', () => {
    let prometheus: PrometheusProcess;
    let kube: FakeKubeApiServer;
    let adapter: TestAdapter;
    before(async () => {
      prometheus = await startPrometheus({
        series: ['a', 'b', 'c.d', 'e-f'].map((pod) => gauge('probe_metric', { namespace: 'ns', pod, fixed: '1', app: pod === 'a' ? 'x' : 'y' }, 1)),
        fromSeconds: START,
        toSeconds: START + 4 * 3600,
        stepSeconds: 15,
      });
      kube = await startFakeKubeApiServer();
      kube.addNamespace('ns');
      kube.addPod('ns', 'a', { app: 'x', tier: 'one' });
      kube.addPod('ns', 'b', { app: 'y', tier: 'two.v1' });
      kube.addPod('ns', 'c.d', { app: 'y' });
      kube.addPod('ns', 'e-f', { app: 'z', tier: 'one' });
      adapter = await startTestAdapter({ config: RULES, prometheusUrl: prometheus.url, kubeconfig: kube.kubeconfigPath, queryCacheTtlMs: 0 });
    });
    after(async () => {
      await adapter?.close();
      await kube?.stop();
      await prometheus?.stop();
    });

    it('random selectors and path segments: 200/400/404 only, and Prometheus receives only the intended matchers', async () => {
      // Mostly near-valid selector text (so many requests reach Prometheus), sprinkled with hostile pieces.
      const token = fc.oneof(
        fc.constantFrom('app', 'tier', 'x', 'y', 'z', 'one', 'two.v1', 'a', 'in', 'notin', '=', '==', '!=', ',', '(', ')', ' ', '!', 'app.kubernetes.io/name', 'k8s.io/x'),
        fc.constantFrom(...HOSTILE),
      );
      const soup = fc.array(token, { maxLength: 8 }).map((t) => t.join(''));
      const key = fc.constantFrom('app', 'tier', 'container', 'x_y');
      const value = fc.constantFrom('x', 'y', 'z', 'one', 'two.v1', 'a', '');
      const requirementText = fc.oneof(
        fc.tuple(key, fc.constantFrom('=', '==', '!='), value).map(([k, o, v]) => `${k}${o}${v}`),
        fc.tuple(key, fc.constantFrom(' in ', ' notin '), fc.array(value, { minLength: 1, maxLength: 3 })).map(([k, o, vs]) => `${k}${o}(${vs.join(',')})`),
        key,
        key.map((k) => `!${k}`),
      );
      const wellFormed = fc.array(requirementText, { maxLength: 2 }).map((r) => r.join(','));
      // Half well-formed selectors (so many requests reach Prometheus), half token soup with hostile pieces.
      const selectorText = fc.oneof({ arbitrary: wellFormed, weight: 3 }, { arbitrary: soup, weight: 1 });
      const segment = fc.oneof(fc.constantFrom('a', 'b', 'c.d', '*', 'probe', 'pods', 'ns'), hostileString);
      await fc.assert(
        fc.asyncProperty(selectorText, selectorText, segment, fc.integer({ min: 0, max: 3 }).map((n) => n === 0), async (labelSelector, metricSelector, name, useSegment) => {
          tried.http++;
          const podName = useSegment ? name : '*';
          const path = `/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/${encodeURIComponent(podName)}/probe?labelSelector=${encodeURIComponent(labelSelector)}&metricLabelSelector=${encodeURIComponent(metricSelector)}`;
          const before = (await prometheus.queryLog()).length;
          const res = await adapter.get(path);
          assert.ok([200, 400, 404].includes(res.status), `${path} -> ${res.status} ${res.text}`);
          assert.equal(res.json?.kind, res.status === 200 ? 'MetricValueList' : 'Status', path);
          if (res.status !== 200) return;
          let queries: string[] = [];
          for (let i = 0; i < 20 && queries.length === 0; i++) {
            queries = (await prometheus.queryLog()).slice(before);
            if (queries.length === 0 && res.json.items.length === 0) break;
            if (queries.length === 0) await new Promise((r) => setTimeout(r, 25));
          }
          if (queries.length === 0) return; // no object matched: answered without a query
          tried.httpQueried++;
          let reqs: Selector;
          try {
            reqs = parseSelector(metricSelector);
          } catch (err) {
            assert.fail(`the adapter accepted a metric selector the parser rejects: ${(err as SelectorParseError).message}`);
          }
          for (const q of queries) {
            const read = readMatchers(q.slice(PREFIX.length, -SUFFIX.length));
            // The metric selector's matchers come first, exactly as intended; then namespace and pods.
            assertStructure(q, [...reqs.map(intendedFor), { name: 'namespace', op: '=', values: ['ns'] }, read.at(-1)!.op === '=' ? { name: 'pod', op: '=', values: [read.at(-1)!.value] } : { name: 'pod', op: '=~', values: readLiteralAlternation(read.at(-1)!.value) }]);
            assert.equal(read.at(-1)!.name, 'pod');
          }
        }),
        { seed: 424243, numRuns: 600 },
      );
      process.stdout.write(`# hostile inputs tried: ${tried.render} rendered directly, ${tried.http} through HTTP (${tried.httpQueried} reached Prometheus); none changed the query structure\n`);
    });
  });
});
