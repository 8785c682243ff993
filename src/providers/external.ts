import type { Logger } from 'pino';
import type { ExternalMetricRule } from '../config/model.ts';
import { AdapterError, BadRequestError, InternalError, NotFoundError } from '../errors.ts';
import type { QueryEngine } from '../prometheus/query-engine.ts';
import { InvalidLabelNameError, InvalidLabelValueError } from '../rules/escape.ts';
import { namesToMatcher, selectorToMatchers, UnsupportedOperatorError } from '../rules/matchers.ts';
import { selectorToString, type Selector } from '../rules/selector.ts';
import type { ExternalMetricValue, ExternalMetricsProvider } from './types.ts';

export interface ExternalProviderDeps {
  /** Read on every request, so a relist takes effect at once. */
  readonly rules: () => readonly ExternalMetricRule[];
  readonly engine: QueryEngine;
  readonly log: Logger;
}

/**
 * The PromQL for one external read, as prometheus-adapter builds it: `.LabelMatchers` holds the label
 * selector's requirements by key, then the namespace matcher when the rule is namespaced; external
 * queries have no group-by label. Request values are escaped, so they can only ever be literals.
 */
export function renderExternalQuery(rule: ExternalMetricRule, namespace: string, selector: Selector): string {
  // Sorted here as well: the order is part of the query text, hence of the cache key.
  const sorted = [...selector].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let matchers: string[];
  try {
    matchers = selectorToMatchers(sorted);
  } catch (err) {
    if (err instanceof UnsupportedOperatorError || err instanceof InvalidLabelNameError || err instanceof InvalidLabelValueError) {
      throw new BadRequestError(`invalid labelSelector for external metric ${rule.metric}: ${err.message}`);
    }
    throw err;
  }
  const valuesByName: Record<string, string> = {};
  for (const req of sorted) valuesByName[req.key] = req.values.join('|');
  if (rule.namespaceLabel !== null) {
    let matcher: string | null;
    try {
      matcher = namesToMatcher(rule.namespaceLabel, [namespace]);
    } catch (err) {
      // The label name comes from the rule file, the value from a validated path: the config is at fault.
      throw new InternalError(`${rule.origin}: cannot match the namespace: ${(err as Error).message}`);
    }
    if (matcher === null) throw new InternalError(`${rule.origin}: no namespace to match`);
    matchers.push(matcher);
    valuesByName[rule.namespaceLabel] = namespace;
  }
  const query = rule.query.render({
    Series: rule.series,
    LabelMatchers: matchers.join(','),
    LabelValuesByName: valuesByName,
    GroupBy: '',
    GroupBySlice: [],
    Window: '',
  });
  if (query.trim() === '') throw new InternalError(`${rule.origin}: the query template rendered an empty query`);
  return query;
}

/** external.metrics.k8s.io from the rules that series discovery found. */
export class PrometheusExternalMetricsProvider implements ExternalMetricsProvider {
  readonly #deps: ExternalProviderDeps;
  /** Name index of the last rule list seen; rebuilt when discovery hands over a new list. */
  #index: { rules: readonly ExternalMetricRule[]; byName: Map<string, ExternalMetricRule> } | null = null;

  constructor(deps: ExternalProviderDeps) {
    this.#deps = deps;
  }

  listAllExternalMetrics(): string[] {
    return [...this.#byName().keys()];
  }

  async getExternalMetric(namespace: string, metric: string, selector: Selector): Promise<ExternalMetricValue[]> {
    const rule = this.#byName().get(metric);
    if (!rule) throw new NotFoundError(`the server could not find the metric ${metric} for namespace ${namespace}`);
    const query = renderExternalQuery(rule, namespace, selector);
    const started = performance.now();
    let result;
    try {
      result = await this.#deps.engine.query(query, rule.origin);
    } catch (err) {
      if (err instanceof AdapterError) {
        // Same status, with the rule named so users know which part of their config to look at.
        throw err.withContext(`rule ${rule.origin}`);
      }
      throw err;
    }
    this.#deps.log.debug(
      { rule: rule.origin, query, source: result.source, samples: result.samples.length, ms: +(performance.now() - started).toFixed(2) },
      'prometheus query',
    );
    const values: ExternalMetricValue[] = [];
    let nonFinite = 0;
    for (const s of result.samples) {
      if (!Number.isFinite(s.value)) {
        nonFinite++;
        continue;
      }
      values.push({ metric, labels: s.labels, timestamp: s.timestamp, value: s.value });
    }
    if (nonFinite > 0) {
      this.#deps.log.debug({ rule: rule.origin, metric, namespace, skipped: nonFinite }, 'skipping non-finite samples');
      if (values.length === 0) {
        // The HPA sums the items; leaving all of them out would read as "no data" rather than as a broken value.
        throw new InternalError(
          `the external metric ${metric} for namespace ${namespace}` +
            `${selector.length ? ` with selector ${selectorToString(selector)}` : ''} is NaN or infinite in every one of its ` +
            `${nonFinite} sample(s); no value is reported rather than a made-up one (rule ${rule.origin})`,
        );
      }
    }
    // Prometheus leaves the order of a vector unspecified; a fixed order keeps answers byte-identical between calls.
    if (values.length > 1) {
      const keyed = values.map((v) => ({ v, key: labelKey(v.labels) }));
      keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      return keyed.map((k) => k.v);
    }
    return values;
  }

  #byName(): Map<string, ExternalMetricRule> {
    const rules = this.#deps.rules();
    if (this.#index?.rules !== rules) {
      const byName = new Map<string, ExternalMetricRule>();
      // First rule wins, as for custom metrics, so a later rule cannot silently take a name over.
      for (const rule of rules) if (!byName.has(rule.metric)) byName.set(rule.metric, rule);
      this.#index = { rules, byName };
    }
    return this.#index.byName;
  }
}

/** Control characters as separators, so a label set sorts before its extensions. */
function labelKey(labels: Readonly<Record<string, string>>): string {
  let key = '';
  for (const k of Object.keys(labels).sort()) key += `${k}\u0001${labels[k]}\u0000`;
  return key;
}
