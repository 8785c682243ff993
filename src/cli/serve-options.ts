import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import { parseGoDuration } from './durations.ts';

/** Everything `serve` needs, with flag values parsed and defaults applied. */
export interface ServeOptions {
  config: string;
  prometheusUrl: string;
  prometheusTimeoutMs: number;
  prometheusVerb: 'GET' | 'POST';
  prometheusTokenFile?: string;
  prometheusCaFile?: string;
  prometheusClientCertFile?: string;
  prometheusClientKeyFile?: string;
  prometheusHeaders: Record<string, string>;
  queryCacheTtlMs: number;
  queryCacheSize: number;
  prometheusMaxConcurrentQueries: number;
  prometheusMaxQueuedQueries: number;
  maxObjectsPerRequest: number;
  relistIntervalMs: number;
  objectSource: 'kubernetes' | 'prometheus';
  kubeconfig?: string;
  masterUrl?: string;
  bindAddress: string;
  securePort: number;
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  certDir?: string;
  insecureDisableAuth: boolean;
  authenticationKubeconfig?: string;
  authorizationKubeconfig?: string;
  requestheaderClientCaFile?: string;
  requestheaderAllowedNames?: string[];
  clientCaFile?: string;
  authenticationSkipLookup: boolean;
  authenticationTolerateLookupFailure: boolean;
  requestheaderUsernameHeaders: string[];
  requestheaderGroupHeaders: string[];
  requestheaderExtraHeadersPrefix: string[];
  requestheaderUidHeaders: string[];
  tokenCacheTtlMs: number;
  authorizedCacheTtlMs: number;
  unauthorizedCacheTtlMs: number;
  tlsMinVersion: 'TLSv1.2' | 'TLSv1.3';
  disableHttp2: boolean;
  /** 0 means Go's default (250), as in k8s.io/apiserver. */
  http2MaxStreamsPerConnection: number;
  /** Series discovery lookback; defaults to relistIntervalMs. */
  metricsMaxAgeMs: number;
  prometheusAuthInCluster: boolean;
  /** host:port of the self-metrics endpoint; '' turns it off. */
  metricsBindAddress: string;
  prometheusAuthConfig?: string;
  anonymousAuth: boolean;
  authorizationAlwaysAllowPaths: string[];
  verbosity: number;
}

export const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/rules.yaml', import.meta.url));

const collectHeader = (value: string, previous: Record<string, string>): Record<string, string> => {
  const eq = value.indexOf('=');
  const key = (eq === -1 ? value : value.slice(0, eq)).trim();
  if (!key) throw new Error(`--prometheus-header "${value}" has no header name: use Name=Value`);
  return { ...previous, [key]: eq === -1 ? '' : value.slice(eq + 1) };
};
const list = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
const duration = (flag: string) => (value: string): number => {
  try {
    return parseGoDuration(value);
  } catch (err) {
    throw new Error(`${flag}: ${(err as Error).message}`);
  }
};
const integer = (flag: string, min: number, max: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
};
const boolean = (value: string): boolean => {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new Error(`expected true or false, got "${value}"`);
};

/**
 * Flags that prometheus-adapter (through custom-metrics-apiserver and the Kubernetes generic API
 * server) accepts and manifests commonly pass, but that mean nothing here. They are accepted so
 * those manifests work unchanged, and --help says why each has no effect.
 */
