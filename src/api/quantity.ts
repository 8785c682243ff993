// Canonical Kubernetes resource.Quantity strings from JS numbers.
//
// The HPA parses these with apimachinery's ParseQuantity and reads MilliValue(), so the output must be exactly what
// a Go server would emit: no decimal point, the exponent lowered to a multiple of 3, trailing zeros folded into the
// suffix. All digit arithmetic is BigInt because doubles lose integer precision above 2^53 and v*1000 is already
// inexact above ~9e12.

/**
 * Largest magnitude we format. MilliValue() is an int64 of thousandths, valid only up to
 * MaxMilliValue = floor((2^63-1)/1000) ≈ 9.22e15; beyond that the HPA silently reads a wrapped value.
 */
export const MAX_QUANTITY_MAGNITUDE = 9.2e15;

export class QuantityRangeError extends RangeError {
  readonly value: number;

  constructor(value: number, reason: string) {
    super(`cannot express ${String(value)} as a Kubernetes quantity: ${reason}`);
    this.name = 'QuantityRangeError';
    this.value = value;
  }
}

const DECIMAL_SUFFIXES: ReadonlyMap<number, string> = new Map([
  [-9, 'n'],
  [-6, 'u'],
  [-3, 'm'],
  [0, ''],
  [3, 'k'],
  [6, 'M'],
  [9, 'G'],
  [12, 'T'],
  [15, 'P'],
  [18, 'E'],
]);

const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;

const NANO_EXPONENT = -9;

function pow10(exponent: number): bigint {
  return 10n ** BigInt(exponent);
}

function assertRepresentable(value: number): void {
  if (Number.isNaN(value)) throw new QuantityRangeError(value, 'NaN has no quantity form');
  if (!Number.isFinite(value)) throw new QuantityRangeError(value, 'infinite values have no quantity form');
  if (Math.abs(value) > MAX_QUANTITY_MAGNITUDE) {
    throw new QuantityRangeError(
      value,
      `magnitude exceeds ${MAX_QUANTITY_MAGNITUDE}; the HPA's MilliValue() overflows int64 beyond ~9.22e15`,
    );
  }
}

/**
 * |value| in nano units, rounded half away from zero. Starts from the shortest round-trip decimal (String(v)) rather
 * than the exact binary value, so 1.005 means 1.005 (not 1.00499999999999989...) and 0.1+0.2 rounds to 300m.
 */
function magnitudeInNanos(value: number): bigint {
  const text = String(Math.abs(value));
  const match = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(text);
  if (match === null) throw new QuantityRangeError(value, `unexpected number text "${text}"`);
  const integerDigits = match[1] ?? '';
  const fractionDigits = match[2] ?? '';
  const mantissa = BigInt(integerDigits + fractionDigits);
  const exponent = Number(match[3] ?? '0') - fractionDigits.length;
  const shift = exponent - NANO_EXPONENT;
  if (shift >= 0) return mantissa * pow10(shift);
  const divisor = pow10(-shift);
  const quotient = mantissa / divisor;
  return 2n * (mantissa % divisor) >= divisor ? quotient + 1n : quotient;
}

function canonicalDecimal(negative: boolean, nanos: bigint): string {
  if (nanos === 0n) return '0';
  let mantissa = nanos;
  let exponent = NANO_EXPONENT;
  while (mantissa % 10n === 0n && exponent < 18) {
    mantissa /= 10n;
    exponent += 1;
  }
  const excess = ((exponent % 3) + 3) % 3;
  mantissa *= pow10(excess);
  exponent -= excess;
  const suffix = DECIMAL_SUFFIXES.get(exponent);
  if (suffix === undefined) throw new Error(`no DecimalSI suffix for exponent ${exponent}`);
  return `${negative ? '-' : ''}${mantissa}${suffix}`;
}

/**
 * Canonical DecimalSI form of `value`, rounded half away from zero to 1n.
 * Throws QuantityRangeError for NaN, ±Infinity and |value| > 9.2e15.
 */
export function formatDecimalQuantity(value: number): string {
  assertRepresentable(value);
  return smallDecimal(value) ?? canonicalDecimal(value < 0, magnitudeInNanos(value));
}

