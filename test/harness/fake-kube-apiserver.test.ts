/**
 * Proves the FAKE kube-apiserver against the real @kubernetes/client-node 2.0.1 (typed clients, Watch,
 * makeInformer/ListWatch), so integration tests built on it exercise the product's actual client code paths.
 */
import * as k8s from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import https from 'node:https';
import { describe, it, type TestContext } from 'node:test';
import {
  matchLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  startFakeKubeApiServer,
  type FakeKubeApiServer,
  type FakeKubeApiServerOptions,
} from './fake-kube-apiserver.ts';

const LIST_META = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const WATCH_META = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** Watch has no per-call header option; this is the documented way to ask for metadata-only watch events. */
class MetadataWatchKubeConfig extends k8s.KubeConfig {
  override async applySecurityAuthentication(ctx: k8s.RequestContext): Promise<void> {
    await super.applySecurityAuthentication(ctx);
    ctx.setHeaderParam('Accept', WATCH_META);
  }
}

const cleanupStacks = new WeakMap<TestContext, Array<() => unknown>>();

/** node:test runs t.after hooks first-registered-first; informers must stop before their fake server does. */
function deferCleanup(t: TestContext, fn: () => unknown): void {
  let stack = cleanupStacks.get(t);
  if (!stack) {
    const s: Array<() => unknown> = [];
    cleanupStacks.set(t, (stack = s));
    t.after(async () => {
      for (const f of s.reverse()) await f();
    });
  }
  stack.push(fn);
}

async function startFake(t: TestContext, opts?: FakeKubeApiServerOptions): Promise<{ fake: FakeKubeApiServer; kc: k8s.KubeConfig; core: k8s.CoreV1Api }> {
  const fake = await startFakeKubeApiServer(opts);
  deferCleanup(t, () => fake.stop());
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  return { fake, kc, core: kc.makeApiClient(k8s.CoreV1Api) };
}

type PodInformer = k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>;

/** makeInformer is typed as Informer & ObjectCache but returns a ListWatch, which also has latestResourceVersion(). */
function asListWatch(inf: PodInformer): k8s.ListWatch<k8s.V1Pod> {
  assert.ok(inf instanceof k8s.ListWatch);
  return inf as k8s.ListWatch<k8s.V1Pod>;
}

