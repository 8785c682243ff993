import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, ListWatch, Watch, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { FastifyRequest } from 'fastify';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { AdapterError } from '../errors.ts';
import type { ServeOptions } from '../cli/serve-options.ts';
import { loadKubeConfig } from './kubeconfig.ts';
import { forbiddenMessage, requestAttributes } from './request-attributes.ts';

/** Who made a request, as Kubernetes' authenticators describe a user. */
export interface UserInfo {
  readonly name: string;
  readonly uid?: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, string[]>>;
}

/** Inputs of request-header (front-proxy) and client-certificate authentication. */
export interface AuthenticationConfig {
  requestheaderCaPem?: string;
  requestheaderAllowedNames: string[];
  usernameHeaders: string[];
  uidHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
  clientCaPem?: string;
}

export interface Guard {
  /** Trust anchors for client certificates, for the TLS server's `ca` option; follows the ConfigMap. */
  readonly clientCaPem: string | undefined;
  /** Authenticates and authorizes; returns the user's name or throws a 401/403/500 AdapterError. */
  check(request: FastifyRequest): Promise<string>;
  /** Called after `clientCaPem` changed, so the TLS server can trust the new CAs on new connections. */
  onClientCaChange(listener: (clientCaPem: string | undefined) => void): void;
  stop(): Promise<void>;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

class UnauthorizedError extends AdapterError {
  constructor() {
    super(401, 'Unauthorized', 'Unauthorized');
  }
}

function parsePemBundle(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}

function jsonList(value: string | undefined): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed: unknown = JSON.parse(value);
  return Array.isArray(parsed) ? parsed.map(String) : undefined;
}

const AUTH_CONFIGMAP_NAMESPACE = 'kube-system';
const AUTH_CONFIGMAP_NAME = 'extension-apiserver-authentication';

/** Reads kube-system/extension-apiserver-authentication, which kube-apiserver writes for aggregated servers. */
export async function readAuthenticationConfigMap(kc: KubeConfig): Promise<AuthenticationConfig> {
  const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: AUTH_CONFIGMAP_NAME, namespace: AUTH_CONFIGMAP_NAMESPACE });
  return authenticationConfigFromData(cm.data ?? {});
}

export function authenticationConfigFromData(d: Readonly<Record<string, string>>): AuthenticationConfig {
  return {
    ...(d['requestheader-client-ca-file'] ? { requestheaderCaPem: d['requestheader-client-ca-file'] } : {}),
    requestheaderAllowedNames: jsonList(d['requestheader-allowed-names']) ?? [],
    usernameHeaders: jsonList(d['requestheader-username-headers']) ?? [],
    uidHeaders: jsonList(d['requestheader-uid-headers']) ?? [],
    groupHeaders: jsonList(d['requestheader-group-headers']) ?? [],
    extraHeaderPrefixes: jsonList(d['requestheader-extra-headers-prefix']) ?? [],
    ...(d['client-ca-file'] ? { clientCaPem: d['client-ca-file'] } : {}),
  };
}

/** All values of a header, keeping repeated headers apart (Node joins them with commas otherwise). */
function headerValues(request: FastifyRequest, name: string): string[] {
  const raw = request.raw.rawHeaders;
  const out: string[] = [];
  const lower = name.toLowerCase();
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === lower) out.push(raw[i + 1]!);
  return out;
}

/**
 * Authentication and authorization delegated to the cluster, as every aggregated API server does:
 * front-proxy certificate + X-Remote-* headers, x509 client certificates, bearer tokens through
 * TokenReview, then a SubjectAccessReview per request (both cached for 10 s).
 */
export class DelegatedAuth {
  #config: AuthenticationConfig;
  #requestheaderCas: X509Certificate[];
  #clientCas: X509Certificate[];
  readonly #authn: AuthenticationV1Api | null;
  readonly #authz: AuthorizationV1Api;
  readonly #options: DelegatedAuthOptions;
  readonly #log: Logger;
  readonly #tokenCache: LRUCache<string, UserInfo | false>;
  readonly #decisionCache: LRUCache<string, { allowed: boolean; reason: string }>;

