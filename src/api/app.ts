import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpsOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { CustomMetricsProvider, ExternalMetricsProvider } from '../providers/types.ts';
import type { ResourceMetricsSource } from '../providers/resource.ts';
import type { ExplainRequest, Explanation } from '../providers/explain.ts';
import { registerCustomMetricsRoutes } from './custom-metrics-routes.ts';
import { encodeApiGroup } from './custom-metrics-wire.ts';
import { EXTERNAL_METRICS_API_GROUP } from './external-metrics-wire.ts';
import { registerExternalMetricsRoutes } from './external-metrics-routes.ts';
import { METRICS_API_GROUP } from './resource-metrics-wire.ts';
import { registerResourceMetricsRoutes } from './resource-metrics-routes.ts';
import { sendJson } from './json-response.ts';
import { METHOD_NOT_ALLOWED, NOT_FOUND_ROUTE, statusBody, toStatus } from './status.ts';
import { AdapterError } from '../errors.ts';
import { apiGroupOfPath, type SelfMetrics } from '../observability/self-metrics.ts';
import { requestTraces, type RequestTrace } from '../observability/request-context.ts';

/** The rule, PromQL, query time and item count of a request, for its one log line. */
function traceFields(trace: RequestTrace | undefined): Record<string, unknown> {
  if (!trace) return {};
  const out: Record<string, unknown> = {};
  if (trace.items !== undefined) out.items = trace.items;
  if (trace.queries.length > 0) {
    out.rules = [...new Set(trace.queries.map((q) => q.rule))];
    out.queries = trace.queries.map((q) => ({ query: q.query, source: q.source, ms: q.ms, samples: q.samples, ...(q.error !== undefined ? { error: q.error } : {}) }));
  }
  return out;
}

export interface AppOptions {
  readonly log: Logger;
  /** Serving certificate, client CAs and minimum version; the same source later swaps them (see serving-tls.ts). */
  readonly tls: { contextOptions(): SecureContextOptions };
  /** Offer HTTP/2 by ALPN next to HTTP/1.1 (default); false serves HTTP/1.1 only (--disable-http2). */
  readonly http2?: boolean;
  /** Streams one HTTP/2 connection may have open at once (--http2-max-streams-per-connection). */
  readonly http2MaxConcurrentStreams?: number;
  readonly custom: CustomMetricsProvider;
  /** external.metrics.k8s.io is served only when the rules define external metrics, like prometheus-adapter. */
  readonly external?: ExternalMetricsProvider;
  /** metrics.k8s.io is served only when the rules have resourceRules. */
  readonly resource?: ResourceMetricsSource;
  /**
   * Runs before every API request (not health checks): authentication and authorization. Returns
   * the user's name, which request logs carry.
   */
  readonly guard?: (request: import('fastify').FastifyRequest) => Promise<string>;
  readonly isReady?: () => boolean;
  /**
   * Serves GET /debug/explain/apis/custom.metrics.k8s.io/{version}/...: the walk-through of one read. It reveals
   * PromQL and raw samples, so it sits behind the guard like the APIs (nonResourceURLs /debug/explain/*).
   */
  readonly explain?: (request: ExplainRequest) => Promise<Explanation>;
  /** Request counts and latencies by API group and code. */
  readonly selfMetrics?: SelfMetrics;
}

const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);
const MAX_URL_BYTES = 16 * 1024;
/** How long a shutdown waits for requests in flight before cutting their connections. */
export const SHUTDOWN_GRACE_MS = 10_000;
/** Go's http2.Server default, which k8s.io/apiserver keeps when --http2-max-streams-per-connection is 0. */
export const DEFAULT_HTTP2_MAX_STREAMS = 250;
// Front-proxy users arrive as one X-Remote-Group header per group: a user in a few hundred groups exceeds Node's
// defaults (128 header pairs on HTTP/2, 16 KiB of headers on HTTP/1.1). Go servers accept 1 MB of headers.
const MAX_HEADER_BYTES = 256 * 1024;
const MAX_HEADER_PAIRS = 4096;
// The aggregator multiplexes every proxied request of one kube-apiserver over one HTTP/2 session, so queued
// list responses of many HPAs share this budget; past it Node refuses new streams (ENHANCE_YOUR_CALM). In MB.
const MAX_SESSION_MEMORY_MB = 64;

/** Open TLS connections per app, so a bounded shutdown can end those that outlive it. */
const connectionsOf = new WeakMap<FastifyInstance, Set<Socket>>();