/** Starts an informer and records its callbacks; stop() errors (AbortError) are kept apart from real ones. */
async function startInformer(t: TestContext, inf: PodInformer) {
  const rec = { adds: [] as string[], updates: [] as string[], deletes: [] as string[], connects: 0, errors: [] as unknown[], aborts: 0 };
  const key = (p: k8s.V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;
  inf.on('add', (p) => rec.adds.push(key(p)));
  inf.on('update', (p) => rec.updates.push(key(p)));
  inf.on('delete', (p) => rec.deletes.push(key(p)));
  inf.on('connect', () => rec.connects++);
  inf.on('error', (e) => {
    if ((e as Error | undefined)?.name === 'AbortError') rec.aborts++;
    else rec.errors.push(e);
  });
  deferCleanup(t, () => inf.stop());
  await inf.start();
  return rec;
}

async function eventually(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function rawGet(fake: FakeKubeApiServer, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${fake.url}${path}`, { ca: fake.caPem, headers: { authorization: 'Bearer fake-token', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

function seedPods(fake: FakeKubeApiServer): void {
  fake.addPod('team-a', 'web-1', { app: 'web', tier: 'frontend' });
  fake.addPod('team-a', 'web-2', { app: 'web', tier: 'backend' });
  fake.addPod('team-a', 'db-1', { app: 'db' });
  fake.addPod('team-b', 'web-3', { app: 'web' });
}

const names = (items: ReadonlyArray<{ metadata?: { name?: string } }>) => items.map((i) => i.metadata?.name).sort();

describe('label and field selectors', () => {
  it('parses and matches every operator with Kubernetes semantics', () => {
    const l = { app: 'web', tier: 'frontend', 'example.com/rank': '3' };
    const m = (s: string) => matchLabels(parseLabelSelector(s), l);
    assert.equal(m(''), true);
    assert.equal(m('app=web'), true);
    assert.equal(m('app==web'), true);
    assert.equal(m('app=db'), false);
    assert.equal(m('app!=db'), true);
    assert.equal(m('missing!=x'), true, '!= matches objects without the label');
    assert.equal(m('app in (db, web)'), true);
    assert.equal(m('app in (db)'), false);
    assert.equal(m('app notin (db)'), true);
    assert.equal(m('missing notin (db)'), true);
    assert.equal(m('tier'), true);
    assert.equal(m('!tier'), false);
    assert.equal(m('!missing'), true);
    assert.equal(m('example.com/rank>2,example.com/rank<4'), true);
    assert.equal(m('app in (web,db),tier!=backend,!missing'), true);
    assert.equal(m('app in (web,db),tier=backend'), false);
    assert.throws(() => parseLabelSelector('app in (web'), SelectorError);
    assert.throws(() => parseLabelSelector('app=we b'), SelectorError);
    assert.deepEqual(parseFieldSelector('metadata.name=x,metadata.namespace!=y'), [
      { path: 'metadata.name', op: '=', value: 'x' },
      { path: 'metadata.namespace', op: '!=', value: 'y' },
    ]);
  });
});

describe('fake kube-apiserver with the real client', () => {
  it('serves discovery, version and 404 Status like kube-apiserver', async (t) => {
    const { fake, kc } = await startFake(t);
    const core = await kc.makeApiClient(k8s.CoreV1Api).getAPIResources();
    const pods = core.resources.find((r) => r.name === 'pods');
    assert.equal(core.groupVersion, 'v1');
    assert.deepEqual([pods?.kind, pods?.namespaced, pods?.singularName], ['Pod', true, 'pod']);
    assert.ok(pods?.verbs.includes('watch'));
    assert.equal(core.resources.find((r) => r.name === 'nodes')?.namespaced, false);
    assert.ok(core.resources.some((r) => r.name === 'services') && core.resources.some((r) => r.name === 'namespaces'));
    assert.deepEqual((await kc.makeApiClient(k8s.CoreApi).getAPIVersions()).versions, ['v1']);

    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    assert.deepEqual(groups.groups.map((g) => g.preferredVersion?.groupVersion).sort(), ['apps/v1', 'batch/v1']);
    const apps = await kc.makeApiClient(k8s.AppsV1Api).getAPIResources();
    assert.deepEqual(apps.resources.filter((r) => !r.name.includes('/')).map((r) => r.name).sort(), ['daemonsets', 'deployments', 'replicasets', 'statefulsets']);
    const batch = await kc.makeApiClient(k8s.BatchV1Api).getAPIResources();
    assert.ok(batch.resources.some((r) => r.name === 'jobs' && r.kind === 'Job'));
    assert.equal((await kc.makeApiClient(k8s.VersionApi).getCode()).major, '1');

    const missing = await rawGet(fake, '/apis/nope.example.com/v1/widgets');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server could not find the requested resource',
      reason: 'NotFound',
      code: 404,
    });
    await assert.rejects(kc.makeApiClient(k8s.CoreV1Api).readNamespacedPod({ namespace: 'x', name: 'gone' }), (err: unknown) => {
      assert.ok(err instanceof k8s.ApiException);
      assert.equal(err.code, 404);
      assert.equal(JSON.parse(err.body as string).reason, 'NotFound');
      return true;
    });
  });

  it('lists with label and field selectors', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    fake.addNode('node-1', { zone: 'a' });
    fake.addNode('node-2', { zone: 'b' });
    fake.addDeployment('team-a', 'web', { app: 'web' });

    const web = await core.listNamespacedPod({ namespace: 'team-a', labelSelector: 'app=web' });
    assert.deepEqual(names(web.items), ['web-1', 'web-2']);
    assert.equal(web.kind, 'PodList');
    assert.equal(web.apiVersion, 'v1');
    assert.equal(web.metadata?.resourceVersion, fake.resourceVersion);
    assert.equal(web.items[0]?.kind, 'Pod');
    assert.equal(web.items[0]?.apiVersion, 'v1');
    assert.ok(web.items[0]?.metadata?.creationTimestamp instanceof Date);

    const sel = async (labelSelector: string) => names((await core.listNamespacedPod({ namespace: 'team-a', labelSelector })).items);
    assert.deepEqual(await sel('app in (web,db),tier!=backend'), ['db-1', 'web-1']);
    assert.deepEqual(await sel('app notin (web)'), ['db-1']);
    assert.deepEqual(await sel('tier'), ['web-1', 'web-2']);
    assert.deepEqual(await sel('!tier'), ['db-1']);
    assert.deepEqual(names((await core.listNamespacedPod({ namespace: 'team-a', fieldSelector: 'metadata.name=web-2' })).items), ['web-2']);
    assert.deepEqual(names((await core.listPodForAllNamespaces({ labelSelector: 'app=web', fieldSelector: 'metadata.namespace=team-b' })).items), ['web-3']);
    assert.deepEqual(names((await core.listPodForAllNamespaces()).items), ['db-1', 'web-1', 'web-2', 'web-3']);
    assert.deepEqual(names((await core.listNode({ labelSelector: 'zone=b' })).items), ['node-2']);

    const deps = await kc.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace: 'team-a' });
    assert.equal(deps.kind, 'DeploymentList');
    assert.equal(deps.items[0]?.apiVersion, 'apps/v1');
    assert.deepEqual(deps.items[0]?.spec?.selector.matchLabels, { app: 'web' });

    await assert.rejects(core.listNamespacedPod({ namespace: 'team-a', labelSelector: 'app in (web' }), (err: unknown) => {
      assert.ok(err instanceof k8s.ApiException);
      assert.equal(err.code, 400);
      return true;
    });

    const page1 = await core.listNamespacedPod({ namespace: 'team-a', limit: 2 });
    assert.equal(page1.items.length, 2);
    assert.equal(page1.metadata?.remainingItemCount, 1);
    const page2 = await core.listNamespacedPod({ namespace: 'team-a', limit: 2, _continue: page1.metadata?._continue });
    assert.deepEqual([...names(page1.items), ...names(page2.items)], ['db-1', 'web-1', 'web-2']);
    assert.equal(page2.metadata?._continue, undefined);
  });

  it('informer sees added, modified and deleted pods over one watch, without relisting', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    const inf = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const rec = await startInformer(t, inf);
    assert.equal(inf.list().length, 4);
    assert.equal(fake.stats().lists, 1);
    assert.equal(fake.stats().watches, 1);
    assert.equal(fake.openWatches, 1);
    assert.equal(asListWatch(inf).latestResourceVersion(), fake.resourceVersion);
    fake.resetStats();

    fake.addPod('team-c', 'new-1', { app: 'new' });
    await eventually('add of team-c/new-1', () => rec.adds.includes('team-c/new-1'));
    fake.addPod('team-c', 'new-1', { app: 'new', version: '2' });
    await eventually('update of team-c/new-1', () => rec.updates.includes('team-c/new-1'));
    assert.equal(inf.get('new-1', 'team-c')?.metadata?.labels?.['version'], '2');
    assert.equal(fake.remove('v1', 'Pod', 'team-a', 'web-1'), true);
    await eventually('delete of team-a/web-1', () => rec.deletes.includes('team-a/web-1'));
    assert.equal(inf.get('web-1', 'team-a'), undefined);
    assert.equal(asListWatch(inf).latestResourceVersion(), fake.resourceVersion);

    assert.deepEqual({ lists: fake.stats().lists, watches: fake.stats().watches }, { lists: 0, watches: 0 });
    assert.equal(rec.connects, 1);
    assert.deepEqual(rec.errors, []);

    await inf.stop();
    // client-node 2.0.1 reports its own stop() as an AbortError on the error callback.
    await eventually('AbortError after stop()', () => rec.aborts === 1);
    await eventually('server side sees the watch closed', () => fake.openWatches === 0);
  });

  it('filtered watches turn selector transitions into ADDED and DELETED', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    const inf = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: 'app=web' }), 'app=web');
    const rec = await startInformer(t, inf);
    assert.deepEqual(names(inf.list()), ['web-1', 'web-2', 'web-3']);
    assert.equal(fake.requests.find((r) => r.verb === 'watch')?.query['labelSelector'], 'app=web');

    fake.addPod('team-a', 'web-2', { app: 'retired' });
    await eventually('delete of relabelled pod', () => rec.deletes.includes('team-a/web-2'));
    fake.addPod('team-a', 'db-1', { app: 'web' });
    await eventually('add of relabelled pod', () => rec.adds.includes('team-a/db-1'));
    fake.addPod('team-z', 'other', { app: 'other' });
    fake.addPod('team-z', 'marker', { app: 'web' });
    await eventually('marker', () => rec.adds.includes('team-z/marker'));
    assert.ok(!rec.adds.includes('team-z/other'));
    assert.deepEqual(names(inf.list()), ['db-1', 'marker', 'web-1', 'web-3']);
    assert.deepEqual(rec.errors, []);
  });

  it('serves metadata-only lists and watch events when asked via Accept', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);

    const list = await core.listNamespacedPod({ namespace: 'team-a', labelSelector: 'app=web' }, k8s.setHeaderOptions('Accept', LIST_META));
    assert.equal(list.kind, 'PartialObjectMetadataList');
    assert.equal(list.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(names(list.items), ['web-1', 'web-2']);
    for (const item of list.items) {
      assert.equal(item.kind, 'PartialObjectMetadata');
      assert.equal(item.apiVersion, 'meta.k8s.io/v1');
      assert.equal(item.spec, undefined);
      assert.equal(item.status, undefined);
      assert.ok(item.metadata?.resourceVersion);
    }
    assert.equal(fake.requests.at(-1)?.accept, LIST_META);
    const full = await core.listNamespacedPod({ namespace: 'team-a' });
    assert.ok(full.items[0]?.spec?.containers.length);

    const metaKc = new MetadataWatchKubeConfig();
    metaKc.loadFromFile(fake.kubeconfigPath);
    const events: unknown[] = [];
    const inf = new k8s.ListWatch<k8s.V1Pod>(
      '/api/v1/namespaces/team-a/pods',
      new k8s.Watch(metaKc),
      () => core.listNamespacedPod({ namespace: 'team-a' }, k8s.setHeaderOptions('Accept', LIST_META)),
      false,
    );
    inf.on('add', (p) => events.push(p));
    inf.on('update', (p) => events.push(p));
    const rec = await startInformer(t, inf);
    assert.equal(events.length, 3, 'initial list');
    const watchReq = fake.requests.find((r) => r.verb === 'watch');
    assert.equal(watchReq?.accept, WATCH_META);

    fake.addPod('team-a', 'web-9', { app: 'web' });
    await eventually('metadata-only add', () => rec.adds.includes('team-a/web-9'));
    const added = events.at(-1) as Record<string, unknown> & { metadata: { labels: Record<string, string>; resourceVersion: string } };
    assert.equal(added['kind'], 'PartialObjectMetadata');
    assert.equal(added['apiVersion'], 'meta.k8s.io/v1');
    assert.equal(added['spec'], undefined);
    assert.deepEqual(added.metadata.labels, { app: 'web' });
    assert.equal(added.metadata.resourceVersion, fake.resourceVersion);
    assert.deepEqual(Object.keys(added).sort(), ['apiVersion', 'kind', 'metadata']);
    assert.deepEqual(rec.errors, []);
  });

  it('a 410 ERROR event on an open watch makes the informer relist', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    const inf = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const rec = await startInformer(t, inf);
    fake.resetStats();

    fake.closeWatches({ expired: true });
    await eventually('relist and rewatch', () => fake.stats().lists === 1 && fake.stats().watches === 1, 8000);
    assert.equal(rec.connects, 2);
    assert.deepEqual(rec.errors, []);
    assert.equal(fake.requests.find((r) => r.verb === 'watch')?.query['resourceVersion'], fake.resourceVersion);

    fake.addPod('team-a', 'after-410');
    await eventually('events flow after relist', () => rec.adds.includes('team-a/after-410'));
  });

  it('resuming from a resourceVersion older than the retained history gets 410 and a relist', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    const inf = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const rec = await startInformer(t, inf);
    const informerRv = asListWatch(inf).latestResourceVersion();
    // Advance the store with a resource this informer does not watch, then forget the history, so the informer's
    // resourceVersion is now too old to resume from.
    fake.addNode('node-1');
    fake.expireHistory();
    fake.resetStats();

    fake.closeWatches();
    await eventually('resume attempt, relist, rewatch', () => fake.stats().watches === 2 && fake.stats().lists === 1, 8000);
    const watches = fake.requests.filter((r) => r.verb === 'watch').map((r) => r.query['resourceVersion']);
    assert.deepEqual(watches, [informerRv, fake.resourceVersion]);
    assert.deepEqual(rec.errors, []);
    assert.equal(asListWatch(inf).latestResourceVersion(), fake.resourceVersion);
  });

  it('counts lists and watches, logs requests, honours timeoutSeconds and sends bookmarks', async (t) => {
    const { fake, kc, core } = await startFake(t, { bookmarkIntervalMs: 100 });
    seedPods(fake);
    fake.resetStats();

    await core.listNamespacedPod({ namespace: 'team-a' });
    await core.listNamespacedPod({ namespace: 'team-a', labelSelector: 'app=db' });
    await core.listNode();
    await core.getAPIResources();
    await core.readNamespacedPod({ namespace: 'team-a', name: 'db-1' });

    const events: Array<{ type: string; name: string | undefined }> = [];
    const ended = Promise.withResolvers<unknown>();
    const startedAt = Date.now();
    await new k8s.Watch(kc).watch(
      '/api/v1/namespaces/team-a/pods',
      { resourceVersion: fake.resourceVersion, labelSelector: 'app=web', timeoutSeconds: 1, allowWatchBookmarks: true },
      (type, obj: k8s.V1Pod) => events.push({ type, name: obj.metadata?.name }),
      (err) => ended.resolve(err),
    );
    fake.addPod('team-a', 'web-5', { app: 'web' });
    fake.addPod('team-a', 'db-5', { app: 'db' });
    fake.addPod('team-b', 'web-6', { app: 'web' });
    fake.remove('v1', 'Pod', 'team-a', 'web-5');
    assert.equal(await ended.promise, null, 'server-side timeout ends the watch cleanly');
    assert.ok(Date.now() - startedAt >= 900);
    assert.deepEqual(
      events.filter((e) => e.type !== 'BOOKMARK'),
      [
        { type: 'ADDED', name: 'web-5' },
        { type: 'DELETED', name: 'web-5' },
      ],
    );
    assert.ok(events.some((e) => e.type === 'BOOKMARK'));

    const s = fake.stats();
    assert.equal(s.lists, 3);
    assert.equal(s.watches, 1);
    assert.deepEqual(s.listsByPath, { '/api/v1/namespaces/team-a/pods': 2, '/api/v1/nodes': 1 });
    assert.deepEqual(s.watchesByPath, { '/api/v1/namespaces/team-a/pods': 1 });
    assert.equal(s.byPath['/api/v1'], 1);
    assert.equal(s.byPath['/api/v1/namespaces/team-a/pods/db-1'], 1);
    assert.equal(s.byPath['/api/v1/namespaces/team-a/pods'], 3);
    assert.deepEqual(
      s.requests.map((r) => r.verb),
      ['list', 'list', 'list', 'discovery', 'get', 'watch'],
    );
    const w = s.requests.at(-1)!;
    assert.equal(w.method, 'GET');
    assert.equal(w.query['watch'], 'true');
    assert.equal(w.query['labelSelector'], 'app=web');
    assert.equal(s.requests[1]?.query['labelSelector'], 'app=db');
    assert.equal(s.requests[0]?.accept, 'application/json, */*;q=0.8');

    // A watch without resourceVersion starts with the current state, as kube-apiserver does.
    const initial: string[] = [];
    const ended2 = Promise.withResolvers<unknown>();
    await new k8s.Watch(kc).watch('/api/v1/nodes', { timeoutSeconds: 1 }, () => {}, (err) => ended2.resolve(err));
    fake.addNode('n-live');
    await new k8s.Watch(kc).watch('/api/v1/nodes', { resourceVersion: '0', timeoutSeconds: 1 }, (type, o: k8s.V1Node) => initial.push(`${type} ${o.metadata?.name}`), () => {});
    await ended2.promise;
    assert.deepEqual(initial, ['ADDED n-live']);

    fake.resetStats();
    assert.deepEqual(fake.stats(), { lists: 0, watches: 0, byPath: {}, listsByPath: {}, watchesByPath: {}, requests: [] });
  });

  it('setDown(true) answers 503 and ends watches; the informer stops with an error until restarted', async (t) => {
    const { fake, kc, core } = await startFake(t);
    seedPods(fake);
    const inf = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const rec = await startInformer(t, inf);

    fake.setDown(true);
    assert.equal(fake.openWatches, 0);
    await eventually('informer error after reconnect hits 503', () => rec.errors.length === 1, 8000);
    assert.equal((rec.errors[0] as { statusCode?: number }).statusCode, 503);
    await assert.rejects(core.listNamespacedPod({ namespace: 'team-a' }), (err: unknown) => {
      assert.ok(err instanceof k8s.ApiException);
      assert.equal(err.code, 503);
      assert.equal(JSON.parse(err.body as string).reason, 'ServiceUnavailable');
      return true;
    });

    fake.setDown(false);
    fake.resetStats();
    await inf.start();
    // start() keeps the cached resourceVersion, so recovery is a watch resume, not a relist.
    assert.deepEqual({ lists: fake.stats().lists, watches: fake.stats().watches }, { lists: 0, watches: 1 });
    fake.addPod('team-a', 'after-outage');
    await eventually('events after recovery', () => rec.adds.includes('team-a/after-outage'));
  });

  it('answers a watch from before the retained history with an ERROR 410 event and ends the stream', async (t) => {
    const { fake, kc } = await startFake(t, { historyLimit: 3 });
    fake.addPod('a', 'p1');
    const oldRv = fake.resourceVersion;
    for (let i = 2; i <= 6; i++) fake.addPod('a', `p${i}`);
    const events: Array<{ type: string; obj: unknown }> = [];
    const ended = Promise.withResolvers<unknown>();
    await new k8s.Watch(kc).watch('/api/v1/pods', { resourceVersion: oldRv }, (type, obj) => events.push({ type, obj }), (err) => ended.resolve(err));
    assert.equal(await ended.promise, null);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.type, 'ERROR');
    assert.deepEqual(
      { ...(events[0]?.obj as object), message: undefined },
      { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: undefined, reason: 'Expired', code: 410 },
    );

    // Within the retained window the watch replays what happened after the given resourceVersion.
    const replayed: string[] = [];
    const ended2 = Promise.withResolvers<unknown>();
    await new k8s.Watch(kc).watch('/api/v1/pods', { resourceVersion: String(Number(fake.resourceVersion) - 2), timeoutSeconds: 1 }, (type, o: k8s.V1Pod) => replayed.push(`${type} ${o.metadata?.name}`), (err) => ended2.resolve(err));
    await ended2.promise;
    assert.deepEqual(replayed, ['ADDED p5', 'ADDED p6']);
  });

  it('rejects requests without the bearer token', async (t) => {
    const { fake } = await startFake(t);
    const res = await rawGet(fake, '/api/v1/pods', { authorization: 'Bearer wrong' });
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).reason, 'Unauthorized');
  });

  it('works over plain HTTP with tls: false', async (t) => {
    const { fake, core } = await startFake(t, { tls: false });
    assert.match(fake.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(fake.caPem, '');
    fake.addPod('default', 'p', { app: 'x' });
    assert.deepEqual(names((await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=x' })).items), ['p']);
  });
});

/** client-node returns model class instances; compare their JSON. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

describe('fake kube-apiserver: delegated authentication and authorization endpoints', () => {
  it('serves the extension-apiserver-authentication ConfigMap and other ConfigMaps', async (t) => {
    const { fake, core } = await startFake(t);
    await assert.rejects(core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' }), (err: unknown) => {
      assert.ok(err instanceof k8s.ApiException);
      assert.equal(err.code, 404);
      return true;
    });
    fake.setAuthenticationConfigMap({ 'requestheader-allowed-names': '["front-proxy-client"]' });
    const cm = await core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' });
    assert.deepEqual(cm.data, { 'requestheader-allowed-names': '["front-proxy-client"]' });
    fake.setAuthenticationConfigMap({ 'client-ca-file': 'x' });
    assert.deepEqual((await core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'extension-apiserver-authentication' })).data, { 'client-ca-file': 'x' });
    fake.setConfigMap('team-a', 'settings', { a: '1' });
    assert.deepEqual((await core.readNamespacedConfigMap({ namespace: 'team-a', name: 'settings' })).data, { a: '1' });
    assert.deepEqual(names((await core.listNamespacedConfigMap({ namespace: 'kube-system' })).items), ['extension-apiserver-authentication']);
  });

  it('a ListWatch with a metadata.name fieldSelector follows that one ConfigMap (how adapters watch extension-apiserver-authentication)', async (t) => {
    const { fake, kc, core } = await startFake(t);
    fake.setAuthenticationConfigMap({ 'client-ca-file': 'v1' });
    fake.setConfigMap('kube-system', 'other', { a: '1' });
    const fieldSelector = 'metadata.name=extension-apiserver-authentication';
    const inf = new k8s.ListWatch<k8s.V1ConfigMap>(
      '/api/v1/namespaces/kube-system/configmaps',
      new k8s.Watch(kc),
      () => core.listNamespacedConfigMap({ namespace: 'kube-system', fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    const seen: string[] = [];
    inf.on('add', (cm) => seen.push(`add ${cm.metadata?.name} ${cm.data?.['client-ca-file'] ?? cm.data?.a}`));
    inf.on('update', (cm) => seen.push(`update ${cm.metadata?.name} ${cm.data?.['client-ca-file'] ?? cm.data?.a}`));
    inf.on('error', () => undefined);
    deferCleanup(t, () => inf.stop());
    await inf.start();
    assert.equal(fake.requests.find((r) => r.verb === 'watch')?.query['fieldSelector'], fieldSelector);
    fake.setConfigMap('kube-system', 'other', { a: '2' });
    fake.setAuthenticationConfigMap({ 'client-ca-file': 'v2' });
    await eventually('the update of the watched ConfigMap', () => seen.length === 2);
    assert.deepEqual(seen, ['add extension-apiserver-authentication v1', 'update extension-apiserver-authentication v2']);
  });

  it('answers TokenReview from the token table and records each review', async (t) => {
    const { fake, kc } = await startFake(t);
    const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
    fake.setTokens({ 'tok-1': { username: 'system:serviceaccount:kube-system:hpa', uid: 'u-1', groups: ['system:serviceaccounts'] } });
    const ok = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'tok-1' } } });
    assert.equal(ok.status?.authenticated, true);
    assert.deepEqual(plain(ok.status?.user), { username: 'system:serviceaccount:kube-system:hpa', uid: 'u-1', groups: ['system:serviceaccounts'] });
    const bad = await authn.createTokenReview({ body: { spec: { token: 'nope' } } });
    assert.equal(bad.status?.authenticated, false);
    assert.deepEqual(fake.tokenReviewRequests(), [{ token: 'tok-1' }, { token: 'nope' }]);
    await assert.rejects(authn.createTokenReview({ body: { spec: {} as k8s.V1TokenReviewSpec } }), (err: unknown) => {
      assert.ok(err instanceof k8s.ApiException);
      assert.equal(err.code, 422);
      return true;
    });
    fake.resetStats();
    assert.deepEqual(fake.tokenReviewRequests(), []);
  });

  it('answers SubjectAccessReview from the policy function and records each spec', async (t) => {
    const { fake, kc } = await startFake(t);
    const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
    const sar = (spec: k8s.V1SubjectAccessReviewSpec) => authz.createSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec } });

    const byDefault = await sar({ user: 'alice', nonResourceAttributes: { path: '/x', verb: 'get' } });
    assert.equal(byDefault.status?.allowed, false, 'the fake denies until a policy is set');

    fake.setAuthorizer((s) => (s.user === 'alice' ? { allowed: true } : { allowed: false, denied: true, reason: 'not alice' }));
    const resourceAttributes = { namespace: 'default', verb: 'get', group: 'custom.metrics.k8s.io', version: 'v1beta2', resource: 'pods', subresource: 'm', name: '*' };
    const allowed = await sar({ user: 'alice', groups: ['g', 'system:authenticated'], extra: { scopes: ['a'] }, resourceAttributes });
    assert.deepEqual(plain(allowed.status), { allowed: true });
    const denied = await sar({ user: 'bob', resourceAttributes });
    assert.deepEqual(plain(denied.status), { allowed: false, denied: true, reason: 'not alice' });
    assert.deepEqual(fake.sarRequests().slice(1), [
      { user: 'alice', groups: ['g', 'system:authenticated'], extra: { scopes: ['a'] }, resourceAttributes },
      { user: 'bob', resourceAttributes },
    ]);

    // kube-apiserver's validation: exactly one kind of attributes, and a user or a group.
    for (const spec of [{ user: 'x' }, { resourceAttributes }]) {
      await assert.rejects(sar(spec), (err: unknown) => err instanceof k8s.ApiException && err.code === 422);
    }
    fake.setAuthorizer(() => {
      throw new Error('boom');
    });
    await assert.rejects(sar({ user: 'alice', resourceAttributes }), (err: unknown) => err instanceof k8s.ApiException && err.code === 500);
  });

  it('keeps the review groups out of discovery, as clients POST to them without looking them up', async (t) => {
    const { kc } = await startFake(t);
    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    assert.ok(!groups.groups.some((g) => g.name.startsWith('authentication.') || g.name.startsWith('authorization.')));
  });
});
