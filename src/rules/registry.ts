import type { MetricRule } from '../config/model.ts';
import type { ResourceInfo } from './well-known-resources.ts';

/** Finds a resource by any of the names users write: plural, singular, kind, with or without group. */
export interface ResourceResolver {
  resolve(text: string): ResourceInfo | null;
}

export interface RegisteredMetric {
  readonly rule: MetricRule;
  readonly resource: ResourceInfo;
}

export const metricKey = (group: string, resource: string, metric: string): string => `${group}/${resource}/${metric}`;

/**
 * The metrics the server can answer, keyed by (group, resource, metric). Built from the rules and
 * the resource mapping; rules whose resource cannot be resolved are reported and left out, so one
 * bad rule never hides the others.
 */
export class MetricRegistry {
  readonly #byKey = new Map<string, RegisteredMetric>();
  readonly #ordered: RegisteredMetric[] = [];
  readonly problems: readonly string[];

  constructor(rules: readonly MetricRule[], resolver: ResourceResolver) {
    const problems: string[] = [];
    for (const rule of rules) {
      const resource = resolver.resolve(rule.resource);
      if (!resource) {
        problems.push(`${rule.origin}: resource "${rule.resource}" is not known to the cluster's API discovery; the metric is not served`);
        continue;
      }
      const key = metricKey(resource.group, resource.resource, rule.metric);
      if (this.#byKey.has(key)) {
        problems.push(`${rule.origin}: duplicates ${this.#byKey.get(key)!.rule.origin}; the first one is served`);
        continue;
      }
      const entry = { rule, resource };
      this.#byKey.set(key, entry);
      this.#ordered.push(entry);
    }
    this.problems = problems;
  }

  lookup(group: string, resource: string, metric: string): RegisteredMetric | undefined {
    return this.#byKey.get(metricKey(group, resource, metric));
  }

  /** Registered metrics in rule-file order, which keeps discovery documents stable between calls. */
  all(): readonly RegisteredMetric[] {
    return this.#ordered;
  }
}
