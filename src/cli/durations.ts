const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a Go duration (`10m`, `1m30s`, `500ms`, `0`), as Kubernetes components take them. */
export function parseGoDuration(text: string): number {
  if (text === '0') return 0;
  if (!/^([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+$/.test(text)) {
    throw new Error(`"${text}" is not a duration: use a number with a unit, e.g. 30s, 5m, 1h30m, 500ms`);
  }
  let total = 0;
  for (const [, n, unit] of text.matchAll(/([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/g)) total += Number(n) * UNITS[unit!]!;
  return total;
}
