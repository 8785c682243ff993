import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import {
  queryPrometheus,
  startPrometheus,
  type PrometheusProcess,
  type SeriesSpec,
} from '../../src/demo/prometheus-process.ts';

const STEP = 15;
const RATE = 2;

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('startPrometheus', () => {
  // Whole seconds on the step grid, so `now` sits on a sample and the expected values are exact.
  const now = Math.floor(Date.now() / 1000 / STEP) * STEP;
  const from = now - 600;
  const series: SeriesSpec[] = [
    { name: 'test_gauge', type: 'gauge', labels: { pod: 'a' }, value: () => 0.25 },
    {
      name: 'test_requests_total',
      help: 'grows at exactly 2/s',
      type: 'counter',
      labels: { pod: 'a' },
      value: (t) => RATE * (t - from),
    },
  ];
  let prom: PrometheusProcess;

  before(async () => {
    prom = await startPrometheus({ series, fromSeconds: from, toSeconds: now + 3600, stepSeconds: STEP });
  });

  after(async () => {
    await prom?.stop();
  });

  it('serves backfilled data at now, including samples stamped in the future', async () => {
    const result = await queryPrometheus(prom.url, 'test_gauge', now);
    assert.equal(result.length, 1);
    assert.deepEqual(result[0]?.metric, { __name__: 'test_gauge', pod: 'a' });
    assert.equal(result[0]?.value[1], '0.25');

    // The wall clock, not a grid time: what the adapter will ask for.
    const atWallClock = await queryPrometheus(prom.url, 'test_gauge');
    assert.equal(atWallClock[0]?.value[1], '0.25');

    const future = await queryPrometheus(prom.url, 'timestamp(test_gauge)', now + 3000);
    assert.equal(future[0]?.value[1], String(now + 3000));
  });

  it('computes rate() of the counter', async () => {
    const result = await queryPrometheus(prom.url, 'rate(test_requests_total[1m])', now);
    assert.equal(result.length, 1);
    const rate = Number(result[0]?.value[1]);
    assert.ok(Math.abs(rate - RATE) < 1e-9, `rate ${rate}`);
  });

  it('counts exactly one /api/v1/query request per query', async () => {
    let before = await prom.queryRequestCount();
    for (let i = 0; i < 3; i++) {
      await queryPrometheus(prom.url, 'test_gauge', now);
      const count = await prom.queryRequestCount();
      assert.equal(count, before + 1);
      before = count;
    }
    // Errors are counted too (under code="400"), since the count sums all status codes.
    await assert.rejects(queryPrometheus(prom.url, 'test_gauge(', now), /bad_data/);
    assert.equal(await prom.queryRequestCount(), before + 1);
  });

  it('frees the port and removes the data directory on stop()', async () => {
    const { port, dataDir } = prom;
    assert.equal(await canListen(port), false);
    assert.ok(existsSync(dataDir));
    await prom.stop();
    assert.equal(await canListen(port), true);
    assert.equal(existsSync(dataDir), false);
    // Idempotent, so after() may call it again.
    await prom.stop();
  });
});
