import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, closeGracefully, SHUTDOWN_GRACE_MS } from './api/app.ts';
import { loadOrCreateServingCert } from './api/certificates.ts';
import { ServingCertReloader, ServingTls } from './api/serving-tls.ts';
import type { ServeOptions } from './cli/serve-options.ts';
import { parseRuleFile, readRuleFileText, type PartialRuleFile } from './config/load.ts';
import type { BackendConfig, MetricRule, RuleFile } from './config/model.ts';
import { RuleFileWatcher, type ReloadOutcome } from './config/rule-file-watcher.ts';
import { NotFoundError } from './errors.ts';
import { createDelegatedGuard, type Guard } from './kubernetes/delegated-auth.ts';
import { loadKubeConfig } from './kubernetes/kubeconfig.ts';
import { InformerObjectSource } from './kubernetes/object-cache.ts';
import type { ObjectSource } from './kubernetes/object-source.ts';
import { discoverResources, ResourceMapper } from './kubernetes/resource-mapper.ts';
import { PrometheusHttpClient } from './prometheus/http-client.ts';
import { inClusterCredentials, kubeconfigCredentials } from './prometheus/auth-options.ts';
import { KubeStateObjectSource } from './prometheus/kube-state-object-source.ts';
import { QueryEngine } from './prometheus/query-engine.ts';
import { QueryLimiter } from './prometheus/query-limiter.ts';
import { queryOutcome, SelfMetrics } from './observability/self-metrics.ts';
import { RuleLabels, relistRuleStats } from './observability/rule-labels.ts';
import { startMetricsServer } from './observability/metrics-server.ts';
import { PrometheusCustomMetricsProvider } from './providers/custom.ts';
import { explainCustomMetric, type ExplainRequest, type Explanation } from './providers/explain.ts';
import { PrometheusExternalMetricsProvider } from './providers/external.ts';
import { ResourceMetricsProvider, type ResourceMetricsSource } from './providers/resource.ts';
import { SeriesDiscovery } from './prometheus/series-discovery.ts';
import { MetricRegistry } from './rules/registry.ts';
import { WELL_KNOWN_RESOURCES } from './rules/well-known-resources.ts';

export interface RunningServer {
  readonly app: FastifyInstance;
  /** https://host:port of the listening socket. */
  readonly url: string;
  /** Walks one custom-metrics read through this server's rules, objects and Prometheus (`explain`, /debug/explain). */
  explain(request: ExplainRequest): Promise<Explanation>;
  /** Re-reads the rule file now (SIGHUP); the watcher does the same on its own when the file changes. */
  reloadRules(): Promise<ReloadOutcome>;
  close(): Promise<void>;
}

/** What the config_rules gauge counts: native metrics, series rules, and resourceRules as one. */
function ruleCount(rules: RuleFile): number {
  return rules.metrics.length + rules.seriesRules.length + (rules.resourceRules ? 1 : 0);
}

/** The optional API groups a rule file needs; routes for them are registered once, at start. */
function apiGroups(rules: RuleFile): string {
  const groups = [];
  if (rules.seriesRules.some((r) => r.kind === 'external')) groups.push('external.metrics.k8s.io');
  if (rules.resourceRules) groups.push('metrics.k8s.io');
  return groups.join(',');
}

/** True for addresses that only this machine can reach. */
export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1';
}

/**
 * Wires the adapter together, in the order prometheus-adapter's main does it:
 * rules -> clients -> provider -> HTTP server.
 */
