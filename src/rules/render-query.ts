import type { MetricRule } from '../config/model.ts';
import { namesToMatcher, selectorToMatchers, UnsupportedOperatorError } from './matchers.ts';
import { InvalidLabelNameError, InvalidLabelValueError } from './escape.ts';
import type { Selector } from './selector.ts';
import { BadRequestError, InternalError } from '../errors.ts';

/** Names come from the request path or the object cache; one that cannot be a label value is the caller's to fix. */
function objectMatcher(label: string, names: readonly string[]): string | null {
  try {
    return namesToMatcher(label, names);
  } catch (err) {
    if (err instanceof InvalidLabelValueError || err instanceof InvalidLabelNameError) throw new BadRequestError(err.message);
    throw err;
  }
}

/** What one query must select, in the terms of prometheus-adapter's template fields. */
export interface QueryTarget {
  /** Namespace matcher value; null for root-scoped objects. */
  readonly namespace: string | null;
  /** Object names to match; null leaves the object label unconstrained (namespace-wide query). */
  readonly names: readonly string[] | null;
  readonly metricSelector: Selector;
}

/**
 * Renders a rule's PromQL for one request. Every value from the request is escaped by the matcher
 * helpers, so the only structure in the query is the rule author's.
 * `.LabelMatchers` order follows prometheus-adapter: metric selector (by key), namespace, object.
 */
export function renderRuleQuery(rule: MetricRule, target: QueryTarget): string {
  let matchers: string[];
  try {
    matchers = selectorToMatchers(target.metricSelector);
  } catch (err) {
    // The metric selector comes from the request: what Prometheus cannot express is the caller's to fix.
    if (err instanceof UnsupportedOperatorError || err instanceof InvalidLabelNameError || err instanceof InvalidLabelValueError) {
      throw new BadRequestError(`invalid metricLabelSelector: ${err.message}`);
    }
    throw err;
  }
  const valuesByName: Record<string, string> = {};
  if (target.namespace !== null) {
    if (!rule.namespaceLabel) {
      throw new InternalError(`${rule.origin}: no Prometheus label maps to namespaces; add a resources override for the namespace label`);
    }
    matchers.push(objectMatcher(rule.namespaceLabel, [target.namespace])!);
    valuesByName[rule.namespaceLabel] = target.namespace;
  }
  if (target.names !== null) {
    const matcher = objectMatcher(rule.objectLabel, target.names);
    if (matcher === null) throw new InternalError(`${rule.origin}: no object names to query`);
    matchers.push(matcher);
    valuesByName[rule.objectLabel] = target.names.join('|');
  }
  // A root-scoped, namespace-wide query (nodes/*) has no matcher of its own; templates that append
  // matchers after <<.LabelMatchers>> (`{<<.LabelMatchers>>,container!=""}`) would then start with a
  // comma. A matcher every stored series satisfies (labels starting with __ never reach the TSDB, and
  // __name__ may not be set twice) keeps them valid without changing what they select.
  if (matchers.length === 0) matchers.push('__unused__=""');
  const query = rule.query.render({
    Series: rule.series,
    LabelMatchers: matchers.join(','),
    LabelValuesByName: valuesByName,
    GroupBy: rule.objectLabel,
    GroupBySlice: [rule.objectLabel],
    Window: rule.window?.text ?? '',
  });
  if (query.trim() === '') throw new InternalError(`${rule.origin}: the query template rendered an empty query`);
  return query;
}
