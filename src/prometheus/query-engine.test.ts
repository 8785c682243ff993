import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QueryEngine } from './query-engine.ts';
import type { InstantQuerier, InstantQueryResult } from './http-client.ts';
import { ServiceUnavailableError } from '../errors.ts';

interface PendingCall {
  readonly promql: string;
  readonly timeSeconds: number;
  resolve(result: InstantQueryResult): void;
  reject(error: unknown): void;
}

/**
 * A FAKE backend standing in for Prometheus: every call is recorded and stays pending until the test settles it, so
 * the tests decide exactly which calls overlap.
 */
class FakeInstantQuerier implements InstantQuerier {
  readonly calls: PendingCall[] = [];

  query(promql: string, timeSeconds: number): Promise<InstantQueryResult> {
    return new Promise((resolve, reject) => {
      this.calls.push({ promql, timeSeconds, resolve, reject });
    });
  }

  call(i: number): PendingCall {
    const c = this.calls[i];
    assert.ok(c, `expected backend call #${i}, have ${this.calls.length}`);
    return c;
  }
}

/** A FAKE clock in epoch milliseconds; tests step it instead of sleeping. */
class FakeClock {
  ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  readonly now = (): number => this.ms;
}

function result(value: number): InstantQueryResult {
  return { samples: [{ labels: { pod: 'a' }, value, timestamp: 1_700_000_000 }], warnings: [] };
}

