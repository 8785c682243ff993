import type { Logger } from 'pino';
import { AdapterError, BadRequestError, NotFoundError, InternalError } from '../errors.ts';
import { objectNames, type ObjectSource } from '../kubernetes/object-source.ts';
import type { MetricRule } from '../config/model.ts';
import type { EngineResult, QueryEngine } from '../prometheus/query-engine.ts';
import type { MetricRegistry, RegisteredMetric, ResourceResolver } from '../rules/registry.ts';
import { renderRuleQuery, type QueryTarget } from '../rules/render-query.ts';
import { selectorToString, type Selector } from '../rules/selector.ts';
import { groupResourceString, type ResourceInfo } from '../rules/well-known-resources.ts';
import {
  DEFAULT_MAX_OBJECTS_PER_REQUEST,
  type CustomMetricInfo,
  type CustomMetricsProvider,
  type MetricRequestInfo,
  type MetricValue,
  type ObjectName,
  type ObjectReference,
} from './types.ts';

export interface CustomProviderDeps {
  readonly registry: () => MetricRegistry;
  readonly resources: () => ResourceResolver;
  readonly objects: ObjectSource;
  readonly engine: QueryEngine;
  /** The engine of the rule's backend; `engine` when absent. */
  readonly engineFor?: (rule: MetricRule) => QueryEngine;
  readonly log: Logger;
  /** Most objects one `*` read may cover (--max-objects-per-request). */
  readonly maxObjectsPerRequest?: number;
}

interface RememberedAnswer {
  readonly samples: EngineResult['samples'];
  readonly names: readonly string[];
  readonly values: readonly MetricValue[];
}

/**
 * Items across all remembered answers, each answer counting one more for itself: the API layer keeps an answer's
 * bytes (~210 B an item) as long as the answer is remembered, so this bounds that memory to some 20 MB per API
 * version, and the number of answers (metric selectors come from requests) as well.
 */
const MAX_REMEMBERED_ITEMS = 100_000;

/** Custom metrics computed from rule queries, joined with the object set from the object source. */
export class PrometheusCustomMetricsProvider implements CustomMetricsProvider {
  readonly #deps: CustomProviderDeps;
  /**
   * The last answer per metric, namespace and metric selector, with the cached query result and object list it
   * was joined from. HPAs repeat the same reads; while both inputs are the same objects, so is the answer (and
   * the API layer reuses its encoding). Rules replaced by a reload drop out with their registry entries.
   */
  #answers = new WeakMap<RegisteredMetric, Map<string, RememberedAnswer>>();
  #rememberedItems = 0;

  constructor(deps: CustomProviderDeps) {
    this.#deps = deps;
  }