/** The BigInt path alone, for tests that hold the fast path to it. */
export function formatDecimalQuantityExact(value: number): string {
  assertRepresentable(value);
  return canonicalDecimal(value < 0, magnitudeInNanos(value));
}

/**
 * The BigInt path's answer for |value| < 1e6, in double arithmetic: the nano count is below 1e15 < 2^53, so it is
 * exact as a double, and |value| x 1e9 is within about one unit in the last place of the decimal the BigInt path
 * starts from. Rounding can then only differ when that product lies within a few units of a half-nano tie; those
 * values (and larger ones) take the BigInt path. Printing digits and BigInt arithmetic cost ~1.3 us a value, most
 * of an uncached 1,000-pod answer's encoding.
 */
function smallDecimal(value: number): string | null {
  const magnitude = Math.abs(value);
  if (!(magnitude < 1e6)) return null;
  const scaled = magnitude * 1e9;
  let mantissa = Math.floor(scaled);
  const fraction = scaled - mantissa;
  if (Math.abs(fraction - 0.5) <= Math.max(scaled, 1) * 2 ** -48) return null;
  if (fraction > 0.5) mantissa += 1;
  if (mantissa === 0) return '0';
  // The exponent must stay a multiple of 3 (a suffix), so trailing zeros come off three at a time; dividing by a
  // factor of an integer below 2^53 is exact.
  let suffix = 0;
  while (mantissa % 1000 === 0) {
    mantissa /= 1000;
    suffix++;
  }
  return `${value < 0 ? '-' : ''}${mantissa}${DECIMAL_SUFFIXES.get(NANO_EXPONENT + 3 * suffix)!}`;
}

/**
 * Memory-style quantity: exact multiples of 1024 (≥ 1Ki) use the largest binary suffix that keeps the number an
 * integer, as apimachinery prints BinarySI; everything else (fractions, negatives, < 1024, non-multiples) falls back
 * to DecimalSI, which is also what apimachinery does for those values.
 */
export function formatBinaryQuantity(bytes: number): string {
  assertRepresentable(bytes);
  if (!Number.isInteger(bytes) || bytes < 1024) return formatDecimalQuantity(bytes);
  let mantissa = BigInt(bytes);
  let power = 0;
  while (mantissa % 1024n === 0n && power < BINARY_SUFFIXES.length - 1) {
    mantissa /= 1024n;
    power += 1;
  }
  if (power === 0) return formatDecimalQuantity(bytes);
  return `${mantissa}${BINARY_SUFFIXES[power]}`;
}

const QUANTITY_PATTERN = /^([+-]?)(\d+)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/;

/**
 * What the HPA reads from a quantity: MilliValue(), i.e. the value in thousandths rounded up in magnitude (Go's
 * int64Amount path rounds away from zero, and ParseQuantity picks that path for every value this module emits).
 * Accepts plain decimal numbers with DecimalSI or BinarySI suffixes; exponent forms (`1e3`) are rejected.
 */
export function milliValue(quantity: string): bigint {
  const match = QUANTITY_PATTERN.exec(quantity);
  if (match === null) throw new SyntaxError(`unsupported quantity "${quantity}"`);
  const sign = match[1] === '-' ? -1n : 1n;
  const fractionDigits = match[3] ?? '';
  let numerator = BigInt((match[2] ?? '') + fractionDigits) * 1000n;
  let denominator = pow10(fractionDigits.length);
  const suffix = match[4] ?? '';
  const binaryPower = BINARY_SUFFIXES.indexOf(suffix as (typeof BINARY_SUFFIXES)[number]);
  if (suffix !== '' && binaryPower > 0) {
    numerator *= 1024n ** BigInt(binaryPower);
  } else {
    const exponent = [...DECIMAL_SUFFIXES].find(([, s]) => s === suffix)?.[0] ?? 0;
    if (exponent >= 0) numerator *= pow10(exponent);
    else denominator *= pow10(-exponent);
  }
  const quotient = numerator / denominator;
  const magnitude = numerator % denominator === 0n ? quotient : quotient + 1n;
  return sign * magnitude;
}
