import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CustomMetricsProvider, ExternalMetricsProvider } from '../providers/types.ts';
import type { ResourceMetricsSource } from '../providers/resource.ts';
import { registerCustomMetricsRoutes } from './custom-metrics-routes.ts';
import { encodeApiGroup } from './custom-metrics-wire.ts';
import { EXTERNAL_METRICS_API_GROUP } from './external-metrics-wire.ts';
import { registerExternalMetricsRoutes } from './external-metrics-routes.ts';
import { METRICS_API_GROUP } from './resource-metrics-wire.ts';
import { registerResourceMetricsRoutes } from './resource-metrics-routes.ts';
import { sendJson } from './json-response.ts';
import { METHOD_NOT_ALLOWED, NOT_FOUND_ROUTE, statusBody, toStatus } from './status.ts';
import { AdapterError } from '../errors.ts';

export interface AppOptions {
  readonly log: Logger;
  readonly tls: { readonly certPem: string; readonly keyPem: string; readonly clientCaPem?: string; readonly minVersion?: 'TLSv1.2' | 'TLSv1.3' };
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
}

const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);
const MAX_URL_BYTES = 16 * 1024;

export function buildApp(options: AppOptions): FastifyInstance {
  const { log } = options;
  const users = new WeakMap<object, string>();
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Requests are logged once, by the onResponse hook below, with what a debugging user needs.
    logController: new LogController({ disableRequestLogging: true }),
    https: {
      key: options.tls.keyPem,
      cert: options.tls.certPem,
      minVersion: options.tls.minVersion ?? 'TLSv1.2',
      // Asking for (not requiring) a client certificate is how the aggregator's front-proxy
      // identity arrives; the guard decides what a presented certificate proves.
      requestCert: true,
      rejectUnauthorized: false,
      ...(options.tls.clientCaPem ? { ca: options.tls.clientCaPem } : {}),
    },
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
    return503OnClosing: true,
    bodyLimit: 64 * 1024,
    frameworkErrors: (error, request, reply) => {
      const code = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      void sendJson(request, reply, code, statusBody(code, code === 414 ? undefined : 'BadRequest', `bad request: ${error.message}`));
    },
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.url.length > MAX_URL_BYTES) {
      return sendJson(request, reply, 414, statusBody(414, undefined, `request URL longer than ${MAX_URL_BYTES} bytes`));
    }
    const path = request.url.split('?')[0]!;
    if (HEALTH_PATHS.has(path)) return;
    if (options.guard) users.set(request, await options.guard(request));
    return;
  });

  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.url, user: users.get(request), status: reply.statusCode, ms: +reply.elapsedTime.toFixed(2) },
      'request',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const status = toStatus(error);
    if (!(error instanceof AdapterError)) {
      request.log.error({ err: error, url: request.url }, 'unexpected error while serving a request');
    } else if (status.code >= 500) {
      request.log.warn({ url: request.url, code: status.code, msg: status.message }, 'request failed');
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
  app.get('/apis', async (request, reply) => sendJson(request, reply, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups }));
  return app as unknown as FastifyInstance;
}
