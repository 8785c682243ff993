import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceMapper } from './resource-mapper.ts';
import { WELL_KNOWN_RESOURCES } from '../rules/well-known-resources.ts';

test('resolves the names users write: plural, singular, kind, with or without group', () => {
  const m = ResourceMapper.wellKnown();
  for (const text of ['pods', 'pod', 'Pod', 'POD']) assert.equal(m.resolve(text)?.resource, 'pods', text);
  for (const text of ['deployments.apps', 'deployment.apps', 'deployments', 'Deployment']) {
    const r = m.resolve(text);
    assert.deepEqual([r?.group, r?.resource, r?.kind, r?.namespaced], ['apps', 'deployments', 'Deployment', true], text);
  }
  assert.equal(m.resolve('nodes')?.namespaced, false);
  assert.equal(m.resolve('ingresses.networking.k8s.io')?.singular, 'ingress');
  assert.equal(m.resolve('deployments.batch'), null, 'the group must match when given');
  assert.equal(m.resolve('widgets'), null);
});

test('a core resource wins over a same-named resource of another group', () => {
  const m = new ResourceMapper([
    { group: 'example.com', version: 'v1', resource: 'pods', singular: 'pod', kind: 'Pod', namespaced: true },
    ...WELL_KNOWN_RESOURCES,
  ]);
  assert.equal(m.resolve('pods')?.group, '');
  assert.equal(m.resolve('pods.example.com')?.group, 'example.com');
});
