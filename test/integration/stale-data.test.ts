/** maxSampleAge: values whose raw data stopped arriving are refused, though Prometheus still returns them. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleFile } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import type { TestAdapter } from '../harness/adapter.ts';
import { startIntegrationStack, type IntegrationStack } from '../harness/stack.ts';
import { gauge } from '../harness/dataset.ts';

const RULES = new URL('../fixtures/rules/stale.yaml', import.meta.url).pathname;
const BASE = '/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods';

describe('stale-data protection (maxSampleAge)', () => {
  let stack: IntegrationStack;
  let adapter: TestAdapter;
  before(async () => {
    const now = Math.floor(Date.now() / 1000);
    stack = await startIntegrationStack({
      config: RULES,
      series: [
        gauge('probe_load', { namespace: 'team-a', pod: 'web-1' }, 3),
        // web-2's target went away 3 minutes ago: inside Prometheus's 5-minute lookback, so queries still return it.
        { ...gauge('probe_load', { namespace: 'team-a', pod: 'web-2' }, 7), until: now - 180 },
      ],
    });
    adapter = stack.adapter;
  });
  after(async () => stack?.close());

  it('lists leave the stale object out; without the policy Prometheus would have served its last value', async () => {
    const checked = await adapter.get(`${BASE}/*/load?labelSelector=app%3Dweb`);
    assert.equal(checked.status, 200, checked.text);
    assert.deepEqual(checked.json.items.map((i: any) => [i.describedObject.name, i.value]), [['web-1', '3']]);
    const unchecked = await adapter.get(`${BASE}/*/load_unchecked?labelSelector=app%3Dweb`);
    assert.deepEqual(unchecked.json.items.map((i: any) => [i.describedObject.name, i.value]), [['web-1', '3'], ['web-2', '7']]);
  });

  it('a stale object asked for by name is refused with its age and the rule', async () => {
    const fresh = await adapter.get(`${BASE}/web-1/load`);
    assert.equal(fresh.status, 200, fresh.text);
    const stale = await adapter.get(`${BASE}/web-2/load`);
    assert.equal(stale.status, 404, stale.text);
    assert.match(stale.json.message, /^the metric load for pods web-2 is stale: the newest sample of probe_load is 1\d\d s old, more than maxSampleAge 60 s allows \(rule .*stale\.yaml metrics\[0\] \(load\)\)$/);
  });

  it('maxSampleAge without series is a load error', () => {
    assert.throws(
      () => parseRuleFile('r.yaml', 'metrics:\n- name: x\n  resource: pods\n  maxSampleAge: 1m\n  query: y\n'),
      (e: unknown) => e instanceof ConfigError && /maxSampleAge: needs `series:`/.test(e.message),
    );
  });
});
