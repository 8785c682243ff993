import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatBinaryQuantity,
  formatDecimalQuantity,
  formatDecimalQuantityExact,
  milliValue,
  MAX_QUANTITY_MAGNITUDE,
  QuantityRangeError,
} from './quantity.ts';

const FC_PARAMS = { seed: 20261125, numRuns: 2000 } as const;

const float = new Float64Array(1);
const bits = new BigInt64Array(float.buffer);
/** The next double towards +Infinity (for non-negative finite input). */
function nextUp(v: number): number {
  float[0] = v;
  bits[0]! += 1n;
  return float[0]!;
}
function nextDown(v: number): number {
  if (v === 0) return 0;
  float[0] = v;
  bits[0]! -= 1n;
  return float[0]!;
}

const DECIMAL_EXPONENTS: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** Independent reader of the canonical grammar only, in nano units, so the property test cannot share bugs. */
function parseCanonicalNanos(quantity: string): bigint {
  const match = /^(-?)([0-9]+)([numkMGTPE]?)$/.exec(quantity);
  assert.ok(match, `not canonical: ${quantity}`);
  const [, sign = '', digits = '', suffix = ''] = match;
  const exponent = (DECIMAL_EXPONENTS[suffix] ?? NaN) + 9;
  const nanos = BigInt(digits) * 10n ** BigInt(exponent);
  return sign === '-' ? -nanos : nanos;
}

/**
 * Oracle for "the input rounded to nano": the shortest decimal of the double as an exact fraction num/den, then
 * round(x) = floor(x + 1/2) on the magnitude. Derived from toExponential() so it does not reuse String()'s parse.
 */
function expectedNanos(value: number): bigint {
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(value.toExponential());
  assert.ok(match);
  const [, sign = '', lead = '', rest = '', exp = '0'] = match;
  const scale = Number(exp) - rest.length + 9;
  let num = BigInt(lead + rest);
  let den = 1n;
  if (scale >= 0) num *= 10n ** BigInt(scale);
  else den = 10n ** BigInt(-scale);
  const rounded = (2n * num + den) / (2n * den);
  return sign === '-' ? -rounded : rounded;
}

describe('formatDecimalQuantity', () => {
  const table: Array<[number, string]> = [
    [1.5, '1500m'],
    [0.5, '500m'],
    [2, '2'],
    [10, '10'],
    [100, '100'],
    [1000, '1k'],
    [1500, '1500'],
    [2000, '2k'],
    [12345.678, '12345678m'],
    [0.001, '1m'],
    [0.1, '100m'],
    [1e6, '1M'],
    [1.08, '1080m'],
    [80e-9, '80n'],
    [1e-9, '1n'],
    [1e-7, '100n'],
    [-0.25, '-250m'],
    [1234000, '1234k'],
    [2.5e9, '2500M'],
    [0.0015, '1500u'],
    [1e15, '1P'],
    [0, '0'],
    [-0, '0'],
    [0.1 + 0.2, '300m'],
    [1.005, '1005m'],
    [1.5e-9, '2n'],
    [2.5e-9, '3n'],
    [-2.5e-9, '-3n'],
    [9.2e15, '9200T'],
    [-9.2e15, '-9200T'],
    [123456789.123456789, '123456789123456790n'],
    [1 / 3, '333333333n'],
    [2 / 3, '666666667n'],
  ];
  for (const [value, expected] of table) {
    it(`${String(value)} -> ${expected}`, () => {
      assert.equal(formatDecimalQuantity(value), expected);
    });
  }

  it('rounds magnitudes below half a nano to "0", half a nano away from zero', () => {
    assert.equal(formatDecimalQuantity(4.9e-10), '0');
    assert.equal(formatDecimalQuantity(-4.9e-10), '0');
    assert.equal(formatDecimalQuantity(1e-12), '0');
    assert.equal(formatDecimalQuantity(Number.MIN_VALUE), '0');
    assert.equal(formatDecimalQuantity(5e-10), '1n');
    assert.equal(formatDecimalQuantity(-5e-10), '-1n');
  });

  it('rounds a value just below a million up to "1M", and "-1M" below minus a million', () => {
    assert.equal(formatDecimalQuantity(999999.9999999999), '1M');
    assert.equal(formatDecimalQuantity(-999999.9999999998), '-1M');
  });

  it('rejects values with no representable quantity', () => {
    for (const bad of [NaN, Infinity, -Infinity, 9.2e15 + 2, -9.3e15, 1e21, Number.MAX_VALUE]) {
      assert.throws(() => formatDecimalQuantity(bad), QuantityRangeError, String(bad));
    }
    assert.equal(MAX_QUANTITY_MAGNITUDE, 9.2e15);
  });

  it('QuantityRangeError carries the offending value and the reason', () => {
    const error = (() => {
      try {
        formatDecimalQuantity(1e16);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(error instanceof QuantityRangeError);
    assert.ok(error instanceof RangeError);
    assert.equal(error.value, 1e16);
    assert.match(error.message, /MilliValue/);
  });

  it('property: output is canonical and parses back to the input rounded to nano', () => {
    const values = fc.oneof(
      fc.double({ min: -MAX_QUANTITY_MAGNITUDE, max: MAX_QUANTITY_MAGNITUDE, noNaN: true }),
      fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      fc.double({ min: -1e-6, max: 1e-6, noNaN: true }),
      fc.integer({ min: -1e9, max: 1e9 }),
      // exact half-nano ties, which random doubles almost never hit
      fc.integer({ min: -1e6, max: 1e6 }).map((k) => Number(`${k}5e-10`)),
    );
    fc.assert(
      fc.property(values, (value) => {
        const text = formatDecimalQuantity(value);
        assert.match(text, /^-?[0-9]+[numkMGTPE]?$/);
        if (text !== '0') assert.match(text, /^-?[1-9]/);
        const [, digits = '', suffix = ''] = /^-?([0-9]+)(\D?)$/.exec(text) ?? [];
        assert.ok(!digits.endsWith('000') || suffix === 'E', `zeros could move to a larger suffix: ${text}`);
        assert.equal(parseCanonicalNanos(text), expectedNanos(value));
      }),
      FC_PARAMS,
    );
  });

  it('property: the fast path for small values answers exactly as the BigInt path', () => {
    const values = fc.oneof(
      fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      fc.double({ min: -2, max: 2, noNaN: true }),
      fc.integer({ min: -999_999, max: 999_999 }).map((k) => k / 1000),
      fc.integer({ min: -999_999_999, max: 999_999_999 }).map((k) => Number(`${k}5e-10`)),
      fc.constantFrom(999_999.9999999995, 999_999.999999999, 0.0000005, 0.000001, 1e-6, 123456.1234565, 1.5e-9, 2.5e-9, 0.1 + 0.2),
      // Half-nano ties (as written, before binary rounding) across the whole fast range.
      fc.tuple(fc.integer({ min: 0, max: 999_999 }), fc.integer({ min: 0, max: 999_999_999 }), fc.boolean()).map(
        ([whole, nanos, negative]) => Number(`${negative ? '-' : ''}${whole}.${String(nanos).padStart(9, '0')}5`),
      ),
      // Values a few units in the last place away from such ties.
      fc.tuple(fc.integer({ min: 0, max: 999_999 }), fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: -4, max: 4 })).map(([whole, nanos, ulps]) => {
        let v = Number(`${whole}.${String(nanos).padStart(9, '0')}5`);
        for (let i = 0; i < Math.abs(ulps); i++) v = ulps > 0 ? nextUp(v) : nextDown(v);
        return v;
      }),
    );
    fc.assert(
      fc.property(values, (value) => assert.equal(formatDecimalQuantity(value), formatDecimalQuantityExact(value), String(value))),
      FC_PARAMS,
    );
  });

  it('property: k × 10^e round-trips exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: -999_999, max: 999_999 }), fc.integer({ min: -9, max: 9 }), (k, e) => {
        const text = formatDecimalQuantity(Number(`${k}e${e}`));
        assert.equal(parseCanonicalNanos(text), BigInt(k) * 10n ** BigInt(e + 9));
      }),
      { ...FC_PARAMS, numRuns: 500 },
    );
  });
});

