import type { ExternalMetricRule, MetricRule, ResourceAssociation, SeriesRule } from '../config/model.ts';
import { compileGoRegexp, expandGoTemplate, goSubexpNames, unresolvedReferences } from './go-regexp.ts';
import { metricKey, type ResourceResolver } from './registry.ts';
import { compileTemplate, type CompiledTemplate } from './template.ts';
import { WELL_KNOWN_RESOURCES, groupResourceString, type ResourceInfo } from './well-known-resources.ts';

/** One series from `/api/v1/series`: its name and the names (not values) of its other labels. */
export interface DiscoveredSeries {
  readonly name: string;
  readonly labels: readonly string[];
}

export const RESOURCE_TEMPLATE_FIELDS = ['Group', 'Resource'];

/** A `resources.template`, usable both ways: label → resource (the regex) and resource → label (the template). */
export interface ResourceTemplate {
  readonly template: CompiledTemplate;
  /** The template run with Group/Resource as named groups, anchored, as prometheus-adapter builds it. */
  readonly labelPattern: RegExp;
  readonly resourceIndex: number;
  readonly groupIndex: number | null;
}

const resourceTemplates = new Map<string, ResourceTemplate>();

/**
 * Compiles a `resources.template`. Throws, with a message fit for a config error, what prometheus-adapter
 * refuses at start-up: a template that does not parse, renders nothing, makes a bad regex or lacks `.Resource`.
 */
export function compileResourceTemplate(source: string): ResourceTemplate {
  const cached = resourceTemplates.get(source);
  if (cached) return cached;
  const template = compileTemplate(source, RESOURCE_TEMPLATE_FIELDS);
  // The template's own text is regex syntax here, exactly as in the reference.
  const pattern = template.render({ Group: '(?P<group>.+?)', Resource: '(?P<resource>.+?)' });
  if (pattern === '') throw new Error('the template renders an empty label');
  let labelPattern: RegExp;
  try {
    labelPattern = compileGoRegexp(`^${pattern}$`);
  } catch (err) {
    throw new Error(`the template does not make a valid label pattern "^${pattern}$": ${(err as Error).message}`, { cause: err });
  }
  // The last group of each name counts, as in the reference's scan of SubexpNames.
  const names = goSubexpNames(labelPattern);
  const resourceIndex = names.lastIndexOf('resource');
  const groupIndex = names.lastIndexOf('group');
  if (resourceIndex <= 0) throw new Error('the template must contain <<.Resource>>');
  const compiled = { template, labelPattern, resourceIndex, groupIndex: groupIndex > 0 ? groupIndex : null };
  resourceTemplates.set(source, compiled);
  return compiled;
}

function overrideText(target: { readonly group?: string; readonly resource: string }): string {
  return target.group ? `${target.resource}.${target.group}` : target.resource;
}

function overrideMatches(
  target: { readonly group?: string; readonly resource: string },
  resource: ResourceInfo,
  resolver: ResourceResolver | undefined,
): boolean {
  if (resolver) {
    const found = resolver.resolve(overrideText(target));
    return found !== null && found.group === resource.group && found.resource === resource.resource;
  }
  // Without a resolver, accept what a RESTMapper would: any spelling, any group when none is given.
  const written = target.resource.toLowerCase();
  return (
    (!target.group || target.group === resource.group) &&
    (written === resource.resource || written === resource.singular || written === resource.kind.toLowerCase())
  );
}

/**
 * The Prometheus label that names `resource` under an association (prometheus-adapter's LabelForResource):
 * an override whose target is the resource, else the template run with the group (`.` and `-` as `_`)
 * and the singular resource. Null when neither gives a label. With several overrides for one resource
 * the first in the file wins (the reference picks one at random).
 */
