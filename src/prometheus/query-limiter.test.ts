import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdapterError, ServiceUnavailableError, TimeoutError } from '../errors.ts';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import type { InstantQueryResult } from './http-client.ts';
import { QueryEngine } from './query-engine.ts';
import { QueryLimiter, type PrometheusBackend } from './query-limiter.ts';

interface FakeCall {
  readonly kind: 'query' | 'series';
  readonly what: string;
  readonly signal: AbortSignal | undefined;
  readonly startedAt: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * A FAKE Prometheus backend: every call is recorded and stays pending until the test settles it, so the
 * tests decide which calls overlap. Like the HTTP client, it fails with a TimeoutError when its signal aborts.
 */
class FakePrometheusBackend implements PrometheusBackend {
  readonly calls: FakeCall[] = [];
  /** Queries whose calls ignore their signal, like a backend client that cannot cancel. */
  readonly deaf = new Set<string>();
  inFlight = 0;
  maxInFlight = 0;

  query(promql: string, _timeSeconds: number, signal?: AbortSignal): Promise<InstantQueryResult> {
    return this.#record('query', promql, signal) as Promise<InstantQueryResult>;
  }

  series(matchers: readonly string[], _start: number, _end: number, signal?: AbortSignal): Promise<DiscoveredSeries[]> {
    return this.#record('series', matchers.join(','), signal) as Promise<DiscoveredSeries[]>;
  }

  call(i: number): FakeCall {
    const c = this.calls[i];
    assert.ok(c, `expected backend call #${i}, have ${this.calls.length}`);
    return c;
  }

  #record(kind: FakeCall['kind'], what: string, signal?: AbortSignal): Promise<unknown> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = <T>(p: Promise<T>): Promise<T> => p.finally(() => this.inFlight--);
    return done(
      new Promise((resolve, reject) => {
        this.calls.push({ kind, what, signal, startedAt: performance.now(), resolve, reject });
        if (!this.deaf.has(what)) signal?.addEventListener('abort', () => reject(new TimeoutError(`fake backend: ${what} aborted`)), { once: true });
      }),
    );
  }
}

const URL = 'http://prometheus.test:9090';
const answer = (value: number): InstantQueryResult => ({ samples: [{ labels: {}, value, timestamp: 1 }], warnings: [] });

