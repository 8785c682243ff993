/**
 * FAKE Kubernetes API server for integration tests. It speaks enough of the kube-apiserver wire protocol
 * (discovery, list, watch, metadata-only negotiation, Status errors) for @kubernetes/client-node to list,
 * watch and run informers against it, with an in-memory store, request accounting and fault injection.
 * It is not a Kubernetes implementation: no admission, no validation beyond what the client needs, no writes
 * over HTTP (tests mutate the store directly).
 *
 * For delegated authentication/authorization of aggregated API servers it also serves the ConfigMap
 * kube-system/extension-apiserver-authentication (setAuthenticationConfigMap), TokenReview from a token table
 * (setTokens) and SubjectAccessReview from a policy function (setAuthorizer), recording every review it receives.
 * The two review groups are deliberately absent from discovery: clients POST to them without looking them up.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomUUID, webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------------------------------------
// Public types

export interface FakeObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  [key: string]: unknown;
}

export interface FakeObject {
  apiVersion: string;
  kind: string;
  metadata: FakeObjectMeta;
  [key: string]: unknown;
}

export interface FakeResourceDef {
  /** '' for the core group. */
  group: string;
  version: string;
  /** Plural resource name as used in URLs. */
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
}

export type FakeRequestVerb = 'list' | 'watch' | 'get' | 'discovery' | 'other';

export interface FakeRequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  accept: string | undefined;
  verb: FakeRequestVerb;
}

export interface FakeKubeStats {
  /** Non-watch GETs of a collection, whatever the response status (attempts count, so retries show up). */
  lists: number;
  /** Watch requests, whatever the response status. */
  watches: number;
  /** Every request, by URL path (no query). */
  byPath: Record<string, number>;
  listsByPath: Record<string, number>;
  watchesByPath: Record<string, number>;
  requests: FakeRequestLogEntry[];
}

/** A SubjectAccessReview spec as received (authorization.k8s.io/v1 JSON). */
export interface FakeSubjectAccessReviewSpec {
  user?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: {
    namespace?: string;
    verb?: string;
    group?: string;
    version?: string;
    resource?: string;
    subresource?: string;
    name?: string;
    [key: string]: unknown;
  };
  nonResourceAttributes?: { path?: string; verb?: string };
}

/** SubjectAccessReview status the fake answers with; throwing makes the fake answer 500. */
export interface FakeAuthorizerDecision {
  allowed: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

export type FakeAuthorizer = (spec: FakeSubjectAccessReviewSpec) => FakeAuthorizerDecision;

/** The user a TokenReview reports for a token of the table given to setTokens. */
export interface FakeTokenUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** A TokenReview spec as received. */
export interface FakeTokenReviewSpec {
  token?: string;
  audiences?: string[];
}

export interface FakeKubeApiServerOptions {
  /** Serve HTTPS with a generated CA (default true). With false, the kubeconfig sets insecure-skip-tls-verify. */
  tls?: boolean;
  /** Bearer token required on every request (default 'fake-token'); null accepts any or no credentials. */
  token?: string | null;
  /** Watch events retained for resuming watches (default 1000); older resourceVersions get 410. */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that set allowWatchBookmarks=true (default 60 s, like kube). */
  bookmarkIntervalMs?: number;
}

export interface FakeKubeApiServer {
  readonly url: string;
  /** PEM of the CA that signed the serving cert; '' when tls is false. */
  readonly caPem: string;
  readonly kubeconfigPath: string;
  /** The kubeconfig text written to kubeconfigPath (JSON, which is valid YAML), for loadFromString. */
  readonly kubeconfig: string;
  readonly token: string | null;
  /** Current (latest) store resourceVersion. */
  readonly resourceVersion: string;
  /** Number of watch streams currently open. */
  readonly openWatches: number;
  /** The request log (same array as stats().requests). */
  readonly requests: FakeRequestLogEntry[];

  upsert(obj: FakeObject): FakeObject;
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): FakeObject | undefined;
  addPod(namespace: string, name: string, labels?: Record<string, string>, extra?: Partial<FakeObject>): FakeObject;
  addNode(name: string, labels?: Record<string, string>): FakeObject;
  addNamespace(name: string, labels?: Record<string, string>): FakeObject;
  addDeployment(namespace: string, name: string, labels?: Record<string, string>): FakeObject;

  stats(): FakeKubeStats;
  resetStats(): void;

  /** While down every request gets 503 and open watches are ended (clean EOF). */
  setDown(down: boolean): void;
  /** Ends open watches; with expired, each first gets an ERROR event with a 410 Status (as after etcd compaction). */
  closeWatches(opts?: { expired?: boolean }): void;
  /** Forgets all retained watch history: resuming from any resourceVersion older than the current one gets 410. */
  expireHistory(): void;

