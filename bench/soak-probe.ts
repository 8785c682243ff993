/**
 * Preloaded into the adapter process by bench/soak.ts (`node --import`): the adapter exposes no event-loop or heap
 * metrics, and only code inside its process can measure them. Appends one JSON line per interval to the file named
 * by PMA_SOAK_PROBE_FILE; does nothing without it. Synchronous appends of ~150 bytes every few seconds are cheap
 * enough not to show in the numbers they report.
 */
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

const file = process.env['PMA_SOAK_PROBE_FILE'];
const intervalMs = Number(process.env['PMA_SOAK_PROBE_INTERVAL_MS'] ?? 10_000);

if (file !== undefined && file !== '') {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const timer = setInterval(() => {
    const mem = process.memoryUsage();
    const line = {
      t: Date.now(),
      // The histogram is in nanoseconds and includes the 10 ms sampling resolution as a floor of sorts.
      lagP50Ms: delay.percentile(50) / 1e6,
      lagP99Ms: delay.percentile(99) / 1e6,
      lagMaxMs: delay.max / 1e6,
      heapUsedMb: mem.heapUsed / 2 ** 20,
      // Committed V8 heap: the part of RSS that garbage collection can shrink again; heapUsed alone saw-tooths.
      heapTotalMb: mem.heapTotal / 2 ** 20,
      externalMb: mem.external / 2 ** 20,
      // What Node made of the memory limit it runs under (a cgroup's, or the machine's): the heap's ceiling.
      heapLimitMb: getHeapStatistics().heap_size_limit / 2 ** 20,
    };
    delay.reset();
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // the benchmark removed its directory while shutting down; nothing left to report to
    }
  }, intervalMs);
  // Must never be what keeps the adapter alive, or a graceful shutdown would hang.
  timer.unref();
}
