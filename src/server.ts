import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, closeGracefully, SHUTDOWN_GRACE_MS } from './api/app.ts';
import { loadOrCreateServingCert } from './api/certificates.ts';
import { ServingCertReloader, ServingTls } from './api/serving-tls.ts';
import type { ServeOptions } from './cli/serve-options.ts';
import { loadRuleFile } from './config/load.ts';
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
import { PrometheusExternalMetricsProvider } from './providers/external.ts';
import { ResourceMetricsProvider } from './providers/resource.ts';
import { SeriesDiscovery } from './prometheus/series-discovery.ts';
import { MetricRegistry } from './rules/registry.ts';
import { WELL_KNOWN_RESOURCES } from './rules/well-known-resources.ts';

export interface RunningServer {
  readonly app: FastifyInstance;
  /** https://host:port of the listening socket. */
  readonly url: string;
  close(): Promise<void>;
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
  const ruleFile = await loadRuleFile(options.config);
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
  // Every Prometheus call (queries and series) passes this one gate; the engine's cache and single-flight
  // stay in front of it, so merged and cached reads never take a slot.
  const limited = new QueryLimiter(prometheus, {
    maxConcurrent: options.prometheusMaxConcurrentQueries,
    maxQueued: options.prometheusMaxQueuedQueries,
    timeoutMs: options.prometheusTimeoutMs,
    backendUrl: prometheus.displayUrl,
  });
  const selfMetrics = new SelfMetrics();
  const ruleLabels = new RuleLabels(ruleFile.seriesRules);
  selfMetrics.configReload('success', ruleFile.metrics.length + ruleFile.seriesRules.length + (ruleFile.resourceRules ? 1 : 0));
  selfMetrics.onScrape(() => {
    selfMetrics.prometheusInflight(limited.stats.inFlight);
    selfMetrics.prometheusQueued(limited.stats.queued);
  });
  const engine = new QueryEngine(limited, {
    cacheTtlMs: options.queryCacheTtlMs,
    cacheMaxEntries: options.queryCacheSize,
    observer: {
      cacheResult: (result) => selfMetrics.cacheResult(result),
      prometheusQuery: (rule, error, seconds) =>
        selfMetrics.observePrometheusQuery(ruleLabels.of(rule), prometheus.displayUrl, queryOutcome(error), seconds),
      valueAge: (rule, seconds) => selfMetrics.observeValueAge(ruleLabels.of(rule), seconds),
    },
  });

  let mapper = ResourceMapper.wellKnown();
  // Native rules are known from the file; prometheus-adapter rules become metrics after each relist.
  const discovery =
    ruleFile.seriesRules.length > 0
      ? new SeriesDiscovery({
          client: limited,
          rules: ruleFile.seriesRules,
          resolver: () => mapper,
          relistIntervalMs: options.relistIntervalMs,
          maxAgeMs: options.metricsMaxAgeMs,
          log,
          onUpdate: (result) => {
            rebuildRegistry();
            const seconds = result.perQuery.reduce((sum, q) => Math.max(sum, q.durationMs), 0) / 1000;
            selfMetrics.observeRelist(seconds, relistRuleStats(ruleFile.seriesRules, result), result.perQuery.every((q) => q.ok));
          },
        })
      : null;
  const buildRegistry = (): MetricRegistry => new MetricRegistry([...ruleFile.metrics, ...(discovery?.current().custom ?? [])], mapper);
  let registry = buildRegistry();
  const rebuildRegistry = (): void => {
    registry = buildRegistry();
  };
  let objects: ObjectSource;
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
    const informers = new InformerObjectSource(kc, { log: { info: (m) => log.info(m), warn: (m) => log.warn(m) } });
    const wanted = registry.all().map((r) => r.resource);
    if (ruleFile.resourceRules) wanted.push(mapper.resolve('pods')!, mapper.resolve('nodes')!);
    informers.prepare(wanted.filter((r, i, all) => all.indexOf(r) === i));
    objects = informers;
  } else {
    log.warn('objects come from kube-state-metrics series in Prometheus (--object-source=prometheus), not from a Kubernetes API');
    objects = new KubeStateObjectSource(engine);
  }
  if (discovery) {
    // Serve after the first relist, so the first discovery document is not empty; if Prometheus is
    // down, serve anyway (readyz says not ready) and let the periodic relist catch up.
    try {
      const first = await discovery.runOnce();
      log.info({ custom: first.custom.length, external: first.external.length }, 'series discovery done');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'first series discovery failed; retrying every --metrics-relist-interval');
    }
    rebuildRegistry();
    discovery.start();
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
    log,
    maxObjectsPerRequest: options.maxObjectsPerRequest,
  });
  const hasExternalRules = ruleFile.seriesRules.some((r) => r.kind === 'external');
  const external = hasExternalRules
    ? new PrometheusExternalMetricsProvider({ rules: () => discovery?.current().external ?? [], engine, log })
    : undefined;
  const resource = ruleFile.resourceRules
    ? new ResourceMetricsProvider({ rules: ruleFile.resourceRules, objects, engine, log, maxObjectsPerRequest: options.maxObjectsPerRequest })
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
  return {
    app,
    url,
    async close() {
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