  /** Creates or replaces the ConfigMap kube-system/extension-apiserver-authentication with this data. */
  setAuthenticationConfigMap(data: Record<string, string>): FakeObject;
  /** Creates or replaces any ConfigMap (served by GET/list/watch under /api/v1/.../configmaps). */
  setConfigMap(namespace: string, name: string, data: Record<string, string>): FakeObject;
  /** The tokens TokenReview knows; any other token is answered with status.authenticated false. Replaces the table. */
  setTokens(map: Record<string, FakeTokenUser>): void;
  /** The policy SubjectAccessReview answers with (default: deny everything, with a reason naming this method). */
  setAuthorizer(fn: FakeAuthorizer): void;
  /** Every SubjectAccessReview spec received, oldest first (copies). resetStats() clears them. */
  sarRequests(): FakeSubjectAccessReviewSpec[];
  /** Every TokenReview spec received, oldest first (copies). resetStats() clears them. */
  tokenReviewRequests(): FakeTokenReviewSpec[];
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------
// Label and field selectors

export type LabelRequirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'gt' | 'lt'; value: number };

export class SelectorError extends Error {}

const LABEL_KEY = String.raw`(?:[A-Za-z0-9][-A-Za-z0-9_.]*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?`;
const LABEL_VALUE = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_NOT_EXISTS = new RegExp(String.raw`^!\s*(${LABEL_KEY})$`);
const RE_EXISTS = new RegExp(String.raw`^(${LABEL_KEY})$`);
const RE_SET = new RegExp(String.raw`^(${LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const RE_EQ = new RegExp(String.raw`^(${LABEL_KEY})\s*(==|=|!=)\s*(${LABEL_VALUE})$`);
const RE_CMP = new RegExp(String.raw`^(${LABEL_KEY})\s*([<>])\s*(-?\d+)$`);
const RE_VALUE = new RegExp(String.raw`^${LABEL_VALUE}$`);

/** Splits on commas outside parentheses, because set values (`in (a,b)`) contain commas too. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new SelectorError(`unbalanced parentheses in selector "${s}"`);
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in selector "${s}"`);
  parts.push(s.slice(start));
  return parts;
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.trim() === '') return [];
  return splitTopLevel(selector).map((raw) => {
    const part = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = RE_NOT_EXISTS.exec(part))) return { key: m[1]!, op: '!exists' };
    if ((m = RE_SET.exec(part))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      for (const v of values) {
        if (!RE_VALUE.test(v)) throw new SelectorError(`invalid label value "${v}" in "${part}"`);
      }
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values };
    }
    if ((m = RE_EQ.exec(part))) return { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
    if ((m = RE_CMP.exec(part))) return { key: m[1]!, op: m[2] === '>' ? 'gt' : 'lt', value: Number(m[3]) };
    if ((m = RE_EXISTS.exec(part))) return { key: m[1]!, op: 'exists' };
    throw new SelectorError(`unable to parse requirement "${part}"`);
  });
}

export function matchLabels(reqs: readonly LabelRequirement[], labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return has && v === r.value;
      // Kubernetes semantics: != and notin also match objects that do not carry the label at all.
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(v!)) return false;
        return r.op === 'gt' ? Number(v) > r.value : Number(v) < r.value;
      }
    }
  });
}

export interface FieldRequirement {
  path: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelector(selector: string): FieldRequirement[] {
  if (selector.trim() === '') return [];
  return selector.split(',').map((raw) => {
    const m = /^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*([^,]*?)\s*$/.exec(raw);
    if (!m) throw new SelectorError(`invalid field selector requirement "${raw}"`);
    return { path: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
  });
}

/** Any dotted path resolving to a scalar is accepted (kube allows only a per-resource set; tests need leniency). */
function fieldValue(obj: FakeObject, dotted: string): string {
  let cur: unknown = obj;
  for (const seg of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur === undefined || cur === null ? '' : String(cur);
}

export function matchFields(reqs: readonly FieldRequirement[], obj: FakeObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.path) === r.value) === (r.op === '='));
}

// ---------------------------------------------------------------------------------------------------------
// Resources served

const VERBS_ALL = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const VERBS_NS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

