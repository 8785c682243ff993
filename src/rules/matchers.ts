/**
 * Label selectors and object names turned into PromQL label matchers. Names are checked and every value is
 * escaped, so request input can only ever become a literal inside a string (unlike prometheus-adapter, whose
 * unescaped `in` values are a regex passthrough).
 */
import { assertLabelName, InvalidLabelNameError, InvalidLabelValueError, promqlString, regexQuote } from './escape.ts';
import type { Requirement, Selector } from './selector.ts';

/** A requirement with no PromQL counterpart (`k>1`, `k<1`). */
export class UnsupportedOperatorError extends Error {
  override name = 'UnsupportedOperatorError';
  readonly key: string;
  readonly operator: 'gt' | 'lt';

  constructor(key: string, operator: 'gt' | 'lt') {
    super(`operator ${operator} is not supported by Prometheus label matching`);
    this.key = key;
    this.operator = operator;
  }
}

function assertSelectorKey(key: string): void {
  try {
    assertLabelName(key);
  } catch (error) {
    if (error instanceof InvalidLabelNameError) {
      throw new InvalidLabelNameError(
        key,
        `label selector key ${JSON.stringify(key)} cannot be matched in Prometheus: ${error.message}`,
      );
    }
    throw error;
  }
  // `__name__` and friends are Prometheus' own; a request must not steer which metric is read.
  if (key.startsWith('__')) {
    throw new InvalidLabelNameError(
      key,
      `label selector key ${JSON.stringify(key)} cannot be matched in Prometheus: ` +
        'names starting with "__" are reserved',
    );
  }
}

/** `a|b|c` as one RE2 alternation of literals, each escaped, duplicates dropped, first occurrence order kept. */
function literalAlternation(values: readonly string[]): string {
  return [...new Set(values)].map(regexQuote).join('|');
}

/**
 * One matcher for one requirement.
 *
 * Where Kubernetes and Prometheus differ: Prometheus stores no empty-valued labels, so `""` equals "absent".
 * `k=` (and `k in (…)` containing `""`) therefore also select series without `k`. No matcher can do better.
 */
export function requirementToMatcher(req: Requirement): string {
  assertSelectorKey(req.key);
  const { key, values } = req;
  switch (req.operator) {
    case 'Equals':
      return `${key}=${promqlString(values[0] ?? '')}`;
    case 'NotEquals':
      return `${key}!=${promqlString(values[0] ?? '')}`;
    case 'In':
    case 'NotIn':
      // Parsed selectors always have a value here; an empty set would become `=~""`, the opposite of "nothing".
      if (values.length === 0) {
        throw new InvalidLabelValueError(`label selector requirement on ${JSON.stringify(key)} has an empty value set`);
      }
      return `${key}${req.operator === 'In' ? '=~' : '!~'}${promqlString(literalAlternation(values))}`;
    case 'Exists':
      return `${key}!=""`;
    case 'DoesNotExist':
      return `${key}=""`;
    case 'GreaterThan':
      throw new UnsupportedOperatorError(key, 'gt');
    case 'LessThan':
      throw new UnsupportedOperatorError(key, 'lt');
  }
}

/** One matcher per requirement, in selector order; a fresh array the caller may extend. */
export function selectorToMatchers(sel: Selector): string[] {
  return sel.map(requirementToMatcher);
}

/**
 * A matcher selecting series whose `label` is one of `names` (duplicates dropped, order kept): `label="n"` for
 * one, `label=~"a|b"` for several. Null for none: the caller must answer "no objects" without querying, because
 * an empty alternation would select the series that lack the label. An empty name is rejected for the same
 * reason (Kubernetes object names are never empty).
 */
export function namesToMatcher(label: string, names: readonly string[]): string | null {
  assertLabelName(label);
  const unique = [...new Set(names)];
  if (unique.length === 0) return null;
  if (unique.includes('')) {
    throw new InvalidLabelValueError(
      `empty name for label ${JSON.stringify(label)}: it would match series without the label`,
    );
  }
  if (unique.length === 1) return `${label}=${promqlString(unique[0]!)}`;
  return `${label}=~${promqlString(literalAlternation(unique))}`;
}
