/**
 * PrometheusHttpClient over real HTTP.
 *
 * - Against a REAL Prometheus (src/demo/prometheus-process.ts) with backfilled, deterministic data: what the API
 *   returns, and how the client reads it. A small recording reverse proxy (a FAKE, for observation only) sits in
 *   front of it where the test must see the HTTP method, since Prometheus's own request metrics do not record it.
 * - Against a FAKE recording HTTP(S) server for what a real Prometheus cannot be made to do on demand: headers and
 *   tokens as received, malformed bodies, chosen status codes, silence, TLS with a test CA.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createCertificateAuthority, type CertificateAuthority } from '../../src/api/certificates.ts';
import {
  freeLoopbackPort,
  startPrometheus,
  type PrometheusProcess,
  type SeriesSpec,
} from '../../src/demo/prometheus-process.ts';
import { AdapterError, InternalError, ServiceUnavailableError, TimeoutError } from '../../src/errors.ts';
import { PrometheusHttpClient, type PrometheusClientOptions } from '../../src/prometheus/http-client.ts';

function client(url: string, extra: Partial<PrometheusClientOptions> = {}): PrometheusHttpClient {
  return new PrometheusHttpClient({ url, timeoutMs: 10_000, verb: 'GET', ...extra });
}

/** Runs `fn`, which must fail, and returns the error after checking its class and HTTP code. */
async function failure<T extends AdapterError>(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => T,
  code: number,
): Promise<T> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, 'expected the call to fail');
  assert.ok(caught instanceof type, `expected ${type.name}, got ${String((caught as Error).stack ?? caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** CN of the client certificate, on a TLS server that asked for one. */
  clientCn?: string;
}

type Responder = (req: RecordedRequest, res: http.ServerResponse) => void;

/** A FAKE HTTP(S) server that records every request and answers with whatever the current test sets. */
interface FakeServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  respond: Responder;
  close(): Promise<void>;
}

const SUCCESS_BODY = JSON.stringify({
  status: 'success',
  data: { resultType: 'vector', result: [{ metric: { pod: 'a' }, value: [1_700_000_000, '1'] }] },
});

function answerSuccess(_req: RecordedRequest, res: http.ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(SUCCESS_BODY);
}

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

async function startFakeServer(tls?: https.ServerOptions): Promise<FakeServer> {
  const fake: FakeServer = {
    url: '',
    port: 0,
    requests: [],
    respond: answerSuccess,
    close: async () => {},
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      const socket = req.socket as TLSSocket;
      if (typeof socket.getPeerCertificate === 'function') {
        const cn = socket.getPeerCertificate().subject?.CN;
        if (typeof cn === 'string') recorded.clientCn = cn;
      }
      fake.requests.push(recorded);
      fake.respond(recorded, res);
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const port = await listen(server);
  fake.port = port;
  fake.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}

/** Parameters of a recorded query, whether they came in the URL or in a form body. */
function queryParams(req: RecordedRequest): URLSearchParams {
  const params = new URLSearchParams(new URL(req.url, 'http://x').search);
  if (req.method === 'POST') for (const [k, v] of new URLSearchParams(req.body)) params.append(k, v);
  return params;
}

// ---------------------------------------------------------------------------------------------------------------

const STEP = 15;

describe('PrometheusHttpClient against a real Prometheus', () => {
  // On the step grid, so `now` and `now - 300` hold samples and every expected value is exact.
  const now = Math.floor(Date.now() / 1000 / STEP) * STEP;
  const from = now - 900;
  const series: SeriesSpec[] = [
    { name: 'test_gauge', type: 'gauge', labels: { pod: 'a' }, value: (t) => t - from },
    { name: 'test_gauge', type: 'gauge', labels: { pod: 'b' }, value: (t) => 2 * (t - from) },
    { name: 'test_special', type: 'gauge', labels: { kind: 'nan' }, value: () => Number.NaN },
    { name: 'test_special', type: 'gauge', labels: { kind: 'inf' }, value: () => Number.POSITIVE_INFINITY },
    { name: 'test_special', type: 'gauge', labels: { kind: 'neginf' }, value: () => Number.NEGATIVE_INFINITY },
  ];
  let prom: PrometheusProcess;
  let proxy: http.Server;
  let proxyUrl: string;
  /** Method and URL length of every request the recording proxy forwarded to Prometheus. */
  const forwarded: { method: string; urlLength: number; contentType: string | undefined; status: number }[] = [];

  before(async () => {
    prom = await startPrometheus({ series, fromSeconds: from, toSeconds: now + 3600, stepSeconds: STEP });
    // A FAKE reverse proxy, only for observation: it forwards verbatim and notes the method Prometheus received.
    proxy = http.createServer((req, res) => {
      const upstream = http.request(
        { host: '127.0.0.1', port: prom.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          forwarded.push({
            method: req.method ?? '',
            urlLength: (req.url ?? '').length,
            contentType: req.headers['content-type'],
            status: up.statusCode ?? 0,
          });
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', (err) => res.writeHead(502).end(err.message));
      req.pipe(upstream);
    });
    proxyUrl = `http://127.0.0.1:${await listen(proxy)}`;
  });

  after(async () => {
    if (proxy) {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
    await prom?.stop();
  });

  it('returns the labels, values and evaluation timestamp of a vector', async () => {
    const { samples, warnings } = await client(prom.url).query('test_gauge', now);
    assert.deepEqual(warnings, []);
    const byPod = [...samples].sort((a, b) => (a.labels['pod'] ?? '').localeCompare(b.labels['pod'] ?? ''));
    assert.deepEqual(byPod, [
      { labels: { __name__: 'test_gauge', pod: 'a' }, value: now - from, timestamp: now },
      { labels: { __name__: 'test_gauge', pod: 'b' }, value: 2 * (now - from), timestamp: now },
    ]);
  });

  it('honours the evaluation time: a past time gives that time’s value and timestamp', async () => {
    const past = now - 300;
    const { samples } = await client(prom.url).query('test_gauge{pod="a"}', past);
    assert.deepEqual(samples, [{ labels: { __name__: 'test_gauge', pod: 'a' }, value: past - from, timestamp: past }]);

    // Millisecond precision survives the round trip; the value is the newest sample at or before that time.
    const between = now - 300 + 7.25;
    const [sample] = (await client(prom.url).query('test_gauge{pod="a"}', between)).samples;
    assert.equal(sample?.timestamp, between);
    assert.equal(sample?.value, past - from);
  });

  it('reads NaN, +Inf and -Inf as numbers', async () => {
    const { samples } = await client(prom.url).query('test_special', now);
    const byKind = Object.fromEntries(samples.map((s) => [s.labels['kind'], s.value]));
    assert.equal(Object.keys(byKind).length, 3);
    assert.ok(Number.isNaN(byKind['nan']), `NaN sample read as ${byKind['nan']}`);
    assert.equal(byKind['inf'], Number.POSITIVE_INFINITY);
    assert.equal(byKind['neginf'], Number.NEGATIVE_INFINITY);
    // Also when PromQL computes them rather than storing them.
    const [computed] = (await client(prom.url).query('scalar(test_gauge{pod="a"}) / 0', now)).samples;
    assert.equal(computed?.value, Number.POSITIVE_INFINITY);
  });

  it('accepts scalar results and vectors without labels', async () => {
    const c = client(prom.url);
    assert.deepEqual((await c.query('1+1', now)).samples, [{ labels: {}, value: 2, timestamp: now }]);
    assert.deepEqual((await c.query('scalar(test_gauge{pod="b"})', now)).samples, [
      { labels: {}, value: 2 * (now - from), timestamp: now },
    ]);
    assert.deepEqual((await c.query('vector(1)', now)).samples, [{ labels: {}, value: 1, timestamp: now }]);
    assert.deepEqual((await c.query('test_gauge{pod="nobody"}', now)).samples, []);
  });

  it('rejects a range vector result with an error that says what was expected', async () => {
    const err = await failure(() => client(prom.url).query('test_gauge[1m]', now), InternalError, 500);
    assert.match(err.message, /matrix/);
    assert.match(err.message, /instant vector/);
  });

  it('turns a syntax error into InternalError naming Prometheus, bad_data and the parse error', async () => {
    const err = await failure(() => client(prom.url).query('sum(test_gauge', now), InternalError, 500);
    assert.ok(err.message.includes(prom.url), err.message);
    assert.match(err.message, /bad_data/);
    assert.match(err.message, /parse error/);
    assert.match(err.message, /unclosed left parenthesis/);
  });

  it('sends a query longer than 8 KiB as a POST, which Prometheus answers', async () => {
    // A regex alternation of 1,000 pod names, about 10 KB; only pod "a" exists.
    const pods = ['a', ...Array.from({ length: 1000 }, (_, i) => `pod-${String(i).padStart(5, '0')}`)];
    const promql = `test_gauge{pod=~"${pods.join('|')}"}`;
    assert.ok(promql.length > 8 * 1024);
    const c = client(proxyUrl);

    forwarded.length = 0;
    const short = await c.query('test_gauge{pod="a"}', now);
    assert.equal(short.samples.length, 1);
    assert.deepEqual(
      forwarded.map((f) => f.method),
      ['GET'],
    );

    forwarded.length = 0;
    const { samples } = await c.query(promql, now);
    assert.deepEqual(samples, [{ labels: { __name__: 'test_gauge', pod: 'a' }, value: now - from, timestamp: now }]);
    assert.equal(forwarded.length, 1);
    assert.equal(forwarded[0]?.method, 'POST');
    assert.equal(forwarded[0]?.contentType, 'application/x-www-form-urlencoded');
    assert.equal(forwarded[0]?.status, 200);
    assert.ok((forwarded[0]?.urlLength ?? 0) < 100, 'the query travels in the body, not the URL');
  });

  it('series: returns each matching series once, as its name and label names', async () => {
    const byName = (list: { name: string; labels: readonly string[] }[]) =>
      [...list].sort((a, b) => `${a.name}${a.labels}`.localeCompare(`${b.name}${b.labels}`));
    const c = client(prom.url);
    // Two series with the same label names are still two entries: callers count series, not shapes.
    assert.deepEqual(await c.series(['test_gauge'], now - 300, now), [
      { name: 'test_gauge', labels: ['pod'] },
      { name: 'test_gauge', labels: ['pod'] },
    ]);
    // Several match[] are a union, and Prometheus lists a series matched twice only once.
    assert.deepEqual(byName(await c.series(['test_gauge{pod="a"}', '{__name__=~"test_.*",pod!=""}', '{kind="nan"}'], now - 300, now)), [
      { name: 'test_gauge', labels: ['pod'] },
      { name: 'test_gauge', labels: ['pod'] },
      { name: 'test_special', labels: ['kind'] },
    ]);
    assert.deepEqual(await c.series(['{__name__="no_such_metric"}'], now - 300, now), []);
  });

  it('series: honours both ends of the time range', async () => {
    const c = client(prom.url);
    // Before the first sample: without `end` Prometheus would search up to the newest block and find them.
    assert.deepEqual(await c.series(['test_gauge'], from - 7200, from - 3600), []);
    // After the last sample (now + 3600).
    assert.deepEqual(await c.series(['test_gauge'], now + 7200, now + 9000), []);
    // A range that overlaps the data by a few seconds at either end finds them.
    assert.equal((await c.series(['test_gauge'], from - 3600, from + 5)).length, 2);
    assert.equal((await c.series(['test_gauge'], now + 3595, now + 9000)).length, 2);
  });

  it('series: maps a selector Prometheus rejects to InternalError with its bad_data message', async () => {
    const c = client(prom.url);
    const syntax = await failure(() => c.series(['test_gauge{'], now - 300, now), InternalError, 500);
    assert.ok(syntax.message.includes(prom.url), syntax.message);
    assert.match(syntax.message, /bad_data/);
    assert.match(syntax.message, /parse error/);
    // A selector that matches everything is refused too, rather than listing the whole TSDB.
    const empty = await failure(() => c.series(['{pod=~".*"}'], now - 300, now), InternalError, 500);
    assert.match(empty.message, /bad_data/);
  });

  it('series: sends a selector longer than 8 KiB as a POST', async () => {
    const pods = ['a', ...Array.from({ length: 1000 }, (_, i) => `pod-${String(i).padStart(5, '0')}`)];
    const selector = `test_gauge{pod=~"${pods.join('|')}"}`;
    forwarded.length = 0;
    assert.deepEqual(await client(proxyUrl).series([selector], now - 300, now), [{ name: 'test_gauge', labels: ['pod'] }]);
    assert.deepEqual(
      forwarded.map((f) => [f.method, f.contentType, f.status]),
      [['POST', 'application/x-www-form-urlencoded', 200]],
    );
    assert.ok((forwarded[0]?.urlLength ?? 0) < 100, 'the selector travels in the body, not the URL');

    forwarded.length = 0;
    await client(proxyUrl).series(['test_gauge'], now - 300, now);
    assert.deepEqual(
      forwarded.map((f) => f.method),
      ['GET'],
    );
  });

  it('always posts with verb POST', async () => {
    forwarded.length = 0;
    const { samples } = await client(proxyUrl, { verb: 'POST' }).query('test_gauge{pod="b"}', now);
    assert.equal(samples[0]?.value, 2 * (now - from));
    assert.deepEqual(
      forwarded.map((f) => [f.method, f.status]),
      [['POST', 200]],
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('PrometheusHttpClient against a fake HTTP server', () => {
  let fake: FakeServer;
  let dir: string;

  before(async () => {
    fake = await startFakeServer();
    dir = await mkdtemp(path.join(tmpdir(), 'pma-prom-client-'));
  });

  after(async () => {
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function reset(respond: Responder = answerSuccess): void {
    fake.requests.length = 0;
    fake.respond = respond;
  }

  it('sends extra headers, Accept, and the query parameters', async () => {
    reset();
    await client(fake.url, { headers: { 'X-Scope-OrgID': 'tenant-1' } }).query('up', 1_700_000_000);
    assert.equal(fake.requests.length, 1);
    const [req] = fake.requests;
    assert.equal(req?.method, 'GET');
    assert.equal(req?.headers['x-scope-orgid'], 'tenant-1');
    assert.equal(req?.headers['accept'], 'application/json');
    assert.equal(req?.headers['authorization'], undefined);
    const params = queryParams(req as RecordedRequest);
    assert.equal(params.get('query'), 'up');
    assert.equal(Number(params.get('time')), 1_700_000_000);
  });

  it('sends a positive timeout duration that Prometheus can parse', async () => {
    for (const timeoutMs of [300, 1_500, 30_000]) {
      reset();
      await client(fake.url, { timeoutMs }).query('up', 1_700_000_000);
      const timeout = queryParams(fake.requests[0] as RecordedRequest).get('timeout') ?? '';
      const match = /^(\d+(?:\.\d+)?)s$/.exec(timeout);
      assert.ok(match, `timeout=${timeout} for ${timeoutMs} ms`);
      assert.ok(Number(match[1]) > 0, `timeout=${timeout} for ${timeoutMs} ms`);
      // Prometheus need not work longer than the client waits, give or take the rounding to whole seconds.
      assert.ok(Number(match[1]) <= Math.max(1, timeoutMs / 1000), `timeout=${timeout} for ${timeoutMs} ms`);
    }
  });

  it('keeps a path prefix of the base URL, with or without a trailing slash', async () => {
    for (const suffix of ['/prom', '/prom/']) {
      reset();
      await client(`${fake.url}${suffix}`).query('up', 1_700_000_000);
      await client(`${fake.url}${suffix}`, { verb: 'POST' }).query('up', 1_700_000_000);
      assert.deepEqual(
        fake.requests.map((r) => [r.method, new URL(r.url, 'http://x').pathname]),
        [
          ['GET', '/prom/api/v1/query'],
          ['POST', '/prom/api/v1/query'],
        ],
      );
    }
  });

  it('switches to POST once the URL would exceed maxGetUrlBytes, with a form body', async () => {
    reset();
    const c = client(fake.url, { maxGetUrlBytes: 200 });
    await c.query('up', 1_700_000_000);
    const long = `up{pod=~"${'x|'.repeat(100)}y"}`;
    await c.query(long, 1_700_000_000);
    assert.deepEqual(
      fake.requests.map((r) => r.method),
      ['GET', 'POST'],
    );
    const post = fake.requests[1] as RecordedRequest;
    assert.equal(post.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(new URLSearchParams(post.body).get('query'), long);
    assert.ok(fake.requests.every((r) => r.url.length <= 200));
  });

  it('sends the bearer token from tokenFile and picks up a rewritten file at the next re-check', async () => {
    reset();
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, 'first-token\n');
    const clock = { ms: 1_000_000 };
    const c = client(fake.url, { tokenFile, now: () => clock.ms });
    await c.query('up', 1_700_000_000);
    assert.equal(fake.requests[0]?.headers['authorization'], 'Bearer first-token');

    await writeFile(tokenFile, 'second-token\n');
    // A distinct mtime, so the change is visible even on a file system with coarse timestamps.
    const later = new Date(Date.now() + 60_000);
    await utimes(tokenFile, later, later);

    // The file is re-checked at most every 10 s, so the old token is still sent just before that.
    clock.ms += 9_999;
    await c.query('up', 1_700_000_000);
    assert.equal(fake.requests[1]?.headers['authorization'], 'Bearer first-token');

    clock.ms += 1;
    await c.query('up', 1_700_000_000);
    assert.equal(fake.requests[2]?.headers['authorization'], 'Bearer second-token');

    // A token file that disappears keeps the last token rather than failing every query.
    await rm(tokenFile);
    clock.ms += 10_000;
    await c.query('up', 1_700_000_000);
    assert.equal(fake.requests[3]?.headers['authorization'], 'Bearer second-token');
  });

  it('refuses to start without a readable token file', () => {
    assert.throws(
      () => client(fake.url, { tokenFile: path.join(dir, 'missing-token') }),
      /bearer token file .*missing-token/,
    );
  });

  it('series: sends repeated match[], start and end at millisecond precision, and keeps names only', async () => {
    reset((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          status: 'success',
          data: [
            { __name__: 'http_requests_total', namespace: 'default', pod: 'web-1', secret: 'value' },
            { namespace: 'default' },
            { __name__: '', pod: 'x' },
            'not a series',
            { __name__: 'up' },
          ],
        }),
      );
    });
    const series = await client(fake.url).series(['a{b="c"}', '{d!=""}'], 1_700_000_000.25, 1_700_000_600.5);
    assert.deepEqual(series, [
      { name: 'http_requests_total', labels: ['namespace', 'pod', 'secret'] },
      { name: 'up', labels: [] },
    ]);
    assert.ok(!JSON.stringify(series).includes('web-1'), 'label values are dropped');
    const [req] = fake.requests;
    assert.equal(req?.method, 'GET');
    assert.equal(new URL(req?.url ?? '', 'http://x').pathname, '/api/v1/series');
    const params = queryParams(req as RecordedRequest);
    assert.deepEqual(params.getAll('match[]'), ['a{b="c"}', '{d!=""}']);
    assert.equal(params.get('start'), '1700000000.250');
    assert.equal(params.get('end'), '1700000600.500');
  });

  it('series: posts with verb POST, and maps errors like a query does', async () => {
    reset();
    fake.respond = (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":[]}');
    assert.deepEqual(await client(fake.url, { verb: 'POST' }).series(['up'], 1, 2), []);
    assert.equal(fake.requests[0]?.method, 'POST');
    assert.deepEqual(new URLSearchParams(fake.requests[0]?.body).getAll('match[]'), ['up']);

    reset((_req, res) => {
      res
        .writeHead(503, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out' }));
    });
    await failure(() => client(fake.url).series(['up'], 1, 2), TimeoutError, 504);

    reset((_req, res) => {
      res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'internal', error: 'x' }));
    });
    await failure(() => client(fake.url).series(['up'], 1, 2), ServiceUnavailableError, 503);

    // A query-shaped answer where a list is expected is malformed, not an empty list.
    reset();
    const malformed = await failure(() => client(fake.url).series(['up'], 1, 2), InternalError, 500);
    assert.match(malformed.message, /malformed/);

    const closed = `http://127.0.0.1:${await freeLoopbackPort()}`;
    await failure(() => client(closed).series(['up'], 1, 2), ServiceUnavailableError, 503);
  });

  it('passes Prometheus warnings through', async () => {
    reset((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          status: 'success',
          data: { resultType: 'vector', result: [] },
          warnings: ['results truncated due to limit'],
        }),
      );
    });
    assert.deepEqual(await client(fake.url).query('up', 1_700_000_000), {
      samples: [],
      warnings: ['results truncated due to limit'],
    });
  });

  it('maps a body that is not JSON to ServiceUnavailable with a snippet of it', async () => {
    reset((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html><body>login required</body></html>');
    });
    const err = await failure(() => client(fake.url).query('up', 1), ServiceUnavailableError, 503);
    assert.ok(err.message.includes(fake.url), err.message);
    assert.match(err.message, /HTTP 200/);
    assert.match(err.message, /login required/);

    reset((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"succ');
    });
    const truncated = await failure(() => client(fake.url).query('up', 1), ServiceUnavailableError, 503);
    assert.match(truncated.message, /\{\\"status\\":\\"succ/);
  });

  it('maps JSON that is not an envelope (null, an array) to ServiceUnavailable instead of a TypeError', async () => {
    for (const body of ['null', '[]', '42']) {
      reset((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      });
      const err = await failure(() => client(fake.url).query('up', 1), ServiceUnavailableError, 503);
      assert.ok(err.message.includes(body), err.message);
    }
  });

  it('maps HTTP 503 with errorType timeout to TimeoutError', async () => {
    reset((_req, res) => {
      res
        .writeHead(503, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out in query execution' }));
    });
    const err = await failure(() => client(fake.url).query('up', 1), TimeoutError, 504);
    assert.ok(err.message.includes(fake.url), err.message);
    assert.match(err.message, /query timed out in query execution/);
  });

  it('maps HTTP 422 execution errors to InternalError', async () => {
    reset((_req, res) => {
      res.writeHead(422, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          status: 'error',
          errorType: 'execution',
          error: 'found duplicate series for the match group',
        }),
      );
    });
    const err = await failure(() => client(fake.url).query('up', 1), InternalError, 500);
    assert.match(err.message, /execution: found duplicate series/);
  });

  it('maps HTTP 500 to ServiceUnavailable, with or without a JSON body', async () => {
    reset((_req, res) => {
      res
        .writeHead(500, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ status: 'error', errorType: 'internal', error: 'storage is broken' }));
    });
    const err = await failure(() => client(fake.url).query('up', 1), ServiceUnavailableError, 503);
    assert.ok(err.message.includes(fake.url), err.message);
    assert.match(err.message, /HTTP 500/);
    assert.match(err.message, /internal: storage is broken/);

    reset((_req, res) => {
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('Service Unavailable');
    });
    const plain = await failure(() => client(fake.url).query('up', 1), ServiceUnavailableError, 503);
    assert.match(plain.message, /HTTP 503/);
    assert.match(plain.message, /Service Unavailable/);
  });

  it('gives up on a server that never answers after timeoutMs with TimeoutError', async () => {
    reset(() => {
      // never answers
    });
    const started = performance.now();
    const err = await failure(() => client(fake.url, { timeoutMs: 300 }).query('up', 1), TimeoutError, 504);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 5_000, `gave up after ${elapsed} ms`);
    assert.ok(err.message.includes(fake.url), err.message);
    assert.match(err.message, /300 ms/);
    assert.equal(fake.requests.length, 1);
  });

  it('ends a query whose signal fires while Prometheus is silent, and sends nothing for a signal already fired', async () => {
    let closed = 0;
    reset((_req, res) => {
      res.on('close', () => closed++);
    });
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 100);
    const started = performance.now();
    await failure(() => client(fake.url).query('up', 1, abort.signal), TimeoutError, 504);
    clearTimeout(timer);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 90 && elapsed < 5_000, `ended after ${elapsed} ms`);
    assert.equal(fake.requests.length, 1);
    // The request's connection is given up, so the server sees it close.
    for (let i = 0; i < 100 && closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closed, 1);

    reset();
    await failure(() => client(fake.url).query('up', 1, AbortSignal.abort()), TimeoutError, 504);
    await failure(() => client(fake.url).series(['up'], 0, 1, AbortSignal.abort()), TimeoutError, 504);
    // A request sent anyway would arrive a little later.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(fake.requests.length, 0);
  });

  it('maps a refused connection to ServiceUnavailable naming ECONNREFUSED and the URL', async () => {
    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}/prom`;
    const err = await failure(() => client(url).query('up', 1), ServiceUnavailableError, 503);
    assert.match(err.message, /ECONNREFUSED/);
    assert.ok(err.message.includes(url), err.message);
  });

  it('uses credentials in the URL for basic auth but never shows them in an error', async () => {
    reset();
    const withCredentials = (base: string): string => base.replace('http://', 'http://user:s3cr3t-pw@');
    await client(withCredentials(fake.url)).query('up', 1);
    assert.equal(
      fake.requests[0]?.headers['authorization'],
      `Basic ${Buffer.from('user:s3cr3t-pw').toString('base64')}`,
    );

    const errors: Error[] = [];
    const collect = async (url: string, options: Partial<PrometheusClientOptions> = {}): Promise<void> => {
      try {
        await client(url, options).query('up', 1);
        assert.fail(`expected ${url} to fail`);
      } catch (err) {
        errors.push(err as Error);
      }
    };
    reset((_req, res) => {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }),
      );
    });
    await collect(withCredentials(fake.url));
    reset((_req, res) => {
      res.writeHead(502).end('bad gateway');
    });
    await collect(withCredentials(fake.url));
    reset((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({ status: 'success', data: { resultType: 'string', result: [1, 'x'] } }),
      );
    });
    await collect(withCredentials(fake.url));
    reset(() => {});
    await collect(withCredentials(fake.url), { timeoutMs: 200 });
    await collect(withCredentials(`http://127.0.0.1:${await freeLoopbackPort()}`));

    assert.equal(errors.length, 5);
    for (const err of errors) {
      assert.ok(err instanceof AdapterError, String(err));
      // A logger's error serializer (pino's) appends the messages and stacks of the whole cause chain.
      const texts: string[] = [];
      for (let e: unknown = err; e instanceof Error; e = e.cause) texts.push(e.message, String(e.stack));
      for (const text of texts) {
        assert.ok(!text.includes('s3cr3t-pw'), `credentials leaked: ${text}`);
        assert.ok(!text.includes('user:'), `credentials leaked: ${text}`);
      }
      assert.match(err.message, /Prometheus at http:\/\/127\.0\.0\.1:\d+ /);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('PrometheusHttpClient over TLS', () => {
  let ca: CertificateAuthority;
  let dir: string;
  let caFile: string;
  let server: FakeServer;
  let mtlsServer: FakeServer;

  before(async () => {
    ca = await createCertificateAuthority('test prometheus CA');
    const serving = await ca.issue({ commonName: 'prometheus', ips: ['127.0.0.1'], hosts: ['localhost'], usage: 'server' });
    dir = await mkdtemp(path.join(tmpdir(), 'pma-prom-tls-'));
    caFile = path.join(dir, 'ca.crt');
    await writeFile(caFile, ca.certPem);
    server = await startFakeServer({ cert: serving.certPem, key: serving.keyPem });
    mtlsServer = await startFakeServer({
      cert: serving.certPem,
      key: serving.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
  });

  after(async () => {
    await server?.close();
    await mtlsServer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('verifies the server against caFile', async () => {
    server.requests.length = 0;
    const { samples } = await client(server.url, { caFile }).query('up', 1_700_000_000);
    assert.equal(samples[0]?.value, 1);
    assert.equal(server.requests.length, 1);
  });

  it('fails with a clear error when the server certificate is not trusted', async () => {
    server.requests.length = 0;
    const err = await failure(() => client(server.url).query('up', 1), ServiceUnavailableError, 503);
    assert.ok(err.message.includes(server.url), err.message);
    assert.match(err.message, /certificate/i);
    assert.equal(server.requests.length, 0, 'no request may reach an unverified server');
  });

  it('presents the client certificate to a server that asks for one', async () => {
    const clientCert = await ca.issue({ commonName: 'prometheus-metrics-adapter', usage: 'client' });
    const clientCertFile = path.join(dir, 'client.crt');
    const clientKeyFile = path.join(dir, 'client.key');
    await writeFile(clientCertFile, clientCert.certPem);
    await writeFile(clientKeyFile, clientCert.keyPem);

    mtlsServer.requests.length = 0;
    await client(mtlsServer.url, { caFile, clientCertFile, clientKeyFile }).query('up', 1_700_000_000);
    assert.equal(mtlsServer.requests.length, 1);
    assert.equal(mtlsServer.requests[0]?.clientCn, 'prometheus-metrics-adapter');

    // Without the certificate, the server ends the handshake and the client says Prometheus is unreachable.
    const err = await failure(() => client(mtlsServer.url, { caFile }).query('up', 1), ServiceUnavailableError, 503);
    assert.ok(err.message.includes(mtlsServer.url), err.message);
  });

  it('refuses a half-configured client certificate or an unreadable CA file at construction', () => {
    assert.throws(
      () => client(server.url, { clientCertFile: path.join(dir, 'client.crt') }),
      /certificate and key must be given together/,
    );
    assert.throws(() => client(server.url, { caFile: path.join(dir, 'nope.crt') }), /CA file .*nope\.crt/);
  });
});
