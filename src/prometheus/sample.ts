export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  /** NaN and ±Infinity are kept as such; what they mean for an answer is the caller's policy. */
  readonly value: number;
  /** Unix seconds, millisecond precision: the evaluation time Prometheus reports for the sample. */
  readonly timestamp: number;
}

/** Prometheus writes special values as strings that Number() does not read. */
export function parseSampleValue(text: string): number {
  switch (text) {
    case 'NaN':
      return Number.NaN;
    case '+Inf':
    case 'Inf':
      return Number.POSITIVE_INFINITY;
    case '-Inf':
      return Number.NEGATIVE_INFINITY;
    default:
      return Number(text);
  }
}

/** One element of a vector answer's `result` as JSON.parse made it. */
export function sampleFromJson(entry: unknown): Sample {
  const e = (entry ?? {}) as { metric?: Record<string, string>; value?: [number, string] };
  const [t, v] = e.value ?? [Number.NaN, 'NaN'];
  return { labels: e.metric ?? {}, value: parseSampleValue(v), timestamp: t };
}