  constructor(
    config: AuthenticationConfig,
    clients: { authn: AuthenticationV1Api | null; authz: AuthorizationV1Api },
    options: DelegatedAuthOptions,
    log: Logger,
  ) {
    // Kubernetes' delegated defaults: 10 s for tokens, allowed and denied decisions alike.
    this.#tokenCache = new LRUCache({ max: 10_000, ttl: options.tokenCacheTtlMs ?? 10_000 });
    this.#decisionCache = new LRUCache({ max: 50_000, ttl: Math.max(options.authorizedCacheTtlMs ?? 10_000, options.unauthorizedCacheTtlMs ?? 10_000) });
    this.#config = config;
    this.#requestheaderCas = parsePemBundle(config.requestheaderCaPem);
    this.#clientCas = parsePemBundle(config.clientCaPem);
    this.#authn = clients.authn;
    this.#authz = clients.authz;
    this.#options = options;
    this.#log = log;
  }

  get trustAnchorsPem(): string | undefined {
    const pems = [this.#config.requestheaderCaPem, this.#config.clientCaPem].filter(Boolean);
    return pems.length ? pems.join('\n') : undefined;
  }

  updateConfig(config: AuthenticationConfig): boolean {
    const changed = JSON.stringify(config) !== JSON.stringify(this.#config);
    if (changed) {
      this.#config = config;
      this.#requestheaderCas = parsePemBundle(config.requestheaderCaPem);
      this.#clientCas = parsePemBundle(config.clientCaPem);
    }
    return changed;
  }

  /**
   * The union of k8s.io/apiserver's delegating authenticator: front proxy, x509 client certificate, bearer token.
   * Each one authenticates, has no opinion (not configured, no credential of its kind) or fails; the first success
   * wins. When none succeeds, any failure means 401 (a bad certificate or token never becomes anonymous).
   */
  async authenticate(request: FastifyRequest): Promise<UserInfo> {
    let failed = false;
    // Under HTTP/2 this is Node's proxy onto the session's TLS socket, so the peer certificate is the connection's.
    const socket = request.raw.socket as TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(true) : undefined;
    if (peer && Object.keys(peer).length > 0) {
      // `authorized` says the chain ends at one of the server's CAs; the root says which one.
      const root = socket.authorized ? chainRoot(peer) : undefined;
      if (this.#requestheaderCas.length > 0) {
        if (root && this.#issuedBy(root, this.#requestheaderCas) && this.#allowedFrontProxy(peer)) {
          const user = this.#fromRequestHeaders(request);
          if (user) return withAuthenticatedGroup(user);
        } else {
          failed = true;
        }
      }
      if (this.#clientCas.length > 0) {
        if (root && this.#issuedBy(root, this.#clientCas)) {
          const cn = peer.subject?.CN;
          // An empty common name is "no opinion" (CommonNameUserConversion).
          if (typeof cn === 'string' && cn) {
            const o = peer.subject?.O;
            return withAuthenticatedGroup({ name: cn, groups: o === undefined ? [] : Array.isArray(o) ? o : [o], extra: {} });
          }
        } else {
          failed = true;
        }
      }
    }
    const token = bearerToken(request.headers.authorization);
    if (token) {
      const user = await this.#reviewToken(token);
      if (user) return withAuthenticatedGroup(user);
      failed = true;
    }
    if (failed || !this.#options.anonymousAuth) throw new UnauthorizedError();
    return { name: 'system:anonymous', groups: ['system:unauthenticated'], extra: {} };
  }

  async authorize(request: FastifyRequest, user: UserInfo): Promise<void> {
    if (user.groups.includes('system:masters')) return;
    const path = request.url.split('?')[0]!;
    if (this.#options.authorizationAlwaysAllowPaths.some((p) => (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : p === path))) return;
    const attributes = requestAttributes(request.method, request.url);
    const spec = {
      user: user.name,
      ...(user.uid ? { uid: user.uid } : {}),
      groups: [...user.groups],
      extra: user.extra as Record<string, string[]>,
      ...(attributes.kind === 'resource'
        ? {
            resourceAttributes: {
              namespace: attributes.namespace,
              verb: attributes.verb,
              group: attributes.group,
              version: attributes.version,
              resource: attributes.resource,
              subresource: attributes.subresource,
              name: attributes.name,
            },
          }
        : { nonResourceAttributes: { path: attributes.path, verb: attributes.verb } }),
    };
    const key = JSON.stringify(spec);
    let decision = this.#decisionCache.get(key);
    if (!decision) {
      let review;
      try {
        review = await this.#authz.createSubjectAccessReview({
          body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec },
        });
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'SubjectAccessReview failed');
        throw new AdapterError(500, 'InternalError', `Internal error occurred: authorization check failed: ${(err as Error).message.split('\n')[0]}`);
      }
      decision = { allowed: review.status?.allowed === true && review.status?.denied !== true, reason: review.status?.reason ?? '' };
      const ttl = decision.allowed ? (this.#options.authorizedCacheTtlMs ?? 10_000) : (this.#options.unauthorizedCacheTtlMs ?? 10_000);
      if (ttl > 0) this.#decisionCache.set(key, decision, { ttl });
    }
    if (!decision.allowed) throw new AdapterError(403, 'Forbidden', forbiddenMessage(user.name, attributes, decision.reason));
  }

  #issuedBy(root: PeerCertificate, cas: readonly X509Certificate[]): boolean {
    return cas.some((ca) => ca.fingerprint256 === root.fingerprint256);
  }

