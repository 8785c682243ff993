const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/** Seconds in a Prometheus duration such as `1m`, `90s` or `1h30m`; null when it is not one. */
export function parsePrometheusDuration(text: string): number | null {
  if (!/^([0-9]+(ms|s|m|h|d|w|y))+$/.test(text)) return null;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+)(ms|s|m|h|d|w|y)/g)) total += Number(amount) * UNIT_SECONDS[unit!]!;
  return total;
}