export function labelForResource(association: ResourceAssociation, resource: ResourceInfo, resolver?: ResourceResolver): string | null {
  for (const [label, target] of Object.entries(association.overrides)) {
    if (overrideMatches(target, resource, resolver)) return label;
  }
  if (association.template === null) return null;
  const label = compileResourceTemplate(association.template).template.render({
    Group: resource.group.replace(/[.-]/g, '_'),
    Resource: resource.singular,
  });
  return label === '' ? null : label;
}

const NAMESPACES: ResourceInfo = WELL_KNOWN_RESOURCES.find((r) => r.group === '' && r.resource === 'namespaces')!;

const isNamespaces = (r: ResourceInfo): boolean => r.group === '' && r.resource === 'namespaces';

/** Label ↔ resource for one rule during one discovery run; caches what it resolved. */
class AssociationView {
  readonly #association: ResourceAssociation;
  readonly #resolver: ResourceResolver;
  readonly #origin: string;
  readonly #problems: Set<string>;
  readonly #byLabel = new Map<string, ResourceInfo | null>();
  readonly #labelByResource = new Map<string, string | null>();
  #template: ResourceTemplate | null | undefined;

  constructor(association: ResourceAssociation, resolver: ResourceResolver, origin: string, problems: Set<string>) {
    this.#association = association;
    this.#resolver = resolver;
    this.#origin = origin;
    this.#problems = problems;
  }

  #templateOrNull(): ResourceTemplate | null {
    if (this.#template === undefined) {
      try {
        this.#template = this.#association.template === null ? null : compileResourceTemplate(this.#association.template);
      } catch (err) {
        this.#problems.add(`${this.#origin}: resources.template: ${(err as Error).message}`);
        this.#template = null;
      }
    }
    return this.#template;
  }

  #resolveLabel(label: string): ResourceInfo | null {
    const override = Object.hasOwn(this.#association.overrides, label) ? this.#association.overrides[label] : undefined;
    if (override) {
      const found = this.#resolver.resolve(overrideText(override));
      if (!found) {
        // prometheus-adapter refuses to start on this; here the rest of the rule keeps working.
        this.#problems.add(
          `${this.#origin}: resources.overrides.${label}: resource "${overrideText(override)}" is not known to the cluster; series are not registered for it`,
        );
      }
      return found;
    }
    const template = this.#templateOrNull();
    if (!template) return null;
    const match = template.labelPattern.exec(label);
    if (!match) return null;
    const resource = match[template.resourceIndex] ?? '';
    const group = template.groupIndex === null ? '' : (match[template.groupIndex] ?? '');
    // Labels that name no known resource (instance, job in a cluster without batch, ...) are skipped quietly.
    return this.#resolver.resolve(group ? `${resource}.${group}` : resource);
  }

  /** The resources a series' labels name, each once, in label order. */
  resourcesFor(labels: readonly string[]): ResourceInfo[] {
    const out: ResourceInfo[] = [];
    for (const label of labels) {
      if (label === '__name__') continue;
      let info = this.#byLabel.get(label);
      if (info === undefined) {
        info = this.#resolveLabel(label);
        this.#byLabel.set(label, info);
      }
      if (info && !out.some((r) => r.group === info!.group && r.resource === info!.resource)) out.push(info);
    }
    return out;
  }

  labelFor(resource: ResourceInfo): string | null {
    const key = `${resource.group}/${resource.resource}`;
    let label = this.#labelByResource.get(key);
    if (label === undefined) {
      try {
        label = labelForResource(this.#association, resource, this.#resolver);
      } catch (err) {
        // Only a template that does not compile gets here; the loader rejects those, so this is a hand-built rule.
        this.#problems.add(`${this.#origin}: resources.template: ${(err as Error).message}`);
        label = null;
      }
      this.#labelByResource.set(key, label);
    }
    return label;
  }
}

function passesFilters(rule: SeriesRule, name: string): boolean {
  for (const filter of rule.seriesFilters) {
    if (filter.is && !filter.is.test(name)) return false;
    if (filter.isNot && filter.isNot.test(name)) return false;
  }
  return true;
}