export const FAKE_RESOURCES: readonly FakeResourceDef[] = [
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, verbs: VERBS_ALL, shortNames: ['po'], categories: ['all'] },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, verbs: VERBS_ALL, shortNames: ['no'] },
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, verbs: VERBS_NS, shortNames: ['ns'] },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, verbs: VERBS_ALL, shortNames: ['svc'], categories: ['all'] },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, verbs: VERBS_ALL, shortNames: ['cm'] },
  { group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, verbs: VERBS_ALL, shortNames: ['deploy'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'replicasets', singular: 'replicaset', kind: 'ReplicaSet', namespaced: true, verbs: VERBS_ALL, shortNames: ['rs'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'statefulsets', singular: 'statefulset', kind: 'StatefulSet', namespaced: true, verbs: VERBS_ALL, shortNames: ['sts'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, verbs: VERBS_ALL, shortNames: ['ds'], categories: ['all'] },
  { group: 'batch', version: 'v1', plural: 'jobs', singular: 'job', kind: 'Job', namespaced: true, verbs: VERBS_ALL, categories: ['all'] },
];

interface DiscoveryResource {
  name: string;
  singularName: string;
  namespaced: boolean;
  kind: string;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  group?: string;
  version?: string;
}

/** Subresources are listed because real discovery has them and consumers must skip names containing '/'. */
const SUBRESOURCES: Record<string, DiscoveryResource[]> = {
  v1: [
    { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
    { name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'patch', 'update'] },
    { name: 'nodes/status', singularName: '', namespaced: false, kind: 'Node', verbs: ['get', 'patch', 'update'] },
    { name: 'namespaces/status', singularName: '', namespaced: false, kind: 'Namespace', verbs: ['get', 'patch', 'update'] },
    { name: 'services/status', singularName: '', namespaced: true, kind: 'Service', verbs: ['get', 'patch', 'update'] },
  ],
  'apps/v1': [
    { name: 'deployments/scale', singularName: '', namespaced: true, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] },
    { name: 'deployments/status', singularName: '', namespaced: true, kind: 'Deployment', verbs: ['get', 'patch', 'update'] },
    { name: 'replicasets/status', singularName: '', namespaced: true, kind: 'ReplicaSet', verbs: ['get', 'patch', 'update'] },
    { name: 'statefulsets/status', singularName: '', namespaced: true, kind: 'StatefulSet', verbs: ['get', 'patch', 'update'] },
    { name: 'daemonsets/status', singularName: '', namespaced: true, kind: 'DaemonSet', verbs: ['get', 'patch', 'update'] },
  ],
  'batch/v1': [{ name: 'jobs/status', singularName: '', namespaced: true, kind: 'Job', verbs: ['get', 'patch', 'update'] }],
};

function gvOf(def: Pick<FakeResourceDef, 'group' | 'version'>): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

function resourceList(groupVersion: string): unknown {
  const resources: DiscoveryResource[] = FAKE_RESOURCES.filter((d) => gvOf(d) === groupVersion).map((d) => ({
    name: d.plural,
    singularName: d.singular,
    namespaced: d.namespaced,
    kind: d.kind,
    verbs: d.verbs,
    ...(d.shortNames ? { shortNames: d.shortNames } : {}),
    ...(d.categories ? { categories: d.categories } : {}),
  }));
  resources.push(...(SUBRESOURCES[groupVersion] ?? []));
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

function apiGroups(): Array<{ name: string; versions: Array<{ groupVersion: string; version: string }>; preferredVersion: { groupVersion: string; version: string } }> {
  const byGroup = new Map<string, Set<string>>();
  for (const d of FAKE_RESOURCES) {
    if (d.group === '') continue;
    let vs = byGroup.get(d.group);
    if (!vs) byGroup.set(d.group, (vs = new Set()));
    vs.add(d.version);
  }
  return [...byGroup].map(([name, vs]) => {
    const versions = [...vs].map((version) => ({ groupVersion: `${name}/${version}`, version }));
    return { name, versions, preferredVersion: versions[0]! };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Certificates

interface Pki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

let pkiPromise: Promise<Pki> | undefined;

/** One CA + serving cert per process is enough: every fake instance listens on 127.0.0.1. */
function getPki(): Promise<Pki> {
  pkiPromise ??= createPki();
  return pkiPromise;
}

async function createPki(): Promise<Pki> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keyAlg = { name: 'ECDSA', namedCurve: 'P-256' };
  const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' };
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + 30 * 24 * 60 * 60 * 1000);

  const caKeys = (await webcrypto.subtle.generateKey(keyAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=fake-kube-apiserver-ca',
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const leafKeys = (await webcrypto.subtle.generateKey(keyAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const leafCert = await x509.X509CertificateGenerator.create({
    subject: 'CN=fake-kube-apiserver',
    issuer: caCert.subject,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore,
    notAfter,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
        { type: 'dns', value: 'kubernetes.default.svc' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  return {
    caPem: caCert.toString('pem') + '\n',
    certPem: leafCert.toString('pem') + '\n',
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
  };
}

// ---------------------------------------------------------------------------------------------------------
// Wire helpers

interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
  details?: Record<string, unknown>;
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
}

const NOT_FOUND = statusBody(404, 'NotFound', 'the server could not find the requested resource');

function sendJson(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
  res.end(text);
}

function sendStatus(res: http.ServerResponse, s: StatusBody): void {
  sendJson(res, s.code, s);
}

type Rendering = 'full' | 'meta';

/**
 * Content negotiation as kube-apiserver does it for JSON: media ranges are tried in order; one with `as=` is
 * acceptable only when it names the metadata-only kind valid for this request, otherwise JSON-compatible ranges
 * get the full object. Protobuf and Table are not offered, so such ranges are skipped.
 */
function negotiate(accept: string | undefined, wantedAs: 'PartialObjectMetadataList' | 'PartialObjectMetadata'): Rendering | null {
  if (accept === undefined || accept.trim() === '') return 'full';
  for (const range of accept.split(',')) {
    const [typeRaw, ...paramsRaw] = range.split(';');
    const type = (typeRaw ?? '').trim().toLowerCase();
    const params = new Map<string, string>();
    for (const p of paramsRaw) {
      const eq = p.indexOf('=');
      if (eq > 0) params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
    }
    const jsonish = type === 'application/json' || type === 'application/*' || type === '*/*';
    if (!jsonish) continue;
    const as = params.get('as');
    if (as === undefined) return 'full';
    if (as === wantedAs && params.get('g') === 'meta.k8s.io' && params.get('v') === 'v1') return 'meta';
  }
  return null;
}

function toPartial(obj: FakeObject): unknown {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

function kubeTimestamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------------------
// Store and watches

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  rv: number;
  type: EventType;
  def: FakeResourceDef;
  object: FakeObject;
  /** State before a MODIFIED, so selector transitions can become ADDED/DELETED for filtered watches. */
  previous?: FakeObject;
}

interface Watcher {
  def: FakeResourceDef;
  namespace: string | undefined;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  rendering: Rendering;
  res: http.ServerResponse;
  timers: NodeJS.Timeout[];
  ended: boolean;
}

type Route =
  | { type: 'doc'; body: unknown }
  | { type: 'text'; body: string }
  | { type: 'collection'; def: FakeResourceDef; namespace: string | undefined }
  | { type: 'item'; def: FakeResourceDef; namespace: string | undefined; name: string }
  | { type: 'notfound' };

type ReviewKind = 'TokenReview' | 'SubjectAccessReview';

const REVIEW_PATHS = new Map<string, ReviewKind>([
  ['/apis/authentication.k8s.io/v1/tokenreviews', 'TokenReview'],
  ['/apis/authorization.k8s.io/v1/subjectaccessreviews', 'SubjectAccessReview'],
]);

function defByGvr(groupVersion: string, plural: string): FakeResourceDef | undefined {
  return FAKE_RESOURCES.find((d) => gvOf(d) === groupVersion && d.plural === plural);
}

function defByKind(apiVersion: string, kind: string): FakeResourceDef | undefined {
  return FAKE_RESOURCES.find((d) => gvOf(d) === apiVersion && d.kind === kind);
}

function objKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function startFakeKubeApiServer(opts: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
  const useTls = opts.tls ?? true;
  const token = opts.token === undefined ? 'fake-token' : opts.token;
  const historyLimit = opts.historyLimit ?? 1000;
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;

  // Per resource (by apiVersion/kind), objects keyed "ns/name".
  const store = new Map<FakeResourceDef, Map<string, FakeObject>>(FAKE_RESOURCES.map((d) => [d, new Map()]));
  let currentRv = 0;
  const history: StoredEvent[] = [];
  // Highest resourceVersion whose events are no longer retained: resuming from below it is impossible.
  let compactedRv = 0;
  const watchers = new Set<Watcher>();
  let down = false;
  let stopped = false;

  let stats = freshStats();
  function freshStats(): FakeKubeStats {
    return { lists: 0, watches: 0, byPath: {}, listsByPath: {}, watchesByPath: {}, requests: [] };
  }

  // Delegated authentication / authorization state.
  let tokens = new Map<string, FakeTokenUser>();
  let authorizer: FakeAuthorizer = () => ({ allowed: false, reason: 'the fake kube-apiserver has no policy (call setAuthorizer)' });
  let sarLog: FakeSubjectAccessReviewSpec[] = [];
  let tokenReviewLog: FakeTokenReviewSpec[] = [];

  // ----- store -----

  function defFor(apiVersion: string, kind: string): FakeResourceDef {
    const def = defByKind(apiVersion, kind);
    if (!def) throw new Error(`fake kube-apiserver does not serve ${apiVersion}/${kind}`);
    return def;
  }

  function recordEvent(ev: StoredEvent): void {
    history.push(ev);
    while (history.length > historyLimit) compactedRv = history.shift()!.rv;
    for (const w of watchers) deliver(w, ev);
  }

  function upsert(input: FakeObject): FakeObject {
    const def = defFor(input.apiVersion, input.kind);
    const obj = structuredClone(input);
    const meta = obj.metadata;
    if (!meta?.name) throw new Error('upsert: metadata.name is required');
    if (def.namespaced) {
      if (!meta.namespace) throw new Error(`upsert: ${def.kind} ${meta.name} is namespaced and needs metadata.namespace`);
    } else {
      delete meta.namespace;
    }
    const objects = store.get(def)!;
    const key = objKey(meta.namespace, meta.name);
    const previous = objects.get(key);
    meta.uid ??= previous?.metadata.uid ?? randomUUID();
    meta.creationTimestamp ??= previous?.metadata.creationTimestamp ?? kubeTimestamp(new Date());
    meta.resourceVersion = String(++currentRv);
    objects.set(key, obj);
    recordEvent(previous ? { rv: currentRv, type: 'MODIFIED', def, object: obj, previous } : { rv: currentRv, type: 'ADDED', def, object: obj });
    return structuredClone(obj);
  }

  function remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const def = defFor(apiVersion, kind);
    const objects = store.get(def)!;
    const key = objKey(def.namespaced ? namespace : undefined, name);
    const existing = objects.get(key);
    if (!existing) return false;
    objects.delete(key);
    // The DELETED event carries the last state stamped with the deletion's resourceVersion, as etcd-backed kube does.
    const last = structuredClone(existing);
    last.metadata.resourceVersion = String(++currentRv);
    recordEvent({ rv: currentRv, type: 'DELETED', def, object: last });
    return true;
  }

  function get(apiVersion: string, kind: string, namespace: string | undefined, name: string): FakeObject | undefined {
    const def = defFor(apiVersion, kind);
    const obj = store.get(def)!.get(objKey(def.namespaced ? namespace : undefined, name));
    return obj ? structuredClone(obj) : undefined;
  }

  function addPod(namespace: string, name: string, labels: Record<string, string> = {}, extra: Partial<FakeObject> = {}): FakeObject {
    const { metadata: extraMeta, ...rest } = extra;
    return upsert({
      apiVersion: 'v1',
      kind: 'Pod',
      spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
      status: { phase: 'Running' },
      ...rest,
      metadata: { ...extraMeta, name, namespace, labels },
    });
  }

  function addNode(name: string, labels: Record<string, string> = {}): FakeObject {
    return upsert({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: {}, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  }

  function addNamespace(name: string, labels: Record<string, string> = {}): FakeObject {
    return upsert({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }

  function addDeployment(namespace: string, name: string, labels: Record<string, string> = {}): FakeObject {
    return upsert({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] } },
      },
      status: { replicas: 1, readyReplicas: 1 },
    });
  }

  // ----- watches -----

  function matches(w: Pick<Watcher, 'namespace' | 'labels' | 'fields'>, obj: FakeObject): boolean {
    if (w.namespace !== undefined && obj.metadata.namespace !== w.namespace) return false;
    return matchLabels(w.labels, obj.metadata.labels) && matchFields(w.fields, obj);
  }

  function writeEvent(w: Watcher, type: string, object: unknown): void {
    if (w.ended) return;
    w.res.write(JSON.stringify({ type, object }) + '\n');
  }

  function render(w: Watcher, obj: FakeObject): unknown {
    return w.rendering === 'meta' ? toPartial(obj) : obj;
  }

  function deliver(w: Watcher, ev: StoredEvent): void {
    if (w.ended || ev.def !== w.def) return;
    const now = matches(w, ev.object);
    if (ev.type === 'MODIFIED' && ev.previous) {
      const before = matches(w, ev.previous);
      // A filtered watch sees objects enter or leave its selector as ADDED/DELETED, like kube's watch cache.
      if (now && before) writeEvent(w, 'MODIFIED', render(w, ev.object));
      else if (now) writeEvent(w, 'ADDED', render(w, ev.object));
      else if (before) writeEvent(w, 'DELETED', render(w, ev.object));
      return;
    }
    if (now) writeEvent(w, ev.type, render(w, ev.object));
  }

  function endWatch(w: Watcher): void {
    if (w.ended) return;
    w.ended = true;
    for (const t of w.timers) clearTimeout(t);
    watchers.delete(w);
    w.res.end();
  }

  function bookmarkObject(w: Watcher, annotations?: Record<string, string>): unknown {
    const metadata = { resourceVersion: String(currentRv), ...(annotations ? { annotations } : {}) };
    return w.rendering === 'meta'
      ? { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata }
      : { kind: w.def.kind, apiVersion: gvOf(w.def), metadata };
  }

  function sortedObjects(def: FakeResourceDef): Array<[string, FakeObject]> {
    return [...store.get(def)!].sort((a, b) => compareKeys(a[0], b[0]));
  }

  function startWatch(
    res: http.ServerResponse,
    def: FakeResourceDef,
    namespace: string | undefined,
    query: URLSearchParams,
    labels: LabelRequirement[],
    fields: FieldRequirement[],
    rendering: Rendering,
  ): void {
    const rvParam = query.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) {
      sendStatus(res, statusBody(400, 'BadRequest', `invalid resource version "${rvParam}"`));
      return;
    }
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
    const w: Watcher = { def, namespace, labels, fields, rendering, res, timers: [], ended: false };

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();

    const fromRv = rvParam === '' ? 0 : Number(rvParam);
    const sendInitial = query.get('sendInitialEvents') === 'true';
    if (fromRv === 0 || sendInitial) {
      // Unset or "0" means "current state first": synthetic ADDED events for everything that matches.
      for (const [, obj] of sortedObjects(def)) if (matches(w, obj)) writeEvent(w, 'ADDED', render(w, obj));
      if (sendInitial) writeEvent(w, 'BOOKMARK', bookmarkObject(w, { 'k8s.io/initial-events-end': 'true' }));
    } else if (fromRv < compactedRv) {
      writeEvent(w, 'ERROR', statusBody(410, 'Expired', `too old resource version: ${fromRv} (${compactedRv})`));
      res.end();
      return;
    } else {
      for (const ev of history) if (ev.rv > fromRv) deliver(w, ev);
    }

    watchers.add(w);
    res.on('close', () => endWatch(w));
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      w.timers.push(setTimeout(() => endWatch(w), timeoutSeconds * 1000));
    }
    if (query.get('allowWatchBookmarks') === 'true') {
      const t = setInterval(() => writeEvent(w, 'BOOKMARK', bookmarkObject(w)), bookmarkIntervalMs);
      t.unref();
      w.timers.push(t);
    }
  }

  // ----- lists -----

  function serveList(
    res: http.ServerResponse,
    def: FakeResourceDef,
    namespace: string | undefined,
    query: URLSearchParams,
    labels: LabelRequirement[],
    fields: FieldRequirement[],
    rendering: Rendering,
  ): void {
    const filter = { namespace, labels, fields };
    let listRv = currentRv;
    let after: string | undefined;
    const cont = query.get('continue');
    if (cont) {
      try {
        const parsed = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as { rv: number; after: string };
        listRv = parsed.rv;
        after = parsed.after;
      } catch {
        sendStatus(res, statusBody(400, 'BadRequest', 'invalid continue token'));
        return;
      }
      if (listRv < compactedRv) {
        sendStatus(res, statusBody(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
        return;
      }
    }
    let entries = sortedObjects(def).filter(([k, o]) => (after === undefined || k > after) && matches(filter, o));
    const limit = Number(query.get('limit') ?? '0');
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    // Pages are cut from the live store, not a snapshot; good enough for paging tests, not for consistency tests.
    if (Number.isInteger(limit) && limit > 0 && entries.length > limit) {
      metadata['remainingItemCount'] = entries.length - limit;
      entries = entries.slice(0, limit);
      metadata['continue'] = Buffer.from(JSON.stringify({ rv: listRv, after: entries[entries.length - 1]![0] })).toString('base64url');
    }
    const objects = entries.map(([, o]) => o);
    if (rendering === 'meta') {
      sendJson(res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: objects.map(toPartial) });
    } else {
      sendJson(res, 200, { kind: `${def.kind}List`, apiVersion: gvOf(def), metadata, items: objects });
    }
  }

  // ----- routing -----

  function route(segments: string[], hostPort: string): Route {
    const [a, b, c, ...rest] = segments;
    if (segments.length === 0) {
      const paths = ['/api', '/api/v1', '/apis', ...apiGroups().flatMap((g) => [`/apis/${g.name}`, ...g.versions.map((v) => `/apis/${v.groupVersion}`)]), '/healthz', '/livez', '/readyz', '/version'];
      return { type: 'doc', body: { paths } };
    }
    if (segments.length === 1 && (a === 'healthz' || a === 'livez' || a === 'readyz')) return { type: 'text', body: 'ok' };
    if (segments.length === 1 && a === 'version') {
      return {
        type: 'doc',
        body: { major: '1', minor: '36', gitVersion: 'v1.36.0-fake', gitCommit: 'fake', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.26', compiler: 'gc', platform: 'linux/amd64' },
      };
    }
    if (a === 'api') {
      if (segments.length === 1) {
        return { type: 'doc', body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: hostPort }] } };
      }
      if (b !== 'v1') return { type: 'notfound' };
      return resourceRoute('v1', segments.slice(2));
    }
    if (a === 'apis') {
      const groups = apiGroups();
      if (segments.length === 1) return { type: 'doc', body: { kind: 'APIGroupList', apiVersion: 'v1', groups } };
      const group = groups.find((g) => g.name === b);
      if (!group) return { type: 'notfound' };
      if (segments.length === 2) return { type: 'doc', body: { kind: 'APIGroup', apiVersion: 'v1', ...group } };
      if (!group.versions.some((v) => v.version === c)) return { type: 'notfound' };
      return resourceRoute(`${b}/${c}`, rest);
    }
    return { type: 'notfound' };
  }

  function resourceRoute(groupVersion: string, rest: string[]): Route {
    if (rest.length === 0) return { type: 'doc', body: resourceList(groupVersion) };
    const [r0, r1, r2, r3] = rest;
    if (rest.length <= 2) {
      const def = defByGvr(groupVersion, r0!);
      if (!def) return { type: 'notfound' };
      if (rest.length === 1) return { type: 'collection', def, namespace: undefined };
      if (def.namespaced) return { type: 'notfound' };
      return { type: 'item', def, namespace: undefined, name: r1! };
    }
    if (r0 !== 'namespaces' || rest.length > 4) return { type: 'notfound' };
    const def = defByGvr(groupVersion, r2!);
    if (!def || !def.namespaced) return { type: 'notfound' };
    if (rest.length === 3) return { type: 'collection', def, namespace: r1! };
    return { type: 'item', def, namespace: r1!, name: r3! };
  }

  function classify(method: string, r: Route, query: URLSearchParams): FakeRequestVerb {
    if (method !== 'GET') return 'other';
    if (r.type === 'doc' || r.type === 'text') return 'discovery';
    if (r.type === 'item') return 'get';
    if (r.type === 'collection') return isWatch(query) ? 'watch' : 'list';
    return 'other';
  }

  function isWatch(query: URLSearchParams): boolean {
    const v = query.get('watch');
    return v === 'true' || v === '1';
  }

  function bump(rec: Record<string, number>, key: string): void {
    rec[key] = (rec[key] ?? 0) + 1;
  }

  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    let segments: string[];
    let r: Route;
    try {
      segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
      r = route(segments, `127.0.0.1:${port}`);
    } catch {
      r = { type: 'notfound' };
    }
    const verb = classify(method, r, url.searchParams);
    const accept = req.headers.accept;
    stats.requests.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), accept, verb });
    bump(stats.byPath, url.pathname);
    if (verb === 'list') {
      stats.lists++;
      bump(stats.listsByPath, url.pathname);
    } else if (verb === 'watch') {
      stats.watches++;
      bump(stats.watchesByPath, url.pathname);
    }

    if (down) {
      sendStatus(res, statusBody(503, 'ServiceUnavailable', 'the fake kube-apiserver is down (setDown(true))'));
      return;
    }
    if (token !== null && req.headers.authorization !== `Bearer ${token}`) {
      sendStatus(res, statusBody(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const review = REVIEW_PATHS.get(url.pathname);
    if (review) {
      if (method !== 'POST') {
        sendStatus(res, statusBody(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
        return;
      }
      serveReview(req, res, review);
      return;
    }
    if (r.type === 'notfound') {
      sendStatus(res, NOT_FOUND);
      return;
    }
    if (method !== 'GET') {
      sendStatus(res, statusBody(405, 'MethodNotAllowed', `the fake kube-apiserver serves GET only, not ${method}`));
      return;
    }
    if (r.type === 'doc') {
      sendJson(res, 200, r.body);
      return;
    }
    if (r.type === 'text') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(r.body);
      return;
    }
    if (r.type === 'item') {
      const rendering = negotiate(accept, 'PartialObjectMetadata');
      if (rendering === null) {
        sendStatus(res, statusBody(406, 'NotAcceptable', `only the following media types are accepted: application/json`));
        return;
      }
      const obj = store.get(r.def)!.get(objKey(r.namespace, r.name));
      if (!obj) {
        sendStatus(res, statusBody(404, 'NotFound', `${r.def.plural}${r.def.group ? '.' + r.def.group : ''} "${r.name}" not found`, { name: r.name, group: r.def.group, kind: r.def.plural }));
        return;
      }
      sendJson(res, 200, rendering === 'meta' ? toPartial(obj) : obj);
      return;
    }

    const watch = verb === 'watch';
    const rendering = negotiate(accept, watch ? 'PartialObjectMetadata' : 'PartialObjectMetadataList');
    if (rendering === null) {
      sendStatus(res, statusBody(406, 'NotAcceptable', `only the following media types are accepted: application/json`));
      return;
    }
    let labels: LabelRequirement[];
    let fields: FieldRequirement[];
    try {
      labels = parseLabelSelector(url.searchParams.get('labelSelector') ?? '');
      fields = parseFieldSelector(url.searchParams.get('fieldSelector') ?? '');
    } catch (err) {
      sendStatus(res, statusBody(400, 'BadRequest', (err as Error).message));
      return;
    }
    if (watch) startWatch(res, r.def, r.namespace, url.searchParams, labels, fields, rendering);
    else serveList(res, r.def, r.namespace, url.searchParams, labels, fields, rendering);
  }

  // ----- TokenReview / SubjectAccessReview -----

  function serveReview(req: http.IncomingMessage, res: http.ServerResponse, kind: ReviewKind): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1024 * 1024) chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      try {
        if (size > 1024 * 1024) {
          sendStatus(res, statusBody(413, 'RequestEntityTooLarge', 'request entity too large'));
          return;
        }
        let body: { apiVersion?: unknown; kind?: unknown; spec?: unknown };
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          if (body === null || typeof body !== 'object') throw new Error('not an object');
        } catch (err) {
          sendStatus(res, statusBody(400, 'BadRequest', `the fake kube-apiserver cannot decode the body: ${(err as Error).message}`));
          return;
        }
        const apiVersion = kind === 'TokenReview' ? 'authentication.k8s.io/v1' : 'authorization.k8s.io/v1';
        if ((body.kind !== undefined && body.kind !== kind) || (body.apiVersion !== undefined && body.apiVersion !== apiVersion)) {
          sendStatus(res, statusBody(400, 'BadRequest', `expected ${apiVersion} ${kind}, got ${String(body.apiVersion)} ${String(body.kind)}`));
          return;
        }
        const spec = (body.spec ?? {}) as Record<string, unknown>;
        if (kind === 'TokenReview') answerTokenReview(res, spec as FakeTokenReviewSpec, apiVersion);
        else answerSubjectAccessReview(res, spec as FakeSubjectAccessReviewSpec, apiVersion);
      } catch (err) {
        if (!res.headersSent) sendStatus(res, statusBody(500, 'InternalError', `fake kube-apiserver bug: ${(err as Error).stack ?? String(err)}`));
      }
    });
  }

  function invalid(res: http.ServerResponse, kind: ReviewKind, group: string, message: string): void {
    // kube-apiserver answers validation failures with 422 Invalid.
    sendStatus(res, statusBody(422, 'Invalid', `${kind}.${group} is invalid: ${message}`, { group, kind }));
  }

  function answerTokenReview(res: http.ServerResponse, spec: FakeTokenReviewSpec, apiVersion: string): void {
    tokenReviewLog.push(structuredClone(spec));
    if (typeof spec.token !== 'string' || spec.token === '') {
      invalid(res, 'TokenReview', 'authentication.k8s.io', 'spec.token: Required value');
      return;
    }
    const user = tokens.get(spec.token);
    const status = user
      ? {
          authenticated: true,
          user: {
            username: user.username,
            ...(user.uid ? { uid: user.uid } : {}),
            ...(user.groups ? { groups: user.groups } : {}),
            ...(user.extra ? { extra: user.extra } : {}),
          },
          ...(spec.audiences ? { audiences: spec.audiences } : {}),
        }
      : { authenticated: false, user: {}, error: 'invalid bearer token' };
    sendJson(res, 201, { kind: 'TokenReview', apiVersion, metadata: { creationTimestamp: null }, spec, status });
  }

  function answerSubjectAccessReview(res: http.ServerResponse, spec: FakeSubjectAccessReviewSpec, apiVersion: string): void {
    sarLog.push(structuredClone(spec));
    const group = 'authorization.k8s.io';
    const hasResource = spec.resourceAttributes !== undefined && spec.resourceAttributes !== null;
    const hasNonResource = spec.nonResourceAttributes !== undefined && spec.nonResourceAttributes !== null;
    if (hasResource === hasNonResource) {
      invalid(res, 'SubjectAccessReview', group, 'spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified');
      return;
    }
    if (!spec.user && !(spec.groups && spec.groups.length > 0)) {
      invalid(res, 'SubjectAccessReview', group, 'spec.user: Invalid value: "": at least one of user or group must be specified');
      return;
    }
    let decision: FakeAuthorizerDecision;
    try {
      decision = authorizer(structuredClone(spec));
    } catch (err) {
      sendStatus(res, statusBody(500, 'InternalError', `Internal error occurred: fake authorizer failed: ${(err as Error).message}`));
      return;
    }
    const status = {
      allowed: decision.allowed,
      ...(decision.denied ? { denied: true } : {}),
      ...(decision.reason ? { reason: decision.reason } : {}),
      ...(decision.evaluationError ? { evaluationError: decision.evaluationError } : {}),
    };
    sendJson(res, 201, { kind: 'SubjectAccessReview', apiVersion, metadata: { creationTimestamp: null }, spec, status });
  }

  // ----- server -----

  const pki = useTls ? await getPki() : undefined;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    try {
      handle(req, res);
    } catch (err) {
      if (!res.headersSent) sendStatus(res, statusBody(500, 'InternalError', `fake kube-apiserver bug: ${(err as Error).stack ?? String(err)}`));
      else res.destroy(err as Error);
    }
  };
  const server: http.Server = pki ? https.createServer({ key: pki.keyPem, cert: pki.certPem }, onRequest) : http.createServer(onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;

  const dir = await mkdtemp(path.join(tmpdir(), 'fake-kube-apiserver-'));
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  const cluster: Record<string, unknown> = { server: url };
  if (pki) cluster['certificate-authority-data'] = Buffer.from(pki.caPem).toString('base64');
  // client-node refuses http:// servers unless TLS verification is explicitly skipped.
  else cluster['insecure-skip-tls-verify'] = true;
  const kubeconfig = JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster }],
      users: [{ name: 'fake-user', user: token === null ? {} : { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake-user', namespace: 'default' } }],
      'current-context': 'fake',
    },
    null,
    2,
  );
  await writeFile(kubeconfigPath, kubeconfig, { mode: 0o600 });

  function endAllWatches(): void {
    for (const w of [...watchers]) endWatch(w);
  }

  return {
    url,
    caPem: pki?.caPem ?? '',
    kubeconfigPath,
    kubeconfig,
    token,
    get resourceVersion() {
      return String(currentRv);
    },
    get openWatches() {
      return watchers.size;
    },
    get requests() {
      return stats.requests;
    },
    upsert,
    remove,
    get,
    addPod,
    addNode,
    addNamespace,
    addDeployment,
    stats() {
      return {
        lists: stats.lists,
        watches: stats.watches,
        byPath: { ...stats.byPath },
        listsByPath: { ...stats.listsByPath },
        watchesByPath: { ...stats.watchesByPath },
        requests: stats.requests,
      };
    },
    resetStats() {
      stats = freshStats();
      sarLog = [];
      tokenReviewLog = [];
    },
    setDown(d: boolean) {
      down = d;
      if (d) endAllWatches();
    },
    closeWatches(o?: { expired?: boolean }) {
      for (const w of [...watchers]) {
        if (o?.expired) writeEvent(w, 'ERROR', statusBody(410, 'Expired', `too old resource version: watch expired by closeWatches()`));
        endWatch(w);
      }
    },
    expireHistory() {
      history.length = 0;
      compactedRv = currentRv;
    },
    setAuthenticationConfigMap(data: Record<string, string>) {
      return upsert({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extension-apiserver-authentication', namespace: 'kube-system' }, data: { ...data } });
    },
    setConfigMap(namespace: string, name: string, data: Record<string, string>) {
      return upsert({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { ...data } });
    },
    setTokens(map: Record<string, FakeTokenUser>) {
      tokens = new Map(Object.entries(structuredClone(map)));
    },
    setAuthorizer(fn: FakeAuthorizer) {
      authorizer = fn;
    },
    sarRequests() {
      return structuredClone(sarLog);
    },
    tokenReviewRequests() {
      return structuredClone(tokenReviewLog);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      endAllWatches();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
