/**
 * SeriesDiscovery with a FAKE series client (per-query answers, failures and hold-backs chosen by each test) and
 * the real discoverMetrics naming step.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { pino, type Logger } from 'pino';
import type { SeriesRule } from '../config/model.ts';
import { QUERY_TEMPLATE_FIELDS } from '../config/load.ts';
import { ServiceUnavailableError } from '../errors.ts';
import { ResourceMapper } from '../kubernetes/resource-mapper.ts';
import type { DiscoveredSeries } from '../rules/series-naming.ts';
import { compileTemplate } from '../rules/template.ts';
import { SeriesDiscovery, type DiscoveryResult, type SeriesDiscoveryOptions, type SeriesLister } from './series-discovery.ts';

interface SeriesCall {
  readonly matchers: readonly string[];
  readonly start: number;
  readonly end: number;
  readonly signal: AbortSignal | undefined;
}

/**
 * FAKE `/api/v1/series`: answers each selector from `answers`, fails the ones in `failures`, and, while `hold` is
 * set, leaves calls pending until the test releases them.
 */
class FakeSeriesClient implements SeriesLister {
  readonly calls: SeriesCall[] = [];
  readonly answers = new Map<string, DiscoveredSeries[]>();
  readonly failures = new Map<string, Error>();
  hold = false;
  inflight = 0;
  maxInflight = 0;
  readonly #held: (() => void)[] = [];

  async series(matchers: readonly string[], start: number, end: number, signal?: AbortSignal): Promise<DiscoveredSeries[]> {
    this.calls.push({ matchers, start, end, signal });
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      if (this.hold) {
        await new Promise<void>((resolve, reject) => {
          this.#held.push(resolve);
          signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        });
      }
      const query = matchers[0]!;
      const failure = this.failures.get(query);
      if (failure) throw failure;
      return this.answers.get(query) ?? [];
    } finally {
      this.inflight--;
    }
  }

  get held(): number {
    return this.#held.length;
  }

  releaseAll(): void {
    this.hold = false;
    for (const r of this.#held.splice(0)) r();
  }
}

function seriesRule(
  kind: 'custom' | 'external',
  origin: string,
  seriesQuery: string,
  opts: { matches?: string; as?: string; overrides?: Record<string, string>; namespaced?: boolean } = {},
): SeriesRule {
  const matches = new RegExp(opts.matches ?? '.*');
  return {
    origin,
    kind,
    seriesQuery,
    seriesFilters: [{ is: matches }],
    resources: {
      overrides: Object.fromEntries(Object.entries(opts.overrides ?? {}).map(([label, resource]) => [label, { resource }])),
      template: null,
      namespaced: opts.namespaced ?? true,
    },
    name: { matches, as: opts.as ?? '$0' },
    metricsQuery: compileTemplate('sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)', QUERY_TEMPLATE_FIELDS),
  };
}

const Q_DEPTH = '{__name__=~"queue_.*",queue!=""}';
const Q_HTTP = '{__name__=~"http_.*",namespace!="",pod!=""}';
const Q_LAG = '{__name__="consumer_lag"}';

const RULES: readonly SeriesRule[] = [
  seriesRule('external', 'rules.yaml externalRules[0]', Q_DEPTH, { namespaced: false }),
  seriesRule('custom', 'rules.yaml rules[0]', Q_HTTP, {
    matches: '^(.*)_total$',
    as: '${1}_per_second',
    overrides: { namespace: 'namespace', pod: 'pod' },
  }),
  // Shares its series query with the custom rule: one call serves both.
  seriesRule('external', 'rules.yaml externalRules[1]', Q_HTTP, { matches: '^http_(.*)_total$', as: 'ext_${1}', overrides: { namespace: 'namespace' } }),
  seriesRule('external', 'rules.yaml externalRules[2]', Q_LAG, { namespaced: false }),
];

function answerAll(fake: FakeSeriesClient): void {
  fake.answers.set(Q_DEPTH, [
    { name: 'queue_depth', labels: ['queue'] },
    { name: 'queue_age_seconds', labels: ['queue'] },
  ]);
  fake.answers.set(Q_HTTP, [{ name: 'http_requests_total', labels: ['namespace', 'pod'] }]);
  fake.answers.set(Q_LAG, [{ name: 'consumer_lag', labels: ['topic'] }]);
}

function logCapture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

const NOW_MS = 1_700_000_000_000;