/** Lets pending promise callbacks run, so whatever would reach the backend has done so. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('QueryLimiter', () => {
  it('keeps at most maxConcurrent calls in flight and starts waiting ones in arrival order', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 2, maxQueued: 10, timeoutMs: 10_000, backendUrl: URL });
    const results = ['a', 'b', 'c', 'd', 'e'].map((q) => limiter.query(q, 1));
    const outcomes = Promise.allSettled(results);
    await settle();
    assert.deepEqual(backend.calls.map((c) => c.what), ['a', 'b']);
    assert.deepEqual(limiter.stats, { inFlight: 2, queued: 3, rejected: 0, expiredWaiting: 0 });

    backend.call(1).resolve(answer(2));
    await settle();
    assert.deepEqual(backend.calls.map((c) => c.what), ['a', 'b', 'c'], 'the first waiting call takes the freed slot');
    backend.call(0).reject(new ServiceUnavailableError('fake failure'));
    await settle();
    assert.deepEqual(backend.calls.map((c) => c.what), ['a', 'b', 'c', 'd'], 'a failed call frees its slot too');
    for (const i of [2, 3]) backend.call(i).resolve(answer(i + 1));
    await settle();
    backend.call(4).resolve(answer(5));

    const settled = await outcomes;
    assert.equal(settled[0]!.status, 'rejected');
    assert.deepEqual(
      settled.slice(1).map((s) => (s.status === 'fulfilled' ? s.value.samples[0]!.value : s.reason)),
      [2, 3, 4, 5],
      'each caller gets the answer to its own query',
    );
    assert.equal(backend.maxInFlight, 2);
    assert.deepEqual(limiter.stats, { inFlight: 0, queued: 0, rejected: 0, expiredWaiting: 0 });
  });

  it('fails fast with 503 and a retry hint once the queue is full, without calling the backend', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 2, timeoutMs: 10_000, backendUrl: URL });
    const admitted = ['a', 'b', 'c'].map((q) => limiter.query(q, 1));
    const started = performance.now();
    const refused = await limiter.query('d', 1).then(
      () => assert.fail('the fourth call must be refused'),
      (err: unknown) => err,
    );
    assert.ok(performance.now() - started < 50, 'refused at once, not after waiting');
    assert.ok(refused instanceof ServiceUnavailableError);
    assert.equal(refused.code, 503);
    assert.equal(refused.reason, 'ServiceUnavailable');
    assert.equal(refused.retryAfterSeconds, 1);
    assert.equal(
      refused.message,
      `too many Prometheus queries waiting; retry later: 1 queries to Prometheus at ${URL} are in flight and 2 more are queued ` +
        '(--prometheus-max-concurrent-queries, --prometheus-max-queued-queries)',
    );
    await assert.rejects(limiter.series(['up'], 0, 1), ServiceUnavailableError, 'series calls share the same queue');
    await settle();
    assert.equal(backend.calls.length, 1);
    assert.equal(limiter.stats.rejected, 2);

    backend.call(0).resolve(answer(1));
    await settle();
    backend.call(1).resolve(answer(2));
    await settle();
    backend.call(2).resolve(answer(3));
    assert.equal((await Promise.all(admitted)).length, 3);
  });

  it('with maxQueued 0 never queues: a call either gets a slot or is refused', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 0, timeoutMs: 10_000, backendUrl: URL });
    const first = limiter.query('a', 1);
    await assert.rejects(limiter.query('b', 1), (err: unknown) => err instanceof ServiceUnavailableError && /0 more are queued/.test(err.message));
    await settle();
    backend.call(0).resolve(answer(1));
    await first;
    const second = limiter.query('b', 1);
    await settle();
    backend.call(1).resolve(answer(2));
    assert.equal((await second).samples[0]!.value, 2);
  });

  it('waiting counts against the timeout: a call that never gets a slot fails with 504 after the budget', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 5, timeoutMs: 60, backendUrl: URL });
    backend.deaf.add('slow');
    const first = limiter.query('slow', 1);
    const started = performance.now();
    const waiting = limiter.query('waiting', 1);
    await settle();
    assert.equal(limiter.stats.queued, 1);
    const err = await waiting.then(
      () => assert.fail('the waiting call must time out'),
      (e: unknown) => e,
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 55 && elapsed < 1000, `timed out after ${elapsed} ms`);
    assert.ok(err instanceof TimeoutError);
    assert.equal(err.code, 504);
    assert.equal(
      err.message,
      `waited the whole 60 ms budget (--prometheus-timeout) for one of the 1 query slots to Prometheus at ${URL} ` +
        '(--prometheus-max-concurrent-queries); Prometheus is answering slower than queries arrive',
    );
    assert.deepEqual(backend.calls.map((c) => c.what), ['slow'], 'the expired call never reached the backend');
    assert.equal(limiter.stats.queued, 0, 'the expired call left the queue');
    assert.equal(limiter.stats.expiredWaiting, 1);
    assert.ok(backend.call(0).signal?.aborted, 'the in-flight call was told its deadline passed');
    assert.deepEqual(limiter.stats, { inFlight: 1, queued: 0, rejected: 0, expiredWaiting: 1 }, 'a call that ignores it keeps its slot');
    backend.call(0).resolve(answer(1));
    await first;
    assert.deepEqual(limiter.stats, { inFlight: 0, queued: 0, rejected: 0, expiredWaiting: 1 });
    // The slot is free again and nothing stale is holding it.
    const next = limiter.query('next', 1);
    await settle();
    backend.call(1).resolve(answer(7));
    assert.equal((await next).samples[0]!.value, 7);
  });

  it('a call that got its slot late has only the rest of its budget, and the error says where it went', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 5, timeoutMs: 150, backendUrl: URL });
    const first = limiter.query('first', 1);
    const entered = performance.now();
    const late = limiter.query('late', 1);
    await sleep(80);
    backend.call(0).resolve(answer(1));
    await first;
    await settle();
    const granted = backend.call(1);
    assert.ok(granted.signal && !granted.signal.aborted);
    const err = await late.then(
      () => assert.fail('the late call must run out of budget'),
      (e: unknown) => e,
    );
    const total = performance.now() - entered;
    assert.ok(total >= 140 && total < 1000, `the budget counts from arrival: ${total} ms`);
    assert.ok(performance.now() - granted.startedAt < 140, 'it ran for less than a whole budget');
    assert.ok(err instanceof TimeoutError);
    assert.match(
      err.message,
      new RegExp(`^Prometheus at ${URL.replace(/[.]/g, '\\.')} did not answer within the 150 ms budget \\(--prometheus-timeout\\), \\d+ ms of which went waiting for one of the 1 query slots`),
    );
  });

  it('a caller that gives up while waiting leaves the queue at once', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 5, timeoutMs: 10_000, backendUrl: URL });
    const first = limiter.query('first', 1);
    const abort = new AbortController();
    const waiting = limiter.series(['up'], 0, 1, abort.signal);
    await settle();
    assert.equal(limiter.stats.queued, 1);
    abort.abort();
    await assert.rejects(waiting, (e: unknown) => e instanceof AdapterError && e.code === 503 && /canceled while waiting/.test(e.message));
    assert.equal(limiter.stats.queued, 0);
    backend.call(0).resolve(answer(1));
    await first;
    assert.equal(backend.calls.length, 1);
    assert.deepEqual(limiter.stats, { inFlight: 0, queued: 0, rejected: 0, expiredWaiting: 1 });
  });

  it('a series call passes the caller signal through, combined with the deadline', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 4, maxQueued: 0, timeoutMs: 10_000, backendUrl: URL });
    const abort = new AbortController();
    const call = limiter.series(['up', 'x'], 0, 1, abort.signal);
    await settle();
    assert.equal(backend.call(0).kind, 'series');
    assert.equal(backend.call(0).what, 'up,x');
    abort.abort();
    await assert.rejects(call, TimeoutError);
    assert.equal(limiter.stats.inFlight, 0);
  });

  it('sits behind the query engine: identical queries are merged before they take a slot or a queue place', async () => {
    const backend = new FakePrometheusBackend();
    const limiter = new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: 0, timeoutMs: 10_000, backendUrl: URL });
    const engine = new QueryEngine(limiter, { cacheTtlMs: 10_000, cacheMaxEntries: 10 });
    const same = Array.from({ length: 50 }, () => engine.query('up'));
    await settle();
    assert.equal(backend.calls.length, 1);
    await assert.rejects(engine.query('other'), ServiceUnavailableError, 'a different query finds the only slot taken');
    backend.call(0).resolve(answer(3));
    const results = await Promise.all(same);
    assert.ok(results.every((r) => r.samples[0]!.value === 3));
    assert.equal((await engine.query('up')).source, 'cache', 'cached answers do not touch the limiter at all');
    assert.equal(backend.calls.length, 1);
  });

  it('refuses nonsensical limits', () => {
    const backend = new FakePrometheusBackend();
    assert.throws(() => new QueryLimiter(backend, { maxConcurrent: 0, maxQueued: 1, timeoutMs: 1, backendUrl: URL }), /positive integer/);
    assert.throws(() => new QueryLimiter(backend, { maxConcurrent: 1, maxQueued: -1, timeoutMs: 1, backendUrl: URL }), /non-negative integer/);
  });
});