const COMPATIBILITY_FLAGS: readonly (readonly [string, boolean, string])[] = [
  ['--discovery-interval', true, 'API discovery is refreshed every --metrics-relist-interval'],
  ['--client-qps', true, 'label selectors are answered from watch caches, not per-request LISTs'],
  ['--client-burst', true, 'label selectors are answered from watch caches, not per-request LISTs'],
  ['--tls-cipher-suites', true, "Node's TLS 1.2+ cipher list is used"],
  ['--tls-sni-cert-key', true, 'one serving certificate is used for every name'],
  ['--permit-port-sharing', false, 'not supported'],
  ['--permit-address-sharing', false, 'not supported'],
  ['--profiling', false, 'no profiling endpoints are served'],
  ['--contention-profiling', false, 'no profiling endpoints are served'],
  ['--enable-priority-and-fairness', false, 'requests are not queued by priority'],
  ['--audit-log-path', true, 'no audit log is written'],
  ['--audit-log-maxage', true, 'no audit log is written'],
  ['--audit-log-maxbackup', true, 'no audit log is written'],
  ['--audit-log-maxsize', true, 'no audit log is written'],
  ['--audit-log-format', true, 'no audit log is written'],
  ['--audit-policy-file', true, 'no audit log is written'],
  ['--audit-webhook-config-file', true, 'no audit events are sent'],
  ['--audit-webhook-mode', true, 'no audit events are sent'],
  ['--logtostderr', false, 'logs always go to stderr'],
  ['--alsologtostderr', false, 'logs always go to stderr'],
  ['--log-dir', true, 'logs always go to stderr'],
  ['--log-file', true, 'logs always go to stderr'],
  ['--log-flush-frequency', true, 'logs are written as they happen'],
  ['--stderrthreshold', true, 'logs always go to stderr'],
  ['--one-output', false, 'logs always go to stderr'],
  ['--skip-headers', false, 'logs are JSON lines'],
  ['--logging-format', true, 'logs are JSON lines'],
  ['--vmodule', true, 'verbosity is set for the whole program with --v'],
];