  /** requestheader-allowed-names: empty allows any common name signed by the front-proxy CA. */
  #allowedFrontProxy(peer: PeerCertificate): boolean {
    const allowed = this.#config.requestheaderAllowedNames;
    const cn = peer.subject?.CN;
    if (allowed.length > 0 && (typeof cn !== 'string' || !allowed.includes(cn))) {
      this.#log.warn({ cn }, 'front-proxy client certificate has a common name that is not in requestheader-allowed-names');
      return false;
    }
    return true;
  }

  #fromRequestHeaders(request: FastifyRequest): UserInfo | null {
    const first = (names: string[]): string | undefined => {
      for (const n of names) for (const v of headerValues(request, n)) if (v.trim()) return v.trim();
      return undefined;
    };
    const name = first(this.#config.usernameHeaders);
    if (!name) return null;
    const uid = first(this.#config.uidHeaders);
    const groups = this.#config.groupHeaders.flatMap((h) => headerValues(request, h)).filter((g) => g !== '');
    const extra: Record<string, string[]> = {};
    const raw = request.raw.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const header = raw[i]!.toLowerCase();
      const prefix = this.#config.extraHeaderPrefixes.find((p) => header.startsWith(p.toLowerCase()));
      if (!prefix) continue;
      let key = header.slice(prefix.length);
      try {
        key = decodeURIComponent(key);
      } catch {
        /* keep the raw key */
      }
      (extra[key] ??= []).push(raw[i + 1]!);
    }
    return { name, ...(uid ? { uid } : {}), groups, extra };
  }

  async #reviewToken(token: string): Promise<UserInfo | null> {
    if (!this.#authn) return null;
    const key = createHash('sha256').update(token).digest('hex');
    const cached = this.#tokenCache.get(key);
    if (cached !== undefined) return cached || null;
    let review;
    try {
      review = await this.#authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'TokenReview failed');
      throw new AdapterError(500, 'InternalError', 'Internal error occurred: token review failed');
    }
    const u = review.status?.authenticated ? review.status.user : undefined;
    const user: UserInfo | false = u?.username
      ? { name: u.username, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups ?? [], extra: (u.extra ?? {}) as Record<string, string[]> }
      : false;
    if ((this.#options.tokenCacheTtlMs ?? 10_000) > 0) this.#tokenCache.set(key, user);
    return user || null;
  }
}

/** The token of `Authorization: Bearer <token>` as kube-apiserver reads it: scheme case-insensitive, empty = none. */
function bearerToken(header: string | undefined): string | undefined {
  const parts = (header ?? '').trim().split(' ');
  if (parts.length < 2 || parts[0]!.toLowerCase() !== 'bearer') return undefined;
  return parts[1] || undefined;
}

function chainRoot(cert: DetailedPeerCertificate | PeerCertificate): PeerCertificate {
  let current = cert as DetailedPeerCertificate;
  for (let i = 0; i < 10 && current.issuerCertificate && current.issuerCertificate !== current; i++) {
    if (current.issuerCertificate.fingerprint256 === current.fingerprint256) break;
    current = current.issuerCertificate;
  }
  return current;
}

function withAuthenticatedGroup(user: UserInfo): UserInfo {
  if (user.groups.includes('system:authenticated') || user.groups.includes('system:unauthenticated')) return user;
  return { ...user, groups: [...user.groups, 'system:authenticated'] };
}

function readOptionalFile(file: string | undefined, what: string): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** Flags win over the ConfigMap, which wins over Kubernetes' defaults. */
function pick(flag: readonly string[] | undefined, fromConfigMap: readonly string[], fallback: string): string[] {
  if (flag && flag.length) return [...flag];
  return fromConfigMap.length ? [...fromConfigMap] : [fallback];
}

export type DelegatedAuthOptions = Pick<ServeOptions, 'anonymousAuth' | 'authorizationAlwaysAllowPaths'> &
  Partial<Pick<ServeOptions, 'tokenCacheTtlMs' | 'authorizedCacheTtlMs' | 'unauthorizedCacheTtlMs'>>;

/** Builds the guard from flags and, unless skipped, the cluster's authentication ConfigMap. */
export async function createDelegatedGuard(options: ServeOptions, log: Logger): Promise<Guard> {
  const authnKc = loadKubeConfig({ ...options, ...(options.authenticationKubeconfig ? { kubeconfig: options.authenticationKubeconfig } : {}) });
  const authzKc = loadKubeConfig({ ...options, ...(options.authorizationKubeconfig ? { kubeconfig: options.authorizationKubeconfig } : {}) });
  const fromFlags = (base: AuthenticationConfig): AuthenticationConfig => {
    const requestheaderCaPem = readOptionalFile(options.requestheaderClientCaFile, '--requestheader-client-ca-file') ?? base.requestheaderCaPem;
    const clientCaPem = readOptionalFile(options.clientCaFile, '--client-ca-file') ?? base.clientCaPem;
    return {
      ...base,
      ...(requestheaderCaPem ? { requestheaderCaPem } : {}),
      ...(clientCaPem ? { clientCaPem } : {}),
      requestheaderAllowedNames: options.requestheaderAllowedNames ?? base.requestheaderAllowedNames,
      usernameHeaders: pick(options.requestheaderUsernameHeaders, base.usernameHeaders, 'X-Remote-User'),
      uidHeaders: pick(options.requestheaderUidHeaders, base.uidHeaders, 'X-Remote-Uid'),
      groupHeaders: pick(options.requestheaderGroupHeaders, base.groupHeaders, 'X-Remote-Group'),
      extraHeaderPrefixes: pick(options.requestheaderExtraHeadersPrefix, base.extraHeaderPrefixes, 'X-Remote-Extra-'),
    };
  };
  const empty: AuthenticationConfig = { requestheaderAllowedNames: [], usernameHeaders: [], uidHeaders: [], groupHeaders: [], extraHeaderPrefixes: [] };
  const lookup = async (): Promise<AuthenticationConfig> =>
    options.authenticationSkipLookup ? fromFlags(empty) : fromFlags(await readAuthenticationConfigMap(authnKc));
  let initial: AuthenticationConfig;
  try {
    initial = await lookup();
  } catch (err) {
    if (options.authenticationTolerateLookupFailure) {
      log.warn(
        { err: (err as Error).message.split('\n')[0] },
        'cannot read kube-system/extension-apiserver-authentication; continuing with the flags only (--authentication-tolerate-lookup-failure): this may treat all requests as anonymous',
      );
      initial = fromFlags(empty);
    } else {
      throw new Error(
        `cannot read kube-system/extension-apiserver-authentication (${(err as Error).message.split('\n')[0]}); ` +
          'grant the Role extension-apiserver-authentication-reader to the adapter, or pass --authentication-skip-lookup with --requestheader-client-ca-file',
      );
    }
  }
  if (!initial.requestheaderCaPem) {
    log.warn('no front-proxy CA is known: requests proxied by kube-apiserver will be treated as anonymous');
  }
  const auth = new DelegatedAuth(
    initial,
    { authn: authnKc.makeApiClient(AuthenticationV1Api), authz: authzKc.makeApiClient(AuthorizationV1Api) },
    options,
    log,
  );
  const listeners: ((clientCaPem: string | undefined) => void)[] = [];
  const apply = (config: AuthenticationConfig, source: string): void => {
    const before = auth.trustAnchorsPem;
    if (!auth.updateConfig(config)) return;
    const casChanged = auth.trustAnchorsPem !== before;
    log.info({ source, clientCasChanged: casChanged }, 'extension-apiserver-authentication changed; authentication follows it');
    if (casChanged) for (const l of listeners) l(auth.trustAnchorsPem);
  };
  // The watch reacts within moments of a CA rotation; the slow poll stays as a safety net for a watch that is
  // broken in a way no error reports (and for clusters whose RBAC allows only get). It also re-reads the CA
  // files given by flags, which rotate on disk like any mounted Secret.
  const hasCaFiles = Boolean(options.requestheaderClientCaFile || options.clientCaFile);
  const timer =
    options.authenticationSkipLookup && !hasCaFiles
      ? undefined
      : setInterval(() => {
          lookup()
            .then((config) => apply(config, 'poll'))
            .catch((err: Error) =>
              log.warn({ err: err.message }, 'cannot refresh the client CAs (extension-apiserver-authentication, CA files); keeping the last ones'),
            );
        }, 60_000);
  timer?.unref();
  const watcher = options.authenticationSkipLookup
    ? undefined
    : new AuthenticationConfigMapWatch(authnKc, log, (data) => {
        try {
          apply(fromFlags(authenticationConfigFromData(data)), 'watch');
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'cannot apply the changed extension-apiserver-authentication; keeping the last one');
        }
      });
  const guard: Guard = {
    get clientCaPem() {
      return auth.trustAnchorsPem;
    },
    async check(request) {
      const user = await auth.authenticate(request);
      request.log.trace({ user: user.name, groups: user.groups }, 'authenticated');
      await auth.authorize(request, user);
      return user.name;
    },
    onClientCaChange(listener) {
      listeners.push(listener);
    },
    async stop() {
      if (timer) clearInterval(timer);
      await watcher?.stop();
    },
  };
  return guard;
}