export async function startServer(options: ServeOptions, log: Logger): Promise<RunningServer> {
  if (options.insecureDisableAuth && !isLoopback(options.bindAddress)) {
    throw new Error(
      `--insecure-disable-auth is only allowed with a loopback --bind-address (127.0.0.1 or ::1), not ${options.bindAddress}: anyone who can reach the port could read every metric`,
    );
  }
  const ruleFileText = await readRuleFileText(options.config);
  let ruleFile = parseRuleFile(options.config, ruleFileText);
  log.info({ file: options.config, rules: ruleFile.metrics.length }, 'rule file loaded');

  if (options.prometheusAuthInCluster && options.prometheusAuthConfig) {
    throw new Error('--prometheus-auth-incluster and --prometheus-auth-config cannot be used together');
  }
  const delegatedCredentials = options.prometheusAuthInCluster
    ? inClusterCredentials()
    : options.prometheusAuthConfig
      ? kubeconfigCredentials(options.prometheusAuthConfig)
      : {};
  const prometheus = new PrometheusHttpClient({
    url: options.prometheusUrl,
    timeoutMs: options.prometheusTimeoutMs,
    verb: options.prometheusVerb,
    headers: options.prometheusHeaders,
    ...delegatedCredentials,
    // Explicit files win over credentials taken from a kubeconfig or the service account.
    ...(options.prometheusTokenFile ? { tokenFile: options.prometheusTokenFile } : {}),
    ...(options.prometheusCaFile ? { caFile: options.prometheusCaFile } : {}),
    ...(options.prometheusClientCertFile ? { clientCertFile: options.prometheusClientCertFile } : {}),
    ...(options.prometheusClientKeyFile ? { clientKeyFile: options.prometheusClientKeyFile } : {}),
  });
  // Every Prometheus call (queries and series) passes its backend's gate; the engine's cache and
  // single-flight stay in front of it, so merged and cached reads never take a slot.
  const newGate = (client: PrometheusHttpClient): QueryLimiter =>
    new QueryLimiter(client, {
      maxConcurrent: options.prometheusMaxConcurrentQueries,
      maxQueued: options.prometheusMaxQueuedQueries,
      timeoutMs: options.prometheusTimeoutMs,
      backendUrl: client.displayUrl,
    });
  const limited = newGate(prometheus);
  const selfMetrics = new SelfMetrics();
  let ruleLabels = new RuleLabels(ruleFile.seriesRules);
  selfMetrics.configReload('success', ruleCount(ruleFile));
  selfMetrics.onScrape(() => {
    selfMetrics.prometheusInflight(limited.stats.inFlight);
    selfMetrics.prometheusQueued(limited.stats.queued);
  });
  // The rule file's named backends: each its own client, gate and cache, so one slow tenant cannot take
  // another's query slots. Credentials come only from the backend's entry, never from the flags.
  interface Backend {
    readonly gate: QueryLimiter;
    readonly displayUrl: string;
    readonly engine: QueryEngine;
  }
  const newEngine = (gate: QueryLimiter, displayUrl: string, cacheTtlMs: number): QueryEngine =>
    new QueryEngine(gate, {
      cacheTtlMs,
      cacheMaxEntries: options.queryCacheSize,
      observer: {
        cacheResult: (result) => selfMetrics.cacheResult(result),
        prometheusQuery: (rule, error, seconds) =>
          selfMetrics.observePrometheusQuery(ruleLabels.of(rule), displayUrl, queryOutcome(error), seconds),
        valueAge: (rule, seconds) => selfMetrics.observeValueAge(ruleLabels.of(rule), seconds),
      },
    });
  const engine = newEngine(limited, prometheus.displayUrl, options.queryCacheTtlMs);
  const defaultBackend: Backend = { gate: limited, displayUrl: prometheus.displayUrl, engine };
  const buildBackends = (backends: RuleFile['backends']): { named: Map<string, Backend>; byTtl: Map<string, QueryEngine> } => {
    const named = new Map<string, Backend>();
    for (const [name, b] of Object.entries(backends ?? {}) as [string, BackendConfig][]) {
      const client = new PrometheusHttpClient({
        url: b.url,
        timeoutMs: options.prometheusTimeoutMs,
        verb: options.prometheusVerb,
        ...(b.headers ? { headers: b.headers } : {}),
        ...(b.bearerTokenFile ? { tokenFile: b.bearerTokenFile } : {}),
        ...(b.basicAuth ? { basicAuth: b.basicAuth } : {}),
        ...(b.queryParams ? { queryParams: b.queryParams } : {}),
        ...(b.tls?.caFile ? { caFile: b.tls.caFile } : {}),
        ...(b.tls?.certFile ? { clientCertFile: b.tls.certFile } : {}),
        ...(b.tls?.keyFile ? { clientKeyFile: b.tls.keyFile } : {}),
        ...(b.tls?.insecureSkipVerify === true ? { insecureSkipVerify: true } : {}),
      });
      const gate = newGate(client);
      named.set(name, { gate, displayUrl: client.displayUrl, engine: newEngine(gate, client.displayUrl, options.queryCacheTtlMs) });
    }
    return { named, byTtl: new Map() };
  };
  let backends = buildBackends(ruleFile.backends);
  const engineFor = (rule: MetricRule): QueryEngine => {
    const backend = rule.backend === undefined ? defaultBackend : backends.named.get(rule.backend);
    // The loader refuses unknown names; this only guards a registry and backends swapped out of step.
    if (!backend) throw new NotFoundError(`the backend "${rule.backend}" of rule ${rule.origin} is not defined`);
    if (rule.cacheTtlMs === undefined) return backend.engine;
    // A rule with its own cache lifetime gets its own cache, still behind its backend's gate.
    const key = `${rule.backend ?? ''}\0${rule.cacheTtlMs}`;
    let ttlEngine = backends.byTtl.get(key);
    if (!ttlEngine) {
      ttlEngine = newEngine(backend.gate, backend.displayUrl, rule.cacheTtlMs);
      backends.byTtl.set(key, ttlEngine);
    }
    return ttlEngine;
  };

  let mapper = ResourceMapper.wellKnown();
  // Native rules are known from the file; prometheus-adapter rules become metrics after each relist.
  const newDiscovery = (seriesRules: RuleFile['seriesRules']): SeriesDiscovery | null => {
    if (seriesRules.length === 0) return null;
    const created: SeriesDiscovery = new SeriesDiscovery({
      client: limited,
      rules: seriesRules,
      resolver: () => mapper,
      relistIntervalMs: options.relistIntervalMs,
      maxAgeMs: options.metricsMaxAgeMs,
      log,
      onUpdate: (result) => {
        // A replaced discovery's last relist, or a new one's first (before the swap), must not touch what is served.
        if (created !== discovery) return;
        rebuildRegistry();
        const seconds = result.perQuery.reduce((longest, q) => Math.max(longest, q.durationMs), 0) / 1000;
        selfMetrics.observeRelist(seconds, relistRuleStats(seriesRules, result), result.perQuery.every((q) => q.ok));
      },
    });
    return created;
  };
  let discovery: SeriesDiscovery | null = null;
  discovery = newDiscovery(ruleFile.seriesRules);
  const buildRegistry = (): MetricRegistry => new MetricRegistry([...ruleFile.metrics, ...(discovery?.current().custom ?? [])], mapper);
  let registry = buildRegistry();
  const rebuildRegistry = (): void => {
    registry = buildRegistry();
  };
  let objects: ObjectSource;
  /** Starts the watch caches the current rules read, so a first request does not wait for a list. */
  const prepareObjectCaches = (): void => {
    if (!(objects instanceof InformerObjectSource)) return;
    const wanted = registry.all().map((r) => r.resource);
    if (ruleFile.resourceRules) wanted.push(mapper.resolve('pods')!, mapper.resolve('nodes')!);
    objects.prepare(wanted.filter((r, i, all) => all.indexOf(r) === i));
  };
  const timers: NodeJS.Timeout[] = [];
  const kc = options.objectSource === 'kubernetes' ? loadKubeConfig(options) : null;
  if (kc) {
    const refresh = async (): Promise<void> => {
      const discovered = await discoverResources(kc, (m) => log.warn(m));
      const known = new Set(discovered.map((r) => `${r.group}/${r.resource}`));
      mapper = new ResourceMapper([...discovered, ...WELL_KNOWN_RESOURCES.filter((r) => !known.has(`${r.group}/${r.resource}`))]);
      rebuildRegistry();
    };
    try {
      await refresh();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'API discovery failed; using the built-in resource list until the next refresh');
    }
    const timer = setInterval(() => {
      refresh().catch((err: Error) => log.warn({ err: err.message }, 'API discovery refresh failed; keeping the previous resource list'));
    }, options.relistIntervalMs);
    timer.unref();
    timers.push(timer);
    objects = new InformerObjectSource(kc, { log: { info: (m) => log.info(m), warn: (m) => log.warn(m) } });
    prepareObjectCaches();
  } else {
    log.warn('objects come from kube-state-metrics series in Prometheus (--object-source=prometheus), not from a Kubernetes API');
    objects = new KubeStateObjectSource(engine);
  }
  if (discovery) {
    const first = discovery;
    // Serve after the first relist, so the first discovery document is not empty; if Prometheus is
    // down, serve anyway (readyz says not ready) and let the periodic relist catch up.
    try {
      const result = await first.runOnce();
      log.info({ custom: result.custom.length, external: result.external.length }, 'series discovery done');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'first series discovery failed; retrying every --metrics-relist-interval');
    }
    rebuildRegistry();
    first.start();
  }
  for (const problem of registry.problems) log.warn(problem);

  const tls = await loadOrCreateServingCert({
    ...(options.tlsCertFile ? { certFile: options.tlsCertFile } : {}),
    ...(options.tlsPrivateKeyFile ? { keyFile: options.tlsPrivateKeyFile } : {}),
    ...(options.certDir ? { certDir: options.certDir } : {}),
    log: (m) => log.info(m),
  });

  let guard: Guard | undefined;
  if (options.insecureDisableAuth) {
    log.warn(
      '!!! AUTHENTICATION AND AUTHORIZATION ARE OFF (--insecure-disable-auth): every process on this machine can read every metric. Never use this outside local testing. !!!',
    );
  } else {
    guard = await createDelegatedGuard(options, log);
  }

  const provider = new PrometheusCustomMetricsProvider({
    registry: () => registry,
    resources: () => mapper,
    objects,
    engine,
    engineFor,
    log,
    maxObjectsPerRequest: options.maxObjectsPerRequest,
  });
  const explain = (request: ExplainRequest): Promise<Explanation> =>
    explainCustomMetric(
      // Getters, not values: a rule reload swaps the registry and the discovery.
      { registry: () => registry, resources: () => mapper, objects, engine, engineFor, provider, discovery: () => discovery?.current() ?? null },
      request,
    );
  const hasExternalRules = ruleFile.seriesRules.some((r) => r.kind === 'external');
  const external = hasExternalRules
    ? new PrometheusExternalMetricsProvider({ rules: () => discovery?.current().external ?? [], engine, log })
    : undefined;
  const newResourceProvider = (rules: RuleFile['resourceRules']): ResourceMetricsProvider | undefined =>
    rules ? new ResourceMetricsProvider({ rules, objects, engine, log, maxObjectsPerRequest: options.maxObjectsPerRequest }) : undefined;
  let resourceProvider = newResourceProvider(ruleFile.resourceRules);
  const servedByResource = (): ResourceMetricsProvider => {
    if (!resourceProvider) throw new NotFoundError('the rule file no longer has resourceRules; restart the adapter to stop serving metrics.k8s.io');
    return resourceProvider;
  };
  // The routes hold this object for the process's life; it follows whatever provider the current rules built.
  const resource: ResourceMetricsSource | undefined = resourceProvider
    ? {
        getPodMetrics: (...args) => servedByResource().getPodMetrics(...args),
        getNodeMetrics: (...args) => servedByResource().getNodeMetrics(...args),
      }
    : undefined;
  // One owner of the TLS context: the guard's CA reloads and serving-certificate rotation each change their part.
  const servingTls = new ServingTls({ pair: tls, clientCaPem: guard?.clientCaPem, minVersion: options.tlsMinVersion, log });
  guard?.onClientCaChange((pem) => servingTls.setClientCas(pem));
  const certReloader =
    tls.certPath && tls.keyPath ? new ServingCertReloader({ certPath: tls.certPath, keyPath: tls.keyPath, tls: servingTls, log }) : undefined;
  if (objects instanceof InformerObjectSource) {
    const informers = objects;
    selfMetrics.onScrape(() => {
      for (const c of informers.status()) {
        const staleFor = c.watching || !c.lastSync ? 0 : (Date.now() - c.lastSync.getTime()) / 1000;
        selfMetrics.objectCacheStaleness(c.resource, staleFor);
      }
    });
  }
  const metricsServer = options.metricsBindAddress ? await startMetricsServer(selfMetrics, options.metricsBindAddress, log) : null;
  const app = buildApp({
    selfMetrics,
    log,
    tls: servingTls,
    http2: !options.disableHttp2,
    http2MaxConcurrentStreams: options.http2MaxStreamsPerConnection,
    custom: provider,
    explain,
    ...(external ? { external } : {}),
    ...(resource ? { resource } : {}),
    ...(guard ? { guard: guard.check } : {}),
    isReady: () => !discovery || discovery.current().lastSuccess !== null,
  });
  servingTls.attach(app.server);
  certReloader?.start();
  await app.listen({ host: options.bindAddress, port: options.securePort });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.securePort;
  const host = isIP(options.bindAddress) === 6 ? `[${options.bindAddress}]` : options.bindAddress === '0.0.0.0' ? '127.0.0.1' : options.bindAddress;
  const url = `https://${host}:${port}`;
  log.info(
    { url, customMetrics: registry.all().length, externalMetrics: external?.listAllExternalMetrics().length ?? 0, resourceMetrics: Boolean(resource) },
    'serving the metrics APIs',
  );

  const servedGroups = apiGroups(ruleFile);
  const applyRules = async ({ ruleFile: next, skipped }: PartialRuleFile): Promise<void> => {
    // Everything that can refuse the new rules runs before anything is swapped.
    const nextResource = newResourceProvider(next.resourceRules);
    const nextBackends = buildBackends(next.backends);
    const nextDiscovery = newDiscovery(next.seriesRules);
    if (nextDiscovery) {
      // The first relist runs before the swap, so the discovered metrics never disappear in between.
      try {
        await nextDiscovery.runOnce();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'first series discovery of the reloaded rules failed; retrying every --metrics-relist-interval');
      }
    }
    const previous = discovery;
    ruleFile = next;
    ruleLabels = new RuleLabels(next.seriesRules);
    discovery = nextDiscovery;
    backends = nextBackends;
    previous?.stop();
    resourceProvider = nextResource;
    rebuildRegistry();
    nextDiscovery?.start();
    prepareObjectCaches();
    for (const problem of registry.problems) log.warn(problem);
    for (const problem of skipped) log.error({ file: options.config }, `rule skipped: ${problem}`);
    const groups = apiGroups(next);
    if (groups !== servedGroups) {
      log.warn(
        { served: servedGroups || 'custom.metrics.k8s.io only', wanted: groups || 'custom.metrics.k8s.io only' },
        'the reloaded rules need a different set of API groups; restart the adapter to serve them (routes are registered at start)',
      );
    }
    selfMetrics.configReload('success', ruleCount(next));
    log.info(
      { file: options.config, metrics: next.metrics.length, seriesRules: next.seriesRules.length, resourceRules: Boolean(next.resourceRules), skipped: skipped.length, customMetrics: registry.all().length },
      'rule file reloaded',
    );
  };
  const watcher = new RuleFileWatcher({
    file: options.config,
    loadedText: ruleFileText,
    log,
    apply: applyRules,
    rejected: () => selfMetrics.configReload('failure', ruleCount(ruleFile)),
  });
  watcher.start();

  return {
    app,
    url,
    explain,
    reloadRules: () => watcher.reload(),
    async close() {
      watcher.stop();
      for (const t of timers) clearInterval(t);
      discovery?.stop();
      certReloader?.stop();
      await closeGracefully(app, SHUTDOWN_GRACE_MS);
      await objects.stop();
      await guard?.stop();
      await metricsServer?.close();
    },
  };
}