/** Adds the serving flags; names follow prometheus-adapter and the Kubernetes generic API server. */
export function addServeFlags(cmd: Command): Command {
  cmd
    .addOption(new Option('--config <file>', 'rule file (native format)').default(DEFAULT_CONFIG, 'the packaged config/rules.yaml'))
    .addOption(new Option('--prometheus-url <url>', 'Prometheus base URL; may include a path prefix').default('https://localhost'))
    .addOption(new Option('--prometheus-timeout <duration>', 'budget of each Prometheus request, from being asked for (waiting for a query slot included) to the end of its answer').default(30_000, '30s').argParser(duration('--prometheus-timeout')))
    .addOption(new Option('--prometheus-verb <verb>', 'HTTP method for queries; GET switches to POST by itself for queries longer than 8 KiB').choices(['GET', 'POST']).default('GET'))
    .addOption(new Option('--prometheus-token-file <file>', 'bearer token for Prometheus, re-read when the file changes'))
    .addOption(new Option('--prometheus-ca-file <file>', 'CA bundle that signs Prometheus\'s serving certificate'))
    .addOption(new Option('--prometheus-client-tls-cert-file <file>', 'client certificate for mutual TLS with Prometheus'))
    .addOption(new Option('--prometheus-client-tls-key-file <file>', 'key of --prometheus-client-tls-cert-file'))
    .addOption(new Option('--prometheus-header <name=value>', 'extra header on every Prometheus request (repeatable), e.g. X-Scope-OrgID=team-a').default({}, 'none').argParser(collectHeader))
    .addOption(new Option('--query-cache-ttl <duration>', 'reuse a query result for this long; 0 disables the cache (identical concurrent queries are still merged)').default(5_000, '5s').argParser(duration('--query-cache-ttl')))
    .addOption(new Option('--query-cache-size <n>', 'most query results kept in the cache').default(1000).argParser(integer('--query-cache-size', 1, 10_000_000)))
    .addOption(new Option('--prometheus-max-concurrent-queries <n>', 'most Prometheus requests (queries and series) in flight at once').default(16).argParser(integer('--prometheus-max-concurrent-queries', 1, 10_000)))
    .addOption(new Option('--prometheus-max-queued-queries <n>', 'most Prometheus requests waiting for a free slot; beyond that requests fail at once with 503 and Retry-After (waiting counts against --prometheus-timeout)').default(256).argParser(integer('--prometheus-max-queued-queries', 0, 1_000_000)))
    .addOption(new Option('--max-objects-per-request <n>', 'most objects one * read or metrics.k8s.io list may cover; larger selections are refused with 400 asking for a narrower selector').default(10_000).argParser(integer('--max-objects-per-request', 1, 10_000_000)))
    .addOption(new Option('--metrics-relist-interval <duration>', 'how often API discovery (resource names, CRDs) is refreshed').default(600_000, '10m').argParser(duration('--metrics-relist-interval')))
    .addOption(new Option('--object-source <source>', 'where label-selector lookups find objects: the Kubernetes API (watch caches), or kube-state-metrics series in Prometheus (no cluster needed)').choices(['kubernetes', 'prometheus']).default('kubernetes'))
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig for the Kubernetes API; default: in-cluster service account'))
    .addOption(new Option('--kube-config <file>', 'alias of --kubeconfig').hideHelp())
    .addOption(new Option('--lister-kubeconfig <file>', 'alias of --kubeconfig (prometheus-adapter spelling)'))
    .addOption(new Option('--master-url <url>', 'Kubernetes API server address, overriding the kubeconfig'))
    .addOption(new Option('--bind-address <ip>', 'address to serve HTTPS on').default('0.0.0.0'))
    .addOption(new Option('--secure-port <port>', 'HTTPS port').default(6443).argParser(integer('--secure-port', 0, 65535)))
    .addOption(new Option('--tls-cert-file <file>', 'serving certificate (PEM); with --tls-private-key-file'))
    .addOption(new Option('--tls-private-key-file <file>', 'key of --tls-cert-file'))
    .addOption(new Option('--cert-dir <dir>', 'where a self-signed serving certificate is kept (apiserver.crt/.key) when no --tls-cert-file is given; default: generated in memory'))
    .addOption(new Option('--insecure-disable-auth [bool]', 'serve without authentication or authorization; refused unless --bind-address is a loopback address').default(false).argParser(boolean))
    .addOption(new Option('--authentication-kubeconfig <file>', 'kubeconfig for TokenReview and the extension-apiserver-authentication ConfigMap; default: --kubeconfig'))
    .addOption(new Option('--authorization-kubeconfig <file>', 'kubeconfig for SubjectAccessReview; default: --kubeconfig'))
    .addOption(new Option('--requestheader-client-ca-file <file>', 'CA of front-proxy client certificates; default: from kube-system/extension-apiserver-authentication'))
    .addOption(new Option('--requestheader-allowed-names <names>', 'front-proxy certificate common names allowed (comma-separated); empty: any name signed by the CA').default([], 'from the ConfigMap').argParser(list))
    .addOption(new Option('--client-ca-file <file>', 'CA of x509 client certificates; default: from the ConfigMap'))
    .addOption(new Option('--authentication-skip-lookup [bool]', 'do not read kube-system/extension-apiserver-authentication; use only the flags above').default(false).argParser(boolean))
    .addOption(new Option('--authentication-tolerate-lookup-failure [bool]', 'start even when the authentication ConfigMap cannot be read (front-proxy requests are then anonymous unless the flags give the CA)').default(false).argParser(boolean))
    .addOption(new Option('--requestheader-username-headers <headers>', 'headers holding the user name from the front proxy (comma-separated)').default([], 'from the ConfigMap, else X-Remote-User').argParser(list))
    .addOption(new Option('--requestheader-group-headers <headers>', 'headers holding the groups from the front proxy').default([], 'from the ConfigMap, else X-Remote-Group').argParser(list))
    .addOption(new Option('--requestheader-extra-headers-prefix <prefixes>', 'header prefixes of user extras from the front proxy').default([], 'from the ConfigMap, else X-Remote-Extra-').argParser(list))
    .addOption(new Option('--requestheader-uid-headers <headers>', 'headers holding the user UID from the front proxy').default([], 'from the ConfigMap, else X-Remote-Uid').argParser(list))
    .addOption(new Option('--authentication-token-webhook-cache-ttl <duration>', 'how long TokenReview results are reused').default(10_000, '10s').argParser(duration('--authentication-token-webhook-cache-ttl')))
    .addOption(new Option('--authorization-webhook-cache-authorized-ttl <duration>', 'how long an allowing SubjectAccessReview is reused').default(10_000, '10s').argParser(duration('--authorization-webhook-cache-authorized-ttl')))
    .addOption(new Option('--authorization-webhook-cache-unauthorized-ttl <duration>', 'how long a denying SubjectAccessReview is reused').default(10_000, '10s').argParser(duration('--authorization-webhook-cache-unauthorized-ttl')))
    .addOption(new Option('--anonymous-auth <bool>', 'treat requests without credentials as system:anonymous (authorization still applies)').default(true).argParser(boolean))
    .addOption(new Option('--authorization-always-allow-paths <paths>', 'paths served without authorization (comma-separated)').default(['/healthz', '/readyz', '/livez'], '/healthz,/readyz,/livez').argParser(list))
    .addOption(new Option('--tls-min-version <version>', 'oldest TLS version served').choices(['VersionTLS12', 'VersionTLS13']).default('VersionTLS12'))
    .addOption(new Option('--disable-http2 [bool]', 'serve HTTP/1.1 only; by default HTTP/2 is offered too (ALPN h2), which kube-apiserver\'s aggregator uses').default(false).argParser(boolean))
    .addOption(new Option('--http2-max-streams-per-connection <n>', 'streams one HTTP/2 connection may have open at once; 0 means Go\'s default, 250').default(0).argParser(integer('--http2-max-streams-per-connection', 0, 2 ** 31 - 1)))
    .addOption(new Option('--metrics-max-age <duration>', 'how far back series discovery looks (/api/v1/series start); must be at least --metrics-relist-interval').default(0, 'the relist interval').argParser(duration('--metrics-max-age')))
    .addOption(new Option('--prometheus-auth-incluster [bool]', "authenticate to Prometheus with the pod's service account token and CA").default(false).argParser(boolean))
    .addOption(new Option('--prometheus-auth-config <kubeconfig>', "authenticate to Prometheus with this kubeconfig's current user (token, token file or client certificate) and cluster CA"))
    .addOption(new Option('--metrics-bind-address <host:port>', "serve the adapter's own metrics (Prometheus format, plain HTTP, no user data) at http://<host:port>/metrics, e.g. :8080; empty: off").default(''))
    .addOption(new Option('--v <level>', 'log verbosity: 0-3 info, 4-5 debug (each request with rule, PromQL, duration and item count), 6+ trace').default(0).argParser(integer('--v', 0, 10)))
    .addOption(new Option('-v <level>', 'alias of --v').hideHelp().argParser(integer('-v', 0, 10)));
  for (const [flag, takesValue, why] of COMPATIBILITY_FLAGS) {
    cmd.addOption(new Option(takesValue ? `${flag} <value>` : `${flag} [bool]`, `accepted for compatibility with prometheus-adapter manifests; no effect: ${why}`));
  }
  return cmd;
}