/**
 * List+watch of the one ConfigMap (fieldSelector on its name, which the built-in Role
 * extension-apiserver-authentication-reader allows). client-node's informer stops for good on any error but
 * 410, so it is restarted here with backoff; a 403 means RBAC allows only get, and the poll carries on alone.
 */
class AuthenticationConfigMapWatch {
  readonly #informer: ListWatch<V1ConfigMap>;
  readonly #log: Logger;
  #stopped = false;
  #backoffMs = 1000;
  #starting: Promise<void>;

  constructor(kc: KubeConfig, log: Logger, onData: (data: Record<string, string>) => void) {
    this.#log = log;
    const fieldSelector = `metadata.name=${AUTH_CONFIGMAP_NAME}`;
    const core = kc.makeApiClient(CoreV1Api);
    this.#informer = new ListWatch<V1ConfigMap>(
      `/api/v1/namespaces/${AUTH_CONFIGMAP_NAMESPACE}/configmaps`,
      new Watch(kc),
      () => core.listNamespacedConfigMap({ namespace: AUTH_CONFIGMAP_NAMESPACE, fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    let listed = false;
    const changed = (cm: V1ConfigMap): void => {
      this.#backoffMs = 1000;
      if (cm.metadata?.name !== AUTH_CONFIGMAP_NAME) return;
      if (!listed) {
        listed = true;
        log.debug(`listed ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}; watching it for changes`);
      }
      onData(cm.data ?? {});
    };
    this.#informer.on('add', changed);
    this.#informer.on('update', changed);
    this.#informer.on('delete', () => {
      log.warn(`${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} was deleted; authentication keeps its last contents`);
    });
    this.#informer.on('error', (err: unknown) => this.#failed(err));
    this.#starting = this.#informer.start();
  }

  #failed(err: unknown): void {
    if (this.#stopped || (err as Error)?.name === 'AbortError') return;
    const e = err as { message?: string; code?: number; statusCode?: number };
    const status = e?.code ?? e?.statusCode;
    if (status === 403) {
      this.#log.warn(
        `not allowed to watch ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}; changes are picked up by polling every 60 s (grant list and watch, as the Role extension-apiserver-authentication-reader does)`,
      );
      return;
    }
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
    this.#log.warn({ err: e?.message?.split('\n')[0] ?? String(err) }, `watch of ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} failed; retrying in ${delay} ms`);
    setTimeout(() => {
      if (!this.#stopped) this.#starting = this.#informer.start();
    }, delay).unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#informer.stop();
    // A start() still listing when stop() ran would open its watch afterwards: stop it again once it settles.
    await this.#starting.catch(() => undefined);
    await this.#informer.stop();
  }
}