/** `$1_per_second` → `${1}_per_second`: the usual intent of a reference that names no group. */
function referenceHint(reference: string): string {
  const digits = /^\$([0-9]+)([\p{L}\p{Nd}_]+)$/u.exec(reference);
  const fix = digits ? `; write \${${digits[1]}}${digits[2]}` : '';
  return `"${reference}" refers to no capture group of name.matches${fix}`;
}

interface Entry<T> {
  rule: T;
  /** Origins this entry replaced: the reference keeps the last writer silently. */
  replaced: Set<string>;
}

/**
 * prometheus-adapter's discovery, without the I/O: which custom and external metrics the rules make of
 * the series each `seriesQuery` returned. Custom metrics are keyed by (group, resource, metric) and
 * external ones by name; a later rule overwrites an earlier one, as in the reference, and `problems`
 * says where that happened. A namespaced resource keeps a series that carries a namespace label over one
 * that does not, since only the former can answer a namespaced request.
 */
export function discoverMetrics(
  rules: readonly SeriesRule[],
  seriesByQuery: ReadonlyMap<string, readonly DiscoveredSeries[]>,
  resolver: ResourceResolver,
): { custom: MetricRule[]; external: ExternalMetricRule[]; problems: string[] } {
  const problems = new Set<string>();
  const custom = new Map<string, Entry<MetricRule>>();
  const external = new Map<string, Entry<ExternalMetricRule>>();
  const namespaces = resolver.resolve('namespaces') ?? NAMESPACES;

  const distinctByQuery = new Map<string, readonly DiscoveredSeries[]>();
  for (const rule of rules) {
    const all = seriesByQuery.get(rule.seriesQuery);
    if (!all || all.length === 0) continue;
    let series = distinctByQuery.get(rule.seriesQuery);
    if (series === undefined) {
      series = firstAndLastOccurrences(all);
      distinctByQuery.set(rule.seriesQuery, series);
    }
    const view = new AssociationView(rule.resources, resolver, rule.origin, problems);
    const metricByName = new Map<string, string | null>();
    let referencesChecked = false;
    const unusable: string[] = [];
    const nameFor = (seriesName: string): string | null => {
      let metric = metricByName.get(seriesName);
      if (metric !== undefined) return metric;
      metric = null;
      const match = passesFilters(rule, seriesName) ? rule.name.matches.exec(seriesName) : null;
      if (match) {
        metric = expandGoTemplate(rule.name.matches, rule.name.as, match);
        if (!referencesChecked) {
          referencesChecked = true;
          const unresolved = unresolvedReferences(rule.name.matches, rule.name.as);
          if (unresolved.length > 0) problems.add(`${rule.origin}: name.as "${rule.name.as}": ${unresolved.map(referenceHint).join(', ')}`);
        }
        if (metric === '' || metric.includes('/')) {
          unusable.push(`"${seriesName}" into ${metric === '' ? 'an empty metric name' : `"${metric}"`}`);
          metric = null;
        }
      }
      metricByName.set(seriesName, metric);
      return metric;
    };

    let externalNamespaceLabel: string | null | undefined;
    for (const s of series) {
      const metric = nameFor(s.name);
      if (metric === null) continue;
      const origin = `${rule.origin} (${s.name})`;

      if (rule.kind === 'external') {
        if (externalNamespaceLabel === undefined) {
          externalNamespaceLabel = rule.resources.namespaced ? view.labelFor(namespaces) : null;
          if (rule.resources.namespaced && externalNamespaceLabel === null) {
            problems.add(
              `${rule.origin}: the rule is namespaced (resources.namespaced defaults to true) but no label maps to namespaces; ` +
                'its metrics are not served (prometheus-adapter lists them and fails every request). ' +
                'Add resources.overrides such as `namespace: {resource: namespace}`, or set resources.namespaced: false',
            );
          }
        }
        if (rule.resources.namespaced && externalNamespaceLabel === null) continue;
        const candidate: ExternalMetricRule = {
          metric,
          origin,
          series: s.name,
          query: rule.metricsQuery,
          namespaceLabel: externalNamespaceLabel ?? null,
        };
        remember(external, metric, candidate);
        continue;
      }

      const resources = view.resourcesFor(s.labels);
      if (resources.length === 0) continue;
      const namespaced = resources.some(isNamespaces);
      const namespaceLabel = namespaced ? (view.labelFor(namespaces) ?? '') : '';
      for (const resource of resources) {
        const objectLabel = view.labelFor(resource);
        if (objectLabel === null) {
          problems.add(`${rule.origin}: no label names ${groupResourceString(resource)} (resources has no template and no override for it)`);
          continue;
        }
        const key = metricKey(resource.group, resource.resource, metric);
        const existing = custom.get(key);
        if (existing && resource.namespaced && existing.rule.namespaceLabel !== '' && namespaceLabel === '') {
          if (existing.rule.origin !== origin) existing.replaced.add(origin);
          continue;
        }
        const candidate: MetricRule = {
          metric,
          origin,
          resource: groupResourceString(resource),
          objectLabel,
          namespaceLabel,
          query: rule.metricsQuery,
          series: s.name,
          window: null,
          queryScope: 'objects',
        };
        remember(custom, key, candidate);
      }
    }
    if (unusable.length > 0) {
      // One line per rule: a broad seriesQuery can bring thousands of series names.
      const more = unusable.length > 1 ? ` (and ${unusable.length - 1} more series)` : '';
      problems.add(`${rule.origin}: name.as "${rule.name.as}" turns series ${unusable[0]}${more}, which is not a usable metric name; skipped`);
    }
  }

  for (const { rule, replaced } of custom.values()) {
    if (replaced.size > 0) {
      problems.add(
        `metric "${rule.metric}" for ${rule.resource} comes from ${rule.origin}; it replaces ${[...replaced].join(', ')} (the later rule wins, as in prometheus-adapter)`,
      );
    }
  }
  for (const { rule, replaced } of external.values()) {
    if (replaced.size > 0) {
      problems.add(
        `external metric "${rule.metric}" comes from ${rule.origin}; it replaces ${[...replaced].join(', ')} (the later rule wins, as in prometheus-adapter)`,
      );
    }
  }
  return {
    custom: [...custom.values()].map((e) => e.rule),
    external: [...external.values()].map((e) => e.rule),
    problems: [...problems],
  };
}