/** Lets every pending promise callback run, so a call that would reach the backend has done so. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const T0 = 1_700_000_000_123;

describe('QueryEngine', () => {
  it('coalesces concurrent identical queries into one backend call', async () => {
    const backend = new FakeInstantQuerier();
    const engine = new QueryEngine(backend, { cacheTtlMs: 10_000, cacheMaxEntries: 10, now: new FakeClock(T0).now });
    const pending = Array.from({ length: 5 }, () => engine.query('up'));
    await settle();
    assert.equal(backend.calls.length, 1);
    assert.deepEqual(engine.stats, { cachedEntries: 0, inflight: 1 });
    backend.call(0).resolve(result(7));
    const answers = await Promise.all(pending);
    assert.deepEqual(
      answers.map((a) => a.source),
      ['prometheus', 'coalesced', 'coalesced', 'coalesced', 'coalesced'],
    );
    for (const a of answers) {
      assert.deepEqual(a.samples, result(7).samples);
      assert.equal(a.evaluatedAt, Math.floor(T0 / 1000));
    }
    assert.equal(backend.calls.length, 1);
    assert.deepEqual(engine.stats, { cachedEntries: 1, inflight: 0 });
  });

  it('evaluates at the whole second at or before now', async () => {
    const backend = new FakeInstantQuerier();
    const clock = new FakeClock(1_700_000_000_999);
    const engine = new QueryEngine(backend, { cacheTtlMs: 0, cacheMaxEntries: 10, now: clock.now });
    const p = engine.query('up');
    await settle();
    assert.equal(backend.call(0).timeSeconds, 1_700_000_000);
    assert.ok(Number.isInteger(backend.call(0).timeSeconds));
    backend.call(0).resolve(result(1));
    assert.equal((await p).evaluatedAt, 1_700_000_000);
  });

  it('answers from the cache within the TTL, keeping the original evaluation time', async () => {
    const backend = new FakeInstantQuerier();
    const clock = new FakeClock(T0);
    const engine = new QueryEngine(backend, { cacheTtlMs: 5_000, cacheMaxEntries: 10, now: clock.now });
    const first = engine.query('up');
    await settle();
    backend.call(0).resolve(result(3));
    assert.equal((await first).source, 'prometheus');

    clock.ms += 4_000;
    const second = await engine.query('up');
    assert.equal(second.source, 'cache');
    assert.deepEqual(second.samples, result(3).samples);
    assert.equal(second.evaluatedAt, Math.floor(T0 / 1000));
    assert.equal(backend.calls.length, 1);
  });

  it('expires a cached result once the TTL has passed on the injected clock', async () => {
    const backend = new FakeInstantQuerier();
    const clock = new FakeClock(T0);
    const engine = new QueryEngine(backend, { cacheTtlMs: 5_000, cacheMaxEntries: 10, now: clock.now });
    const first = engine.query('up');
    await settle();
    backend.call(0).resolve(result(3));
    await first;

    // lru-cache treats an entry as stale only when its age exceeds the TTL, so exactly 5 s is still fresh.
    clock.ms += 5_000;
    assert.equal((await engine.query('up')).source, 'cache');

    clock.ms += 1;
    const refreshed = engine.query('up');
    await settle();
    assert.equal(backend.calls.length, 2, 'an expired entry must go back to the backend');
    assert.equal(backend.call(1).timeSeconds, Math.floor((T0 + 5_001) / 1000));
    backend.call(1).resolve(result(4));
    const answer = await refreshed;
    assert.equal(answer.source, 'prometheus');
    assert.equal(answer.samples[0]?.value, 4);
    assert.equal(answer.evaluatedAt, Math.floor((T0 + 5_001) / 1000));
  });

  it('with a TTL of 0 caches nothing but still coalesces concurrent queries', async () => {
    const backend = new FakeInstantQuerier();
    const engine = new QueryEngine(backend, { cacheTtlMs: 0, cacheMaxEntries: 10, now: new FakeClock(T0).now });
    const concurrent = [engine.query('up'), engine.query('up'), engine.query('up')];
    await settle();
    assert.equal(backend.calls.length, 1);
    backend.call(0).resolve(result(1));
    assert.deepEqual(
      (await Promise.all(concurrent)).map((a) => a.source),
      ['prometheus', 'coalesced', 'coalesced'],
    );
    assert.equal(engine.stats.cachedEntries, 0);

    const later = engine.query('up');
    await settle();
    assert.equal(backend.calls.length, 2, 'nothing is cached with a TTL of 0');
    backend.call(1).resolve(result(2));
    assert.equal((await later).source, 'prometheus');
  });

  it('does not cache a failure: every waiter sees it and the next call retries', async () => {
    const backend = new FakeInstantQuerier();
    const engine = new QueryEngine(backend, { cacheTtlMs: 60_000, cacheMaxEntries: 10, now: new FakeClock(T0).now });
    const a = engine.query('up');
    const b = engine.query('up');
    await settle();
    assert.equal(backend.calls.length, 1);
    const failure = new ServiceUnavailableError('Prometheus at http://prom is unreachable');
    backend.call(0).reject(failure);
    await assert.rejects(a, (err) => err === failure);
    await assert.rejects(b, (err) => err === failure);
    assert.deepEqual(engine.stats, { cachedEntries: 0, inflight: 0 });

    const retry = engine.query('up');
    await settle();
    assert.equal(backend.calls.length, 2, 'the failure must not be cached');
    backend.call(1).resolve(result(9));
    const answer = await retry;
    assert.equal(answer.source, 'prometheus');
    assert.equal(answer.samples[0]?.value, 9);
  });

  it('does not coalesce or share cache entries between different queries', async () => {
    const backend = new FakeInstantQuerier();
    const engine = new QueryEngine(backend, { cacheTtlMs: 60_000, cacheMaxEntries: 10, now: new FakeClock(T0).now });
    const up = engine.query('up');
    const down = engine.query('down');
    await settle();
    assert.deepEqual(
      backend.calls.map((c) => c.promql),
      ['up', 'down'],
    );
    backend.call(1).resolve(result(2));
    backend.call(0).resolve(result(1));
    const [u, d] = await Promise.all([up, down]);
    assert.equal(u.source, 'prometheus');
    assert.equal(d.source, 'prometheus');
    assert.equal(u.samples[0]?.value, 1);
    assert.equal(d.samples[0]?.value, 2);

    assert.equal((await engine.query('up')).samples[0]?.value, 1);
    assert.equal((await engine.query('down')).samples[0]?.value, 2);
    assert.equal(backend.calls.length, 2);
  });

  it('evicts the least recently used entry beyond cacheMaxEntries', async () => {
    const backend = new FakeInstantQuerier();
    const engine = new QueryEngine(backend, { cacheTtlMs: 60_000, cacheMaxEntries: 2, now: new FakeClock(T0).now });
    for (const q of ['a', 'b', 'c']) {
      const p = engine.query(q);
      await settle();
      backend.call(backend.calls.length - 1).resolve(result(1));
      await p;
    }
    assert.equal(engine.stats.cachedEntries, 2);
    assert.equal((await engine.query('c')).source, 'cache');
    const again = engine.query('a');
    await settle();
    assert.equal(backend.calls.length, 4, '"a" was evicted');
    backend.call(3).resolve(result(1));
    assert.equal((await again).source, 'prometheus');
  });
});