export function toServeOptions(o: Record<string, unknown>): ServeOptions {
  const s = (k: string): string | undefined => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined);
  const opts: ServeOptions = {
    config: o.config as string,
    prometheusUrl: o.prometheusUrl as string,
    prometheusTimeoutMs: o.prometheusTimeout as number,
    prometheusVerb: o.prometheusVerb as 'GET' | 'POST',
    prometheusHeaders: o.prometheusHeader as Record<string, string>,
    queryCacheTtlMs: o.queryCacheTtl as number,
    queryCacheSize: o.queryCacheSize as number,
    prometheusMaxConcurrentQueries: o.prometheusMaxConcurrentQueries as number,
    prometheusMaxQueuedQueries: o.prometheusMaxQueuedQueries as number,
    maxObjectsPerRequest: o.maxObjectsPerRequest as number,
    relistIntervalMs: o.metricsRelistInterval as number,
    objectSource: o.objectSource as 'kubernetes' | 'prometheus',
    bindAddress: o.bindAddress as string,
    securePort: o.securePort as number,
    insecureDisableAuth: o.insecureDisableAuth === true,
    authenticationSkipLookup: o.authenticationSkipLookup === true,
    authenticationTolerateLookupFailure: o.authenticationTolerateLookupFailure === true,
    requestheaderUsernameHeaders: o.requestheaderUsernameHeaders as string[],
    requestheaderGroupHeaders: o.requestheaderGroupHeaders as string[],
    requestheaderExtraHeadersPrefix: o.requestheaderExtraHeadersPrefix as string[],
    requestheaderUidHeaders: o.requestheaderUidHeaders as string[],
    tokenCacheTtlMs: o.authenticationTokenWebhookCacheTtl as number,
    authorizedCacheTtlMs: o.authorizationWebhookCacheAuthorizedTtl as number,
    unauthorizedCacheTtlMs: o.authorizationWebhookCacheUnauthorizedTtl as number,
    tlsMinVersion: o.tlsMinVersion === 'VersionTLS13' ? 'TLSv1.3' : 'TLSv1.2',
    disableHttp2: o.disableHttp2 === true,
    http2MaxStreamsPerConnection: o.http2MaxStreamsPerConnection as number,
    metricsMaxAgeMs: (o.metricsMaxAge as number) || (o.metricsRelistInterval as number),
    prometheusAuthInCluster: o.prometheusAuthIncluster === true,
    metricsBindAddress: (o.metricsBindAddress as string | undefined) ?? '',
    anonymousAuth: o.anonymousAuth as boolean,
    authorizationAlwaysAllowPaths: o.authorizationAlwaysAllowPaths as string[],
    requestheaderAllowedNames: (o.requestheaderAllowedNames as string[]).length ? (o.requestheaderAllowedNames as string[]) : undefined,
    verbosity: (o.v as number | undefined) ?? 0,
  } as ServeOptions;
  const optional: [keyof ServeOptions, string | undefined][] = [
    ['prometheusTokenFile', s('prometheusTokenFile')],
    ['prometheusCaFile', s('prometheusCaFile')],
    ['prometheusClientCertFile', s('prometheusClientTlsCertFile')],
    ['prometheusClientKeyFile', s('prometheusClientTlsKeyFile')],
    ['kubeconfig', s('kubeconfig') ?? s('kubeConfig') ?? s('listerKubeconfig')],
    ['masterUrl', s('masterUrl')],
    ['tlsCertFile', s('tlsCertFile')],
    ['tlsPrivateKeyFile', s('tlsPrivateKeyFile')],
    ['certDir', s('certDir')],
    ['prometheusAuthConfig', s('prometheusAuthConfig')],
    ['authenticationKubeconfig', s('authenticationKubeconfig')],
    ['authorizationKubeconfig', s('authorizationKubeconfig')],
    ['requestheaderClientCaFile', s('requestheaderClientCaFile')],
    ['clientCaFile', s('clientCaFile')],
  ];
  for (const [key, value] of optional) if (value !== undefined) (opts as unknown as Record<string, unknown>)[key] = value;
  if (!opts.requestheaderAllowedNames) delete opts.requestheaderAllowedNames;
  return opts;
}

/**
 * Options from command-line flags, with the same defaults and checks as the command itself; the demo,
 * tests and benchmarks build their servers through this, so they run what users run.
 */
export function parseServeArgs(args: readonly string[]): ServeOptions {
  const cmd = addServeFlags(new Command().exitOverride().allowExcessArguments(false).configureOutput({ writeErr: () => {}, writeOut: () => {} }));
  cmd.parse([...args], { from: 'user' });
  return toServeOptions(cmd.opts());
}