  listAllMetrics(): readonly CustomMetricInfo[] {
    return this.#deps.registry().all().map(({ rule, resource }) => ({
      group: resource.group,
      resource: resource.resource,
      namespaced: resource.namespaced,
      metric: rule.metric,
    }));
  }

  async getMetricByName(object: ObjectName, info: MetricRequestInfo, metricSelector: Selector): Promise<MetricValue> {
    const entry = this.#lookup(info, object.name);
    const { rule, resource } = entry;
    const namespace = resource.namespaced ? object.namespace : null;
    const target = queryTargetOf(entry, namespace, [object.name], 'name', metricSelector);
    const result = await this.#run(entry, target);
    const stale = await this.#staleObjects(entry, target, result);
    if (stale.has(object.name)) {
      throw new NotFoundError(
        `the metric ${rule.metric} for ${groupResourceString(resource)} ${object.name} is stale: ` +
          (Number.isFinite(stale.get(object.name)!)
            ? `the newest sample of ${rule.series} is ${Math.round(stale.get(object.name)!)} s old`
            : `no recent sample of ${rule.series} carries ${rule.objectLabel}="${object.name}"`) +
          `, more than maxSampleAge ${rule.maxSampleAgeSeconds} s allows (rule ${rule.origin})`,
      );
    }
    const values = this.#join(entry, result, [object.name], namespace, metricSelector);
    const value = values[0];
    if (!value) {
      const nonFinite = result.samples.find((s) => s.labels[rule.objectLabel] === object.name && !Number.isFinite(s.value));
      if (nonFinite) {
        throw new InternalError(
          `the metric ${rule.metric} for ${groupResourceString(resource)} ${object.name} is ${String(nonFinite.value)} in Prometheus; ` +
            `no value is reported rather than a made-up one (rule ${rule.origin})`,
        );
      }
      throw new NotFoundError(
        `the server could not find the metric ${rule.metric} for ${groupResourceString(resource)} ${object.name}` +
          `${metricSelector.length ? ` with selector ${selectorToString(metricSelector)}` : ''}: ` +
          `the query returned no sample with ${rule.objectLabel}="${object.name}" (rule ${rule.origin})`,
      );
    }
    return value;
  }

  async getMetricBySelector(
    namespace: string | null,
    objectSelector: Selector,
    info: MetricRequestInfo,
    metricSelector: Selector,
  ): Promise<readonly MetricValue[]> {
    const entry = this.#lookup(info);
    const { rule, resource } = entry;
    const ns = resource.namespaced ? namespace : null;
    if (resource.namespaced && ns === null) {
      throw new NotFoundError(
        `the server could not find the metric ${rule.metric} for ${groupResourceString(resource)}: ${resource.resource} are namespaced, ` +
          `ask for /namespaces/{namespace}/${groupResourceString(resource)}/*/${rule.metric}`,
      );
    }
    const names = await objectNames(this.#deps.objects, resource, ns, objectSelector);
    if (names.length === 0) return [];
    const max = this.#deps.maxObjectsPerRequest ?? DEFAULT_MAX_OBJECTS_PER_REQUEST;
    if (names.length > max) {
      // Refused before any query: the answer would be as large as the selection, and one HPA never needs this many.
      throw new BadRequestError(
        `${names.length} ${groupResourceString(resource)}${ns !== null ? ` in namespace ${ns}` : ''} match ` +
          `${objectSelector.length ? `labelSelector ${selectorToString(objectSelector)}` : 'the request (no labelSelector)'}, more than the ` +
          `${max} objects one request may cover (--max-objects-per-request): narrow the labelSelector, or ask for objects by name`,
      );
    }
    const target = queryTargetOf(entry, ns, names, 'selector', metricSelector);
    const result = await this.#run(entry, target);
    // maxSampleAge asks a second query whose age judgement changes with the clock: such answers are not reused.
    if (rule.maxSampleAgeSeconds !== undefined) {
      const stale = await this.#staleObjects(entry, target, result);
      return this.#join(entry, result, names.filter((n) => !stale.has(n)), ns, metricSelector);
    }
    let answers = this.#answers.get(entry);
    if (answers === undefined) this.#answers.set(entry, (answers = new Map()));
    const key = `${ns ?? ''}\u0000${selectorToString(metricSelector)}`;
    const known = answers.get(key);
    if (known !== undefined && known.samples === result.samples && known.names === names) return known.values;
    const values = Object.freeze(this.#join(entry, result, names, ns, metricSelector));
    if (this.#rememberedItems + values.length + 1 > MAX_REMEMBERED_ITEMS) {
      // Forget everything at once: cheaper than tracking which answer is oldest, and rare.
      this.#answers = new WeakMap();
      this.#answers.set(entry, (answers = new Map()));
      this.#rememberedItems = 0;
    }
    const replaced = answers.get(key);
    this.#rememberedItems += values.length + 1 - (replaced === undefined ? 0 : replaced.values.length + 1);
    answers.set(key, { samples: result.samples, names, values });
    return values;
  }

  #lookup(info: MetricRequestInfo, name?: string): RegisteredMetric {
    const resource = this.#deps.resources().resolve(info.resource);
    const entry = resource ? this.#deps.registry().lookup(resource.group, resource.resource, info.metric) : undefined;
    if (!entry) {
      throw new NotFoundError(
        `the server could not find the metric ${info.metric} for ${info.resource}${name ? ` ${name}` : ''}` +
          (resource ? '' : `: "${info.resource}" is not a known resource`),
      );
    }
    return entry;
  }

  async #run(entry: RegisteredMetric, target: Parameters<typeof renderRuleQuery>[1]): Promise<EngineResult> {
    const query = renderRuleQuery(entry.rule, target);
    const started = performance.now();
    try {
      const engine = this.#deps.engineFor?.(entry.rule) ?? this.#deps.engine;
      const result = await engine.query(query, entry.rule.origin);
      this.#deps.log.debug(
        { rule: entry.rule.origin, query, source: result.source, samples: result.samples.length, ms: +(performance.now() - started).toFixed(2) },
        'prometheus query',
      );
      return result;
    } catch (err) {
      if (err instanceof AdapterError) {
        // Same status, with the rule named so users know which part of their config to look at.
        throw err.withContext(`rule ${entry.rule.origin}`);
      }
      throw err;
    }
  }

  /**
   * Objects whose newest raw sample is older than the rule's maxSampleAge, with that age in seconds. A
   * query result carries the evaluation time, not the age of the data behind it, so this asks Prometheus
   * for the raw series' timestamps; an object with no raw sample at all counts as stale too.
   */
  async #staleObjects(entry: RegisteredMetric, target: Parameters<typeof renderRuleQuery>[1], result: EngineResult): Promise<Map<string, number>> {
    const { rule } = entry;
    const stale = new Map<string, number>();
    if (rule.maxSampleAgeSeconds === undefined || !rule.freshnessQuery) return stale;
    const freshness = await this.#run({ ...entry, rule: { ...rule, query: rule.freshnessQuery } }, target);
    const newest = new Map<string, number>();
    for (const s of freshness.samples) {
      const name = s.labels[rule.objectLabel];
      if (name !== undefined) newest.set(name, s.value);
    }
    for (const s of result.samples) {
      const name = s.labels[rule.objectLabel];
      if (name === undefined) continue;
      const age = result.evaluatedAt - (newest.get(name) ?? Number.NEGATIVE_INFINITY);
      if (age > rule.maxSampleAgeSeconds) stale.set(name, age);
    }
    return stale;
  }

  /** One value per requested object that has a finite sample or a substitute (the rule's policies), in the order of `names`. */
  #join(
    { rule, resource }: RegisteredMetric,
    result: EngineResult,
    names: readonly string[],
    namespace: string | null,
    metricSelector: Selector,
  ): MetricValue[] {
    const { positions, references } = objectsOf(names, resource, namespace);
    // Per position the sample (the last one when several carry the name), or a substitute for a non-finite one.
    const found: ({ readonly value: number; readonly timestamp: number } | undefined)[] = new Array(names.length).fill(undefined);
    let nonFinite: Set<number> | undefined;
    const { objectLabel, namespaceLabel } = rule;
    for (const s of result.samples) {
      const name = s.labels[objectLabel];
      if (name === undefined) continue;
      const at = positions.get(name);
      if (at === undefined) continue;
      // A query that keeps the namespace label must not mix objects of other namespaces in.
      if (namespace !== null && namespaceLabel in s.labels && s.labels[namespaceLabel] !== namespace) continue;
      if (!Number.isFinite(s.value)) {
        const substitute = Number.isNaN(s.value) ? rule.substitute?.nan : rule.substitute?.inf;
        if (substitute !== undefined) {
          found[at] = { value: substitute, timestamp: s.timestamp };
          continue;
        }
        // Its sample exists, so the noData policy must not stand in for it.
        (nonFinite ??= new Set()).add(at);
        this.#deps.log.debug({ rule: rule.origin, object: name, value: String(s.value) }, 'skipping a non-finite sample');
        continue;
      }
      found[at] = s;
    }
    const noData = rule.substitute?.noData;
    const windowSeconds = rule.window?.seconds ?? null;
    const out: MetricValue[] = [];
    for (let at = 0; at < names.length; at++) {
      const sample = found[at] ?? (noData !== undefined && !nonFinite?.has(at) ? { value: noData, timestamp: result.evaluatedAt } : undefined);
      if (!sample) continue;
      out.push({ describedObject: references[at]!, metric: rule.metric, metricSelector, timestamp: sample.timestamp, windowSeconds, value: sample.value });
    }
    return out;
  }
}

