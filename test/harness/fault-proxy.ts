/**
 * A FAKE Prometheus front: an HTTP server that forwards every request to a real Prometheus unless told to
 * misbehave, so tests can break the backend in the ways production backends break and then heal it, without
 * restarting anything. It counts requests in flight, which is what a concurrency limit must bound.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultMode =
  /** Forward untouched. */
  | 'pass'
  /** Wait `slowDelayMs`, then forward. */
  | 'slow'
  /** 500 with Prometheus's JSON error envelope (errorType internal), as for a storage failure. */
  | 'http-500'
  /** 503 with errorType timeout: Prometheus gave up evaluating the query (--query.timeout). */
  | 'prometheus-timeout'
  /** 400 with errorType bad_data, as Prometheus answers a query it cannot parse. */
  | 'bad-data'
  /** 200 whose body breaks off in the middle of the JSON. */
  | 'malformed-json'
  /** Read the request, never answer. */
  | 'hang'
  /** Send the headers and the start of a body, then one byte every 100 ms, forever: no idle timeout ever fires. */
  | 'trickle';

export interface FaultProxyStats {
  /** Requests received since the last reset. */
  readonly requests: number;
  /** Requests received and not yet answered or abandoned. */
  readonly inFlight: number;
  /** Highest inFlight seen since the last reset. */
  readonly maxInFlight: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:port; stays the same across close() and reopen(). */
  readonly url: string;
  readonly port: number;
  setMode(mode: FaultMode): void;
  readonly mode: FaultMode;
  /** How long 'slow' waits before forwarding. */
  slowDelayMs: number;
  stats(): FaultProxyStats;
  resetStats(): void;
  /** Stops listening and drops every connection: clients get ECONNREFUSED until reopen(). */
  close(): Promise<void>;
  reopen(): Promise<void>;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstreamUrl: string, options: { slowDelayMs?: number } = {}): Promise<FaultProxy> {
  const upstream = new URL(upstreamUrl);
  let mode: FaultMode = 'pass';
  let requests = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const later = (ms: number, fn: () => void, repeat = false): NodeJS.Timeout => {
    const t = repeat ? setInterval(fn, ms) : setTimeout(() => (timers.delete(t), fn()), ms);
    timers.add(t);
    return t;
  };
  const clear = (t: NodeJS.Timeout): void => {
    clearTimeout(t);
    timers.delete(t);
  };

  const sendJson = (res: http.ServerResponse, code: number, body: unknown): void => {
    res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  };

  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void => {
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    res.on('close', () => out.destroy());
    out.end(body);
  };

  const server = http.createServer((req, res) => {
    requests++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.once('close', () => inFlight--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      switch (mode) {
        case 'pass':
          return forward(req, body, res);
        case 'slow': {
          const t = later(proxy.slowDelayMs, () => {
            if (!res.destroyed) forward(req, body, res);
          });
          res.once('close', () => clear(t));
          return;
        }
        case 'http-500':
          return sendJson(res, 500, { status: 'error', errorType: 'internal', error: 'fault proxy: storage failure' });
        case 'prometheus-timeout':
          return sendJson(res, 503, { status: 'error', errorType: 'timeout', error: 'query timed out in query execution' });
        case 'bad-data':
          return sendJson(res, 400, {
            status: 'error',
            errorType: 'bad_data',
            error: 'invalid parameter "query": 1:9: parse error: unexpected end of input (fault proxy)',
          });
        case 'malformed-json':
          res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":{"resultType":"vector","result":[{"metric":');
          return;
        case 'hang':
          return;
        case 'trickle': {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.write('{"status":"success","data":{"resultType":"vector","result":[');
          const t = later(100, () => res.write(' '), true);
          res.once('close', () => {
            clearInterval(t);
            timers.delete(t);
          });
          return;
        }
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;

  const close = async (): Promise<void> => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };

  const proxy: FaultProxy = {
    url: `http://127.0.0.1:${port}`,
    port,
    slowDelayMs: options.slowDelayMs ?? 2000,
    get mode() {
      return mode;
    },
    setMode(m) {
      mode = m;
    },
    stats: () => ({ requests, inFlight, maxInFlight }),
    resetStats() {
      requests = 0;
      maxInFlight = inFlight;
    },
    close,
    reopen: () => listen(port),
    stop: async () => {
      if (server.listening) await close();
    },
  };
  return proxy;
}