describe('formatBinaryQuantity', () => {
  const table: Array<[number, string]> = [
    [0, '0'],
    [512, '512'],
    [1023, '1023'],
    [1024, '1Ki'],
    [1536, '1536'],
    [2048, '2Ki'],
    [1536 * 1024, '1536Ki'],
    [1536 * 1024 ** 2, '1536Mi'],
    [1.5 * 1024 ** 3, '1536Mi'],
    [1024 ** 3, '1Gi'],
    [3 * 1024 ** 4, '3Ti'],
    [8 * 1024 ** 5, '8Pi'],
    [1025 * 1024, '1025Ki'],
    [2000, '2k'],
    [1024.5, '1024500m'],
    [0.5, '500m'],
    [-1024, '-1024'],
  ];
  for (const [value, expected] of table) {
    it(`${String(value)} -> ${expected}`, () => {
      assert.equal(formatBinaryQuantity(value), expected);
    });
  }

  it('rejects what formatDecimalQuantity rejects', () => {
    for (const bad of [NaN, Infinity, 1024 ** 6]) {
      assert.throws(() => formatBinaryQuantity(bad), QuantityRangeError);
    }
  });

  it('property: binary output keeps the exact value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 20 }), fc.integer({ min: 1, max: 3 }), (n, k) => {
        const bytes = n * 1024 ** k;
        const text = formatBinaryQuantity(bytes);
        assert.match(text, /^[1-9][0-9]*(Ki|Mi|Gi|Ti)$/);
        assert.equal(milliValue(text), BigInt(bytes) * 1000n);
        assert.notEqual(BigInt(text.replace(/\D+$/, '')) % 1024n, 0n);
      }),
      { ...FC_PARAMS, numRuns: 500 },
    );
  });
});

describe('milliValue', () => {
  const table: Array<[string, bigint]> = [
    ['1n', 1n],
    ['1500u', 2n],
    ['100m', 100n],
    ['1500m', 1500n],
    ['2', 2000n],
    ['1k', 1_000_000n],
    ['1Ki', 1_024_000n],
    ['1536Mi', 1536n * 1024n ** 2n * 1000n],
    ['0', 0n],
    ['-250m', -250n],
    ['-1500u', -2n],
    ['1.5', 1500n],
    ['0.0001', 1n],
    ['9200T', 9_200_000_000_000_000_000n],
  ];
  for (const [text, expected] of table) {
    it(`${text} -> ${expected}`, () => {
      assert.equal(milliValue(text), expected);
    });
  }

  it('rejects forms it does not read', () => {
    for (const bad of ['', 'abc', '1e3', '1 k', '1KiB', 'NaN']) {
      assert.throws(() => milliValue(bad), SyntaxError, bad);
    }
  });

  it('is what the HPA would read from formatDecimalQuantity output', () => {
    assert.equal(milliValue(formatDecimalQuantity(0.0015)), 2n);
    assert.equal(milliValue(formatDecimalQuantity(80e-9)), 1n);
    assert.equal(milliValue(formatDecimalQuantity(12345.678)), 12_345_678n);
  });
});