/**
 * What one read's query selects: the object names go into it only when the rule asks for that (queryScope
 * objects) or the read is about one namespace, which is its own object. Shared with `explain`, so the PromQL
 * it shows is the one the provider sends.
 */
export function queryTargetOf(
  { rule, resource }: RegisteredMetric,
  namespace: string | null,
  names: readonly string[],
  by: 'name' | 'selector',
  metricSelector: Selector,
): QueryTarget {
  const inQuery = rule.queryScope === 'objects' || (by === 'name' && resource.resource === 'namespaces');
  return { namespace, names: inQuery ? names : null, metricSelector };
}

interface ObjectsOfList {
  readonly resource: ResourceInfo;
  readonly namespace: string | null;
  /** Each name's index in the list. */
  readonly positions: ReadonlyMap<string, number>;
  readonly references: readonly ObjectReference[];
}

/**
 * Object lists come from the object cache, which answers the same frozen array while nothing changed: their index
 * and references are built once per list instead of once per request (a thousand pods: ~0.1 ms of every read).
 */
const objectsOfList = new WeakMap<readonly string[], ObjectsOfList>();

/** The position and reference of every name in `names`, objects of `resource` in `namespace`. */
function objectsOf(names: readonly string[], resource: ResourceInfo, namespace: string | null): ObjectsOfList {
  const known = objectsOfList.get(names);
  if (known !== undefined && known.resource === resource && known.namespace === namespace) return known;
  const kind = resource.kind;
  const apiVersion = `${resource.group}/${resource.version}`;
  const inNamespace = resource.namespaced && namespace !== null;
  const positions = new Map<string, number>();
  const references = names.map((name, at): ObjectReference => {
    positions.set(name, at);
    return inNamespace ? { kind, apiVersion, namespace, name } : { kind, apiVersion, name };
  });
  const made = { resource, namespace, positions, references };
  objectsOfList.set(names, made);
  return made;
}