function setup(extra: Partial<SeriesDiscoveryOptions> = {}) {
  const fake = new FakeSeriesClient();
  const { log, lines } = logCapture();
  const clock = { ms: NOW_MS };
  const updates: DiscoveryResult[] = [];
  let resolverReads = 0;
  const discovery = new SeriesDiscovery({
    client: fake,
    rules: RULES,
    resolver: () => {
      resolverReads++;
      return ResourceMapper.wellKnown();
    },
    relistIntervalMs: 60_000,
    maxAgeMs: 20 * 60_000,
    now: () => clock.ms,
    log,
    onUpdate: (r) => updates.push(r),
    ...extra,
  });
  return { fake, discovery, lines, clock, updates, resolverReads: () => resolverReads };
}

const externalNames = (r: DiscoveryResult): string[] => r.external.map((e) => e.metric).sort();
const customNames = (r: DiscoveryResult): string[] => [...new Set(r.custom.map((c) => c.metric))].sort();

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('SeriesDiscovery', () => {
  it('is empty before the first relist', () => {
    const { discovery } = setup();
    assert.deepEqual(discovery.current(), { custom: [], external: [], problems: [], lastSuccess: null, perQuery: [] });
  });

  it('asks each distinct series query once, over [now - maxAge, now], and names the metrics of every rule', async () => {
    const { fake, discovery, updates, resolverReads } = setup();
    answerAll(fake);
    const result = await discovery.runOnce();
    assert.deepEqual(
      fake.calls.map((c) => [c.matchers, c.start, c.end]),
      [
        [[Q_DEPTH], NOW_MS / 1000 - 1200, NOW_MS / 1000],
        [[Q_HTTP], NOW_MS / 1000 - 1200, NOW_MS / 1000],
        [[Q_LAG], NOW_MS / 1000 - 1200, NOW_MS / 1000],
      ],
    );
    assert.deepEqual(externalNames(result), ['consumer_lag', 'ext_requests', 'queue_age_seconds', 'queue_depth']);
    assert.deepEqual(customNames(result), ['http_requests_per_second']);
    assert.deepEqual(result.lastSuccess, new Date(NOW_MS));
    assert.deepEqual(
      result.perQuery.map(({ durationMs: _d, ...rest }) => rest),
      [
        { query: Q_DEPTH, series: 2, ok: true, lastSuccess: new Date(NOW_MS) },
        { query: Q_HTTP, series: 1, ok: true, lastSuccess: new Date(NOW_MS) },
        { query: Q_LAG, series: 1, ok: true, lastSuccess: new Date(NOW_MS) },
      ],
    );
    assert.ok(result.perQuery.every((q) => q.durationMs >= 0));
    assert.equal(discovery.current(), result);
    assert.deepEqual(updates, [result]);
    assert.equal(resolverReads(), 1);
  });

  it('keeps the last good series of a query that fails, and only of that query', async () => {
    const { fake, discovery, clock, lines } = setup();
    answerAll(fake);
    await discovery.runOnce();

    clock.ms += 60_000;
    fake.failures.set(Q_HTTP, new ServiceUnavailableError('Prometheus at http://p failed: HTTP 502 (bad gateway)'));
    // Data that changed meanwhile is picked up for the queries that answer.
    fake.answers.set(Q_DEPTH, [{ name: 'queue_depth', labels: ['queue'] }]);
    const second = await discovery.runOnce();
    assert.deepEqual(externalNames(second), ['consumer_lag', 'ext_requests', 'queue_depth']);
    assert.deepEqual(customNames(second), ['http_requests_per_second']);
    assert.deepEqual(second.lastSuccess, new Date(NOW_MS + 60_000));
    const failed = second.perQuery.find((q) => q.query === Q_HTTP);
    assert.deepEqual(
      { ...failed, durationMs: 0 },
      {
        query: Q_HTTP,
        series: 1,
        ok: false,
        error: 'Prometheus at http://p failed: HTTP 502 (bad gateway)',
        durationMs: 0,
        lastSuccess: new Date(NOW_MS),
      },
    );

    const warning = lines.find((l) => l['seriesQuery'] === Q_HTTP);
    assert.ok(warning, 'a warning names the failed query');
    assert.equal(warning['level'], 40);
    assert.deepEqual(warning['rules'], ['rules.yaml rules[0]', 'rules.yaml externalRules[1]']);
    assert.equal(warning['err'], 'Prometheus at http://p failed: HTTP 502 (bad gateway)');
    assert.equal(warning['keptSeries'], 1);
    assert.match(String(warning['msg']), /keep the series of the last successful relist/);
  });

  it('serves nothing for a query that never answered, and everything else', async () => {
    const { fake, discovery, lines } = setup();
    answerAll(fake);
    fake.failures.set(Q_LAG, new Error('bad_data: parse error'));
    const result = await discovery.runOnce();
    assert.deepEqual(externalNames(result), ['ext_requests', 'queue_age_seconds', 'queue_depth']);
    assert.deepEqual(
      result.perQuery.map((q) => [q.ok, q.series, q.lastSuccess]),
      [
        [true, 2, new Date(NOW_MS)],
        [true, 1, new Date(NOW_MS)],
        [false, 0, null],
      ],
    );
    assert.ok(lines.some((l) => l['seriesQuery'] === Q_LAG && /serve no metrics until it succeeds/.test(String(l['msg']))));
    // Once it answers, its metrics appear.
    fake.failures.clear();
    assert.deepEqual(externalNames(await discovery.runOnce()), ['consumer_lag', 'ext_requests', 'queue_age_seconds', 'queue_depth']);
  });

  it('accepts an empty answer as empty for that query only', async () => {
    const { fake, discovery } = setup();
    answerAll(fake);
    await discovery.runOnce();
    fake.answers.set(Q_DEPTH, []);
    const result = await discovery.runOnce();
    assert.deepEqual(externalNames(result), ['consumer_lag', 'ext_requests']);
    assert.deepEqual(customNames(result), ['http_requests_per_second']);
    assert.deepEqual(result.perQuery[0], { ...result.perQuery[0], query: Q_DEPTH, series: 0, ok: true });
  });

  it('keeps the whole list through a Prometheus outage, and lastSuccess stays at the last good relist', async () => {
    const { fake, discovery, clock, lines } = setup();
    answerAll(fake);
    const first = await discovery.runOnce();
    clock.ms += 600_000;
    for (const q of [Q_DEPTH, Q_HTTP, Q_LAG]) fake.failures.set(q, new ServiceUnavailableError('Prometheus is unreachable: ECONNREFUSED'));
    const during = await discovery.runOnce();
    assert.deepEqual(externalNames(during), externalNames(first));
    assert.deepEqual(customNames(during), customNames(first));
    assert.deepEqual(during.lastSuccess, new Date(NOW_MS));
    assert.ok(during.perQuery.every((q) => !q.ok && q.lastSuccess?.getTime() === NOW_MS));
    const summary = lines.filter((l) => l['msg'] === 'series relist finished with failures').at(-1);
    assert.equal(summary?.['failed'], 3);
    assert.equal(summary?.['queries'], 3);
  });

  it('has no lastSuccess while nothing ever answered', async () => {
    const { fake, discovery } = setup();
    for (const q of [Q_DEPTH, Q_HTTP, Q_LAG]) fake.failures.set(q, new Error('down'));
    const result = await discovery.runOnce();
    assert.equal(result.lastSuccess, null);
    assert.deepEqual(result.external, []);
    assert.deepEqual(result.custom, []);
  });

  it('counts a relist without rules as a success', async () => {
    const { fake, discovery } = setup({ rules: [] });
    const result = await discovery.runOnce();
    assert.deepEqual(fake.calls, []);
    assert.deepEqual(result.lastSuccess, new Date(NOW_MS));
  });

  it('runs at most `concurrency` series queries at once, and all of them', async () => {
    const rules = Array.from({ length: 9 }, (_, i) => seriesRule('external', `r[${i}]`, `{__name__="m${i}"}`, { namespaced: false }));
    const { fake, discovery } = setup({ rules });
    for (let i = 0; i < 9; i++) fake.answers.set(`{__name__="m${i}"}`, [{ name: `m${i}`, labels: [] }]);
    fake.hold = true;
    const running = discovery.runOnce();
    await settle();
    assert.equal(fake.held, 4, 'four calls start at once (the default)');
    fake.releaseAll();
    const result = await running;
    assert.equal(fake.calls.length, 9);
    assert.equal(fake.maxInflight, 4);
    assert.deepEqual(externalNames(result), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);

    const two = setup({ rules, concurrency: 2 });
    two.fake.hold = true;
    const second = two.discovery.runOnce();
    await settle();
    assert.equal(two.fake.held, 2);
    two.fake.releaseAll();
    await second;
    assert.equal(two.fake.calls.length, 9);
    assert.equal(two.fake.maxInflight, 2);
  });

  it('shares one relist between overlapping runOnce calls', async () => {
    const { fake, discovery } = setup();
    answerAll(fake);
    fake.hold = true;
    const a = discovery.runOnce();
    const b = discovery.runOnce();
    await settle();
    fake.releaseAll();
    assert.equal(await a, await b);
    assert.equal(fake.calls.length, 3);
    await discovery.runOnce();
    assert.equal(fake.calls.length, 6, 'a later call relists again');
  });

  it('logs one line per relist with counts, and naming problems only when they change', async () => {
    const rules = [
      ...RULES,
      // Two captures and no `as`: a naming problem for discoverMetrics to report.
      seriesRule('custom', 'rules.yaml rules[1]', Q_HTTP, { matches: '^(http)_(.*)$', as: '${1}_${3}', overrides: { nope: 'nosuchresource' } }),
    ];
    const { fake, discovery, lines } = setup({ rules });
    answerAll(fake);
    const first = await discovery.runOnce();
    await discovery.runOnce();
    const summaries = lines.filter((l) => l['msg'] === 'series relist');
    assert.equal(summaries.length, 2);
    const { ms, ...counts } = summaries[0]!;
    assert.equal(typeof ms, 'number');
    assert.deepEqual(
      { queries: counts['queries'], failed: counts['failed'], series: counts['series'], externalMetrics: counts['externalMetrics'] },
      { queries: 3, failed: 0, series: 4, externalMetrics: 4 },
    );
    assert.equal(counts['customMetrics'], first.custom.length);
    assert.equal(counts['problems'], first.problems.length);
    assert.ok(first.problems.some((p) => p.includes('rules.yaml rules[1]')), JSON.stringify(first.problems));
    const problemLines = lines.filter((l) => l['msg'] === 'series discovery problem');
    assert.equal(problemLines.length, first.problems.length, 'problems are logged once, not on every relist');
  });

  it('reads the resolver on every relist', async () => {
    const { fake, discovery, resolverReads } = setup();
    answerAll(fake);
    await discovery.runOnce();
    await discovery.runOnce();
    assert.equal(resolverReads(), 2);
  });

  it('survives an onUpdate handler that throws', async () => {
    const { fake, discovery, lines } = setup({
      onUpdate: () => {
        throw new Error('boom');
      },
    });
    answerAll(fake);
    const result = await discovery.runOnce();
    assert.equal(result.external.length, 4);
    assert.ok(lines.some((l) => l['msg'] === 'the series discovery update handler failed'));
  });

  it('start() relists at once and then every interval; stop() ends it', async () => {
    // 200 ms between relists: long enough that a loaded machine still sees the first relist alone.
    const { fake, discovery, updates } = setup({ relistIntervalMs: 200 });
    answerAll(fake);
    discovery.start();
    discovery.start(); // a second start is a no-op, not a second loop
    await settle();
    assert.equal(fake.calls.length, 3, 'the first relist starts immediately');
    const deadline = Date.now() + 5_000;
    while (updates.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    discovery.stop();
    const calls = fake.calls.length;
    assert.ok(updates.length >= 3, `relisted ${updates.length} times`);
    assert.equal(calls % 3, 0, 'a relist asks all three queries; two loops would not interleave like this');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fake.calls.length, calls, 'no relist after stop()');
  });

  it('stop() abandons a relist in flight without replacing the last result', async () => {
    const { fake, discovery, updates, lines } = setup();
    answerAll(fake);
    discovery.start();
    await settle();
    const before = discovery.current();
    fake.answers.clear();
    fake.hold = true;
    const again = discovery.runOnce();
    await settle();
    assert.equal(fake.held, 3);
    discovery.stop();
    assert.ok(fake.calls.slice(-3).every((c) => c.signal?.aborted), 'the calls in flight are aborted');
    assert.equal(await again, before);
    assert.equal(discovery.current(), before);
    assert.equal(updates.length, 1);
    assert.ok(!lines.some((l) => l['level'] === 40), 'an abort we caused is not a warning');
  });

  it('does not keep the process alive', () => {
    // A child process with a relist interval of an hour must still exit as soon as its own work is done.
    const script = `
      import { SeriesDiscovery } from ${JSON.stringify(new URL('./series-discovery.ts', import.meta.url).href)};
      import { pino } from 'pino';
      const d = new SeriesDiscovery({
        client: { series: async () => [] }, rules: [], resolver: () => ({ resolve: () => null }),
        relistIntervalMs: 3_600_000, maxAgeMs: 60_000, log: pino({ level: 'silent' }),
        onUpdate: () => console.log('updated'),
      });
      d.start();
    `;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'updated');
    assert.ok(Date.now() - started < 15_000);
  });
});