export function buildApp(options: AppOptions): FastifyInstance {
  const { log } = options;
  const users = new WeakMap<object, string>();
  const traces = new WeakMap<object, RequestTrace>();
  const common: FastifyServerOptions = {
    loggerInstance: log as FastifyBaseLogger,
    // Requests are logged once, by the onResponse hook below, with what a debugging user needs.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
    return503OnClosing: true,
    bodyLimit: 64 * 1024,
    frameworkErrors: (error, request, reply) => {
      const code = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      void sendJson(request, reply, code, statusBody(code, code === 414 ? undefined : 'BadRequest', `bad request: ${error.message}`));
    },
  };
  const tls = {
    ...options.tls.contextOptions(),
    // Asking for (not requiring) a client certificate is how the aggregator's front-proxy
    // identity arrives; the guard decides what a presented certificate proves.
    requestCert: true,
    rejectUnauthorized: false,
    maxHeaderSize: MAX_HEADER_BYTES,
  };
  // kube-apiserver's aggregator proxies over HTTP/2 when the backend offers it; HTTP/1.1 stays for other clients.
  // The instance is typed as the HTTP/1 one: the request fields the app reads exist on both kinds of request.
  const app = (
    options.http2 === false
      ? Fastify({ ...(common as object), https: tls } as FastifyHttpsOptions<HttpsServer>)
      : Fastify({
          ...(common as object),
          http2: true,
          https: {
            ...tls,
            allowHTTP1: true,
            maxSessionMemory: MAX_SESSION_MEMORY_MB,
            maxHeaderListPairs: MAX_HEADER_PAIRS,
            settings: {
              maxConcurrentStreams: options.http2MaxConcurrentStreams || DEFAULT_HTTP2_MAX_STREAMS,
              maxHeaderListSize: MAX_HEADER_BYTES,
            },
          },
        })
  ) as unknown as FastifyInstance;

  // HTTP/1.1's counterpart of maxHeaderListPairs; not a constructor option, and the HTTP/2 server's HTTP/1.1
  // fallback reads it from the server too.
  (app.server as { maxHeadersCount: number | null }).maxHeadersCount = MAX_HEADER_PAIRS;

  const connections = new Set<Socket>();
  connectionsOf.set(app, connections);
  app.server.on('secureConnection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // A keep-alive HTTP/1.1 connection whose request was in flight at shutdown would otherwise sit idle until its
  // timeout and hold the server open; HTTP/2 sessions get a GOAWAY from the server's close instead.
  app.addHook('onSend', async (request, reply) => {
    if (closing && request.raw.httpVersionMajor === 1) reply.header('Connection', 'close');
  });

  app.addHook('onRequest', async (request, reply) => {
    // Everything the request causes from here on (queries, items) is recorded in its trace.
    const trace: RequestTrace = { queries: [] };
    traces.set(request, trace);
    requestTraces.enterWith(trace);
    if (request.url.length > MAX_URL_BYTES) {
      return sendJson(request, reply, 414, statusBody(414, undefined, `request URL longer than ${MAX_URL_BYTES} bytes`));
    }
    const path = request.url.split('?')[0]!;
    if (HEALTH_PATHS.has(path)) return;
    if (options.guard) users.set(request, await options.guard(request));
    return;
  });

  app.addHook('onResponse', async (request, reply) => {
    options.selfMetrics?.observeRequest(apiGroupOfPath(request.url), reply.statusCode, reply.elapsedTime / 1000);
    // The line's fields cost more to gather than pino's disabled debug() costs to call.
    if (!log.isLevelEnabled('debug')) return;
    request.log.debug(
      {
        method: request.method,
        url: request.url,
        user: users.get(request),
        status: reply.statusCode,
        ms: +reply.elapsedTime.toFixed(2),
        // Tells the aggregator's multiplexed HTTP/2 traffic apart from direct HTTP/1.1 clients.
        http: request.raw.httpVersion,
        ...traceFields(traces.get(request)),
      },
      'request',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const status = toStatus(error);
    if (!(error instanceof AdapterError)) {
      request.log.error({ err: error, url: request.url }, 'unexpected error while serving a request');
    } else if (status.code >= 500) {
      // One line per failed request, with the PromQL of the queries that failed it (providers do not log them too).
      const failed = traces.get(request)?.queries.filter((q) => q.error !== undefined) ?? [];
      request.log.warn(
        { url: request.url, code: status.code, msg: status.message, ...(failed.length > 0 ? { failedQueries: failed.map(({ rule, query, error }) => ({ rule, query, error })) } : {}) },
        'request failed',
      );
    }
    return sendJson(request, reply, status.code, status);
  });

  app.setNotFoundHandler((request, reply) => {
    const isApi = request.url.startsWith('/apis');
    if (isApi && request.method !== 'GET' && request.method !== 'HEAD') return sendJson(request, reply, 405, METHOD_NOT_ALLOWED);
    return sendJson(request, reply, 404, NOT_FOUND_ROUTE);
  });

  for (const path of HEALTH_PATHS) {
    app.get(path, async (_request, reply) => {
      if (path === '/readyz' && options.isReady && !options.isReady()) {
        return reply.code(503).type('text/plain').send('not ready: the rule file or the object caches are still loading\n');
      }
      return reply.type('text/plain').send('ok');
    });
  }
  const { kind: _kind, apiVersion: _apiVersion, ...customGroup } = encodeApiGroup() as Record<string, unknown>;
  const groups: object[] = [customGroup];
  registerCustomMetricsRoutes(app, options.custom);
  if (options.external) {
    registerExternalMetricsRoutes(app, options.external);
    groups.push({ ...EXTERNAL_METRICS_API_GROUP });
  }
  if (options.resource) {
    registerResourceMetricsRoutes(app, options.resource);
    groups.push({ ...METRICS_API_GROUP });
  }
  if (options.explain) {
    const explain = options.explain;
    app.get('/debug/explain/*', async (request, reply) => {
      const explanation = await explain({ path: request.url.slice('/debug/explain'.length) });
      return sendJson(request, reply, 200, explanation);
    });
  }
  app.get('/apis', async (request, reply) => sendJson(request, reply, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups }));
  return app;
}

/**
 * Stops accepting connections, lets requests in flight finish for up to `graceMs`, then cuts whatever is still
 * open (long-lived HTTP/2 sessions, stuck clients). Resolves true when everything finished in time.
 */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const closed = app.close().then(() => true);
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs);
  });
  const inTime = await Promise.race([closed, expired]);
  clearTimeout(timer);
  if (!inTime) {
    const open = connectionsOf.get(app) ?? new Set<Socket>();
    app.log.warn({ connections: open.size, graceMs }, 'requests still in flight after the shutdown grace period; closing their connections');
    for (const socket of open) socket.destroy();
    await closed;
  }
  return inTime;
}
