import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { SelfMetrics } from './self-metrics.ts';

export interface MetricsServer {
  /** http://host:port of the listening socket, with the real port when 0 was asked for. */
  readonly url: string;
  close(): Promise<void>;
}

export interface HostPort {
  /** undefined: every interface (Go's `:8080`). */
  readonly host: string | undefined;
  readonly port: number;
}

/**
 * Reads `--metrics-bind-address` the way Go's net.SplitHostPort does: `host:port`, `[v6]:port`, or `:port`
 * for every interface. A bare IPv6 address without brackets is refused because its last group would be
 * read as the port.
 */
export function parseHostPort(address: string): HostPort {
  const bad = (why: string): Error => new Error(`invalid --metrics-bind-address ${JSON.stringify(address)}: ${why}; expected host:port, [ipv6]:port or :port`);
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') throw bad('an IPv6 address needs the form [address]:port');
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (isIP(host) !== 6) throw bad(`${host} is not an IPv6 address`);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) throw bad('no port');
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) throw bad('put an IPv6 address in brackets');
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad(`port ${JSON.stringify(portText)} is not a number from 0 to 65535`);
  return { host: host === '' ? undefined : host, port: Number(portText) };
}

/**
 * Serves `GET /metrics` on its own plain-HTTP listener. It has no authentication on purpose: it exposes the
 * adapter's own counters (request codes, query latencies, rule names from the rule file), never a metric
 * value, object name or credential, and a separate port lets Prometheus scrape it without a client
 * certificate or a token that kube-apiserver would have to review.
 */
export async function startMetricsServer(
  selfMetrics: SelfMetrics,
  bindAddress: string,
  log: Pick<Logger, 'info' | 'error'>,
): Promise<MetricsServer> {
  const { host, port } = parseHostPort(bindAddress);
  const server = createServer((request, response) => {
    handle(selfMetrics, request, response).catch((err: unknown) => {
      log.error({ err }, 'serving /metrics failed');
      if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'collecting metrics failed\n');
      else response.destroy();
    });
  });
  // A scraper that stalls must not pin sockets forever; a scrape is small and fast.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new Error(`cannot serve metrics on ${bindAddress} (--metrics-bind-address): ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ port, ...(host !== undefined ? { host } : {}) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics server error'));

  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const url = `http://${urlHost(host)}:${boundPort}`;
  log.info({ url: `${url}/metrics` }, 'serving self-metrics');
  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive connections of a scraper would otherwise hold close() open until they time out.
        server.closeAllConnections();
      }),
  };
}

/** A host for URLs and logs: wildcard addresses are reached through loopback. */
function urlHost(host: string | undefined): string {
  if (host === undefined || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

async function handle(selfMetrics: SelfMetrics, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?', 1)[0];
  if (path !== '/metrics') {
    send(response, 404, 'text/plain; charset=utf-8', 'not found: metrics are at /metrics\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    send(response, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const body = await selfMetrics.scrape();
  send(response, 200, selfMetrics.contentType, request.method === 'HEAD' ? null : body, Buffer.byteLength(body));
}

function send(response: ServerResponse, code: number, contentType: string, body: string | null, length = Buffer.byteLength(body ?? '')): void {
  response.writeHead(code, { 'Content-Type': contentType, 'Content-Length': length, 'Cache-Control': 'no-store' });
  response.end(body ?? undefined);
}