/**
 * The series client hands out one shared entry per (name, label names), so a million series are a few shapes
 * here, and a shape yields the same candidates every time. Each shape at its first occurrence, then each at its
 * last, gives what the whole list gives: metrics are first registered in the same order, and the later series
 * overwrite the earlier ones in the same order.
 */
function firstAndLastOccurrences(series: readonly DiscoveredSeries[]): readonly DiscoveredSeries[] {
  const seen = new Set<DiscoveredSeries>();
  const first: DiscoveredSeries[] = [];
  for (const s of series) {
    if (seen.has(s)) continue;
    seen.add(s);
    first.push(s);
  }
  // Nothing repeats: the list itself, which is also the answer for callers that never share entries.
  if (first.length === series.length) return series;
  seen.clear();
  const last: DiscoveredSeries[] = [];
  for (let i = series.length - 1; i >= 0; i--) {
    const s = series[i]!;
    if (seen.has(s)) continue;
    seen.add(s);
    last.push(s);
  }
  return [...first, ...last.reverse()];
}

function remember<T extends { readonly origin: string }>(entries: Map<string, Entry<T>>, key: string, candidate: T): void {
  const existing = entries.get(key);
  if (!existing) {
    entries.set(key, { rule: candidate, replaced: new Set() });
    return;
  }
  // Series of one name share an origin; only a different series or rule is worth reporting.
  if (existing.rule.origin !== candidate.origin) {
    existing.replaced.delete(candidate.origin);
    existing.replaced.add(existing.rule.origin);
  }
  existing.rule = candidate;
}
