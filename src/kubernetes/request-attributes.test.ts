import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forbiddenMessage, requestAttributes } from './request-attributes.ts';

const cases: { url: string; want: Record<string, string> }[] = [
  { url: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests', want: { verb: 'get', namespace: 'default', resource: 'pods', subresource: 'http_requests', name: '*' } },
  { url: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests?labelSelector=a%3Db', want: { verb: 'get', namespace: 'default', resource: 'pods', subresource: 'http_requests', name: '*' } },
  { url: '/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/web/rps', want: { verb: 'get', namespace: 'default', resource: 'deployments.apps', subresource: 'rps', name: 'web' } },
  { url: '/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/node_load', want: { verb: 'get', namespace: '', resource: 'nodes', subresource: 'node_load', name: 'n1' } },
  { url: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/queue_depth', want: { verb: 'get', namespace: 'default', resource: 'metrics', subresource: '', name: 'queue_depth' } },
  { url: '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/my-metric', want: { verb: 'list', namespace: 'default', resource: 'my-metric', subresource: '', name: '' } },
];

test('derives the SubjectAccessReview attributes kube-apiserver would', () => {
  for (const c of cases) {
    const a = requestAttributes('GET', c.url);
    assert.equal(a.kind, 'resource', c.url);
    for (const [k, v] of Object.entries(c.want)) assert.equal((a as Record<string, string>)[k], v, `${c.url} ${k}`);
  }
  assert.deepEqual(requestAttributes('GET', '/apis/custom.metrics.k8s.io/v1beta2'), { kind: 'nonResource', verb: 'get', path: '/apis/custom.metrics.k8s.io/v1beta2' });
});

test('writes 403 messages in kube-apiserver\'s words', () => {
  const a = requestAttributes('GET', '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/pod_cpu_usage_for_limit_1m');
  assert.equal(
    forbiddenMessage('system:anonymous', a, ''),
    'pods.custom.metrics.k8s.io "*" is forbidden: User "system:anonymous" cannot get resource "pods/pod_cpu_usage_for_limit_1m" in API group "custom.metrics.k8s.io" in the namespace "default"',
  );
  const node = requestAttributes('GET', '/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/node_load');
  assert.match(forbiddenMessage('u', node, 'RBAC: no rule'), /nodes\.custom\.metrics\.k8s\.io "n1" is forbidden: .* at the cluster scope: RBAC: no rule$/);
  assert.equal(forbiddenMessage('x', requestAttributes('GET', '/apis/custom.metrics.k8s.io/v1beta2'), ''), 'forbidden: User "x" cannot get path "/apis/custom.metrics.k8s.io/v1beta2"');
});
