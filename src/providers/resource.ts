import { AdapterError, BadRequestError } from '../errors.ts';
import { labelForResource } from '../rules/series-naming.ts';
import type { ResourceAssociation, ResourceMetricRule, ResourceRules } from '../config/model.ts';
import type { ObjectMeta, ObjectSource } from '../kubernetes/object-source.ts';
import type { EngineResult, QueryEngine } from '../prometheus/query-engine.ts';
import type { Sample } from '../prometheus/http-client.ts';
import { assertLabelName } from '../rules/escape.ts';
import { namesToMatcher } from '../rules/matchers.ts';
import { selectorToString, type Selector } from '../rules/selector.ts';
import { WELL_KNOWN_RESOURCES, type ResourceInfo } from '../rules/well-known-resources.ts';
import { MAX_QUANTITY_MAGNITUDE } from '../api/quantity.ts';
import { DEFAULT_MAX_OBJECTS_PER_REQUEST } from './types.ts';

/** Usage of one container; cpu in cores, memory in bytes. */
export interface ContainerUsage {
  readonly name: string;
  readonly cpuCores: number;
  readonly memoryBytes: number;
}

export interface PodMetricsItem {
  readonly namespace: string;
  readonly name: string;
  /** The pod's labels, as the object source knows them. */
  readonly labels: Readonly<Record<string, string>>;
  /** Unix seconds: the earliest timestamp of the samples the item was built from. */
  readonly timestamp: number;
  readonly windowSeconds: number;
  /** Sorted by name. */
  readonly containers: readonly ContainerUsage[];
}

export interface NodeMetricsItem {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Unix seconds: the earlier of the cpu and memory sample timestamps. */
  readonly timestamp: number;
  readonly windowSeconds: number;
  readonly cpuCores: number;
  readonly memoryBytes: number;
}

/** Structural so tests can record what is logged; a pino Logger fits. */
export interface ResourceProviderLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ResourceProviderDeps {
  readonly rules: ResourceRules;
  readonly objects: ObjectSource;
  readonly engine: QueryEngine;
  readonly log: ResourceProviderLog;
  /**
   * Most object names in one query's alternation. prometheus-adapter puts every pod of a namespace into
   * one regex, which for thousands of pods makes queries of tens of KB (HTTP 414, slow regex matching).
   */
  readonly maxNamesPerQuery?: number;
  /** Most Prometheus queries in flight for one request; a cluster-wide list touches every namespace. */
  readonly maxConcurrentQueries?: number;
  /** Most pods or nodes one list may cover (--max-objects-per-request). */
  readonly maxObjectsPerRequest?: number;
}

/** Keeps only the objects a request selects beyond namespace, label selector and name (field selectors). */
export type ObjectFilter = (object: ObjectMeta) => boolean;

/** What the metrics.k8s.io routes need; ResourceMetricsProvider is the implementation. */
export interface ResourceMetricsSource {
  getPodMetrics(namespace: string | null, selector: Selector, name?: string, filter?: ObjectFilter): Promise<PodMetricsItem[]>;
  getNodeMetrics(selector: Selector, name?: string, filter?: ObjectFilter): Promise<NodeMetricsItem[]>;
}

export const DEFAULT_MAX_NAMES_PER_QUERY = 500;
export const DEFAULT_MAX_CONCURRENT_QUERIES = 16;

const TEMPLATE_FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice', 'Window'];

function coreResource(plural: string): ResourceInfo {
  const info = WELL_KNOWN_RESOURCES.find((r) => r.group === '' && r.resource === plural);
  if (!info) throw new Error(`${plural} missing from WELL_KNOWN_RESOURCES`);
  return info;
}

const NAMESPACES = coreResource('namespaces');
const PODS = coreResource('pods');
const NODES = coreResource('nodes');

/** The labels one of cpu/memory reads its answers by, fixed when the provider is built. */
interface ResolvedRule {
  readonly what: 'cpu' | 'memory';
  readonly rule: ResourceMetricRule;
  readonly namespaceLabel: string;
  readonly podLabel: string;
  readonly nodeLabel: string;
  readonly containerLabel: string;
}

/** `adapter.yaml resourceRules.cpu.containerLabel`, whether or not the origin already ends in `resourceRules`. */
function where(origin: string, path: string): string {
  return origin.endsWith('resourceRules') ? `${origin}.${path}` : `${origin} resourceRules.${path}`;
}

function resolveRule(origin: string, what: 'cpu' | 'memory', rule: ResourceMetricRule): ResolvedRule {
  const label = (resource: ResourceInfo): string => {
    let found: string | null;
    try {
      found = labelForResource(rule.resources, resource);
    } catch (err) {
      throw new Error(`${where(origin, `${what}.resources.template`)}: ${(err as Error).message}`, { cause: err });
    }
    if (found === null) {
      throw new Error(
        `${where(origin, `${what}.resources`)} names no Prometheus label for ${resource.resource}: ` +
          `add an override such as \`${resource.singular}: {resource: ${resource.singular}}\` or a template such as \`<<.Resource>>\``,
      );
    }
    return checkedLabel(where(origin, `${what}.resources`) + ` (label for ${resource.resource})`, found);
  };
  return {
    what,
    rule,
    namespaceLabel: label(NAMESPACES),
    podLabel: label(PODS),
    nodeLabel: label(NODES),
    containerLabel: checkedLabel(where(origin, `${what}.containerLabel`), rule.containerLabel),
  };
}

function checkedLabel(place: string, label: string): string {
  try {
    assertLabelName(label);
  } catch (err) {
    throw new Error(`${place}: ${(err as Error).message}`, { cause: err });
  }
  return label;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs at most `limit` tasks at a time, keeping results in task order; after a failure no new task starts. */
async function runLimited<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && !failed) {
      const index = next++;
      try {
        results[index] = await tasks[index]!();
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

function byNamespaceAndName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

interface Reading {
  readonly value: number;
  readonly timestamp: number;
}

/**
 * metrics.k8s.io from prometheus-adapter's `resourceRules`: which pods and nodes exist comes from the
 * object source, their usage from the cpu and memory queries.
 */
export class ResourceMetricsProvider implements ResourceMetricsSource {
  readonly #deps: ResourceProviderDeps;
  readonly #cpu: ResolvedRule;
  readonly #memory: ResolvedRule;
  readonly #maxNames: number;
  readonly #maxConcurrent: number;
  readonly #maxObjects: number;

  /** Throws when the rules name no label for namespaces, pods or nodes: that is a config error, found at start-up. */
  constructor(deps: ResourceProviderDeps) {
    this.#deps = deps;
    this.#cpu = resolveRule(deps.rules.origin, 'cpu', deps.rules.cpu);
    this.#memory = resolveRule(deps.rules.origin, 'memory', deps.rules.memory);
    this.#maxNames = Math.max(1, deps.maxNamesPerQuery ?? DEFAULT_MAX_NAMES_PER_QUERY);
    this.#maxConcurrent = Math.max(1, deps.maxConcurrentQueries ?? DEFAULT_MAX_CONCURRENT_QUERIES);
    this.#maxObjects = Math.max(1, deps.maxObjectsPerRequest ?? DEFAULT_MAX_OBJECTS_PER_REQUEST);
  }

  get windowSeconds(): number {
    return this.#deps.rules.window.seconds;
  }

  /**
   * Pods of `namespace` (every namespace when null) matching `selector` (and `name`, `filter` when given)
   * that have both cpu and memory data, sorted by namespace and name.
   */
  async getPodMetrics(namespace: string | null, selector: Selector, name?: string, filter?: ObjectFilter): Promise<PodMetricsItem[]> {
    let pods = await this.#deps.objects.list(PODS, namespace, selector);
    if (name !== undefined) pods = pods.filter((p) => p.name === name);
    if (filter) pods = pods.filter(filter);
    this.#checkSize(pods.length, 'pods', namespace, selector);
    const byNamespace = new Map<string, ObjectMeta[]>();
    for (const pod of pods) {
      let list = byNamespace.get(pod.namespace);
      if (!list) byNamespace.set(pod.namespace, (list = []));
      list.push(pod);
    }
    const tasks: (() => Promise<PodMetricsItem[]>)[] = [];
    for (const [ns, nsPods] of byNamespace) {
      for (const part of chunk(nsPods, this.#maxNames)) tasks.push(() => this.#podChunk(ns, part));
    }
    // Each task runs two queries; halve the task limit so the query limit holds.
    const results = await runLimited(tasks, Math.max(1, Math.floor(this.#maxConcurrent / 2)));
    return results.flat().sort(byNamespaceAndName);
  }

  /** Nodes matching `selector` (and `name`, `filter`) that have both cpu and memory data, sorted by name. */
  async getNodeMetrics(selector: Selector, name?: string, filter?: ObjectFilter): Promise<NodeMetricsItem[]> {
    let nodes = await this.#deps.objects.list(NODES, null, selector);
    if (name !== undefined) nodes = nodes.filter((n) => n.name === name);
    if (filter) nodes = nodes.filter(filter);
    this.#checkSize(nodes.length, 'nodes', null, selector);
    const tasks = chunk(nodes, this.#maxNames).map((part) => () => this.#nodeChunk(part));
    const results = await runLimited(tasks, Math.max(1, Math.floor(this.#maxConcurrent / 2)));
    return results.flat().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Refuses a list before any query when it selects more objects than one request may cover. */
  #checkSize(count: number, what: 'pods' | 'nodes', namespace: string | null, selector: Selector): void {
    const max = this.#maxObjects;
    if (count <= max) return;
    const where = what === 'nodes' ? '' : namespace === null ? ' in all namespaces' : ` in namespace ${namespace}`;
    throw new BadRequestError(
      `${count} ${what}${where} match ${selector.length ? `labelSelector ${selectorToString(selector)}` : 'the request (no labelSelector)'}, ` +
        `more than the ${max} objects one request may cover (--max-objects-per-request): narrow the labelSelector or fieldSelector` +
        `${what === 'pods' && namespace === null ? ', or list one namespace at a time' : ''}`,
    );
  }

  async #podChunk(namespace: string, pods: readonly ObjectMeta[]): Promise<PodMetricsItem[]> {
    const names = pods.map((p) => p.name);
    const [cpu, memory] = await Promise.all([this.#podQuery(this.#cpu, namespace, names), this.#podQuery(this.#memory, namespace, names)]);
    const out: PodMetricsItem[] = [];
    for (const pod of pods) {
      const cpuByContainer = cpu.get(pod.name);
      const memByContainer = memory.get(pod.name);
      if (!cpuByContainer || !memByContainer) {
        this.#deps.log.debug(
          { namespace, pod: pod.name, missing: !cpuByContainer && !memByContainer ? 'cpu and memory' : !cpuByContainer ? 'cpu' : 'memory' },
          'skipping a pod without resource usage data',
        );
        continue;
      }
      let timestamp = Infinity;
      const containers: ContainerUsage[] = [];
      for (const container of new Set([...cpuByContainer.keys(), ...memByContainer.keys()])) {
        const c = cpuByContainer.get(container);
        const m = memByContainer.get(container);
        timestamp = Math.min(timestamp, c?.timestamp ?? Infinity, m?.timestamp ?? Infinity);
        // A container reported by only one query still counts, with 0 for the other, as in prometheus-adapter.
        containers.push({ name: container, cpuCores: c?.value ?? 0, memoryBytes: Math.round(m?.value ?? 0) });
      }
      containers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      out.push({ namespace, name: pod.name, labels: pod.labels, timestamp, windowSeconds: this.windowSeconds, containers });
    }
    return out;
  }

  async #nodeChunk(nodes: readonly ObjectMeta[]): Promise<NodeMetricsItem[]> {
    const names = nodes.map((n) => n.name);
    const [cpu, memory] = await Promise.all([this.#nodeQuery(this.#cpu, names), this.#nodeQuery(this.#memory, names)]);
    const out: NodeMetricsItem[] = [];
    for (const node of nodes) {
      const c = cpu.get(node.name);
      const m = memory.get(node.name);
      if (!c || !m) {
        this.#deps.log.debug({ node: node.name, missing: !c && !m ? 'cpu and memory' : !c ? 'cpu' : 'memory' }, 'skipping a node without resource usage data');
        continue;
      }
      out.push({
        name: node.name,
        labels: node.labels,
        timestamp: Math.min(c.timestamp, m.timestamp),
        windowSeconds: this.windowSeconds,
        cpuCores: c.value,
        memoryBytes: Math.round(m.value),
      });
    }
    return out;
  }

  /** pod → container → reading, for the samples of `namespace`. */
  async #podQuery(r: ResolvedRule, namespace: string, names: readonly string[]): Promise<Map<string, Map<string, Reading>>> {
    const query = r.rule.containerQuery.render({
      Series: '',
      LabelMatchers: [namesToMatcher(r.namespaceLabel, [namespace])!, namesToMatcher(r.podLabel, names)!].join(','),
      LabelValuesByName: { [r.namespaceLabel]: namespace, [r.podLabel]: names.join('|') },
      GroupBy: `${r.podLabel},${r.containerLabel}`,
      GroupBySlice: [r.podLabel, r.containerLabel],
      Window: this.#deps.rules.window.text,
    });
    const result = await this.#run(r, 'containerQuery', query);
    const out = new Map<string, Map<string, Reading>>();
    for (const s of result.samples) {
      const pod = s.labels[r.podLabel];
      if (pod === undefined) continue;
      // A query that keeps the namespace label must not mix pods of other namespaces in.
      if (r.namespaceLabel in s.labels && s.labels[r.namespaceLabel] !== namespace) continue;
      const reading = this.#reading(r, s, { namespace, pod });
      if (!reading) continue;
      let containers = out.get(pod);
      if (!containers) out.set(pod, (containers = new Map()));
      const container = s.labels[r.containerLabel] ?? '';
      // A query without `sum by` can answer several series per container; summing them would double-count
      // the common case of cAdvisor scraped twice, so one is kept, as for nodes.
      if (containers.has(container)) {
        this.#deps.log.debug({ namespace, pod, container, resource: r.what }, 'several series for one container; keeping the first');
        continue;
      }
      containers.set(container, reading);
    }
    return out;
  }

  /** node → reading; the first sample per node wins, as in prometheus-adapter. */
  async #nodeQuery(r: ResolvedRule, names: readonly string[]): Promise<Map<string, Reading>> {
    const query = r.rule.nodeQuery.render({
      Series: '',
      LabelMatchers: namesToMatcher(r.nodeLabel, names)!,
      LabelValuesByName: { [r.nodeLabel]: names.join('|') },
      GroupBy: r.nodeLabel,
      GroupBySlice: [r.nodeLabel],
      Window: this.#deps.rules.window.text,
    });
    const result = await this.#run(r, 'nodeQuery', query);
    const out = new Map<string, Reading>();
    for (const s of result.samples) {
      const node = s.labels[r.nodeLabel];
      if (node === undefined || out.has(node)) continue;
      const reading = this.#reading(r, s, { node });
      if (reading) out.set(node, reading);
    }
    return out;
  }

  /**
   * NaN and negative values read as 0, as in prometheus-adapter (a counter reset can make irate negative).
   * +Inf and values beyond what a quantity can carry have no truthful stand-in, so they count as no data.
   */
  #reading(r: ResolvedRule, s: Sample, who: Record<string, string>): Reading | null {
    let value = s.value;
    if (Number.isNaN(value) || value < 0) value = 0;
    if (!Number.isFinite(value) || value > MAX_QUANTITY_MAGNITUDE) {
      this.#deps.log.debug({ ...who, resource: r.what, value: String(s.value) }, 'ignoring a sample that has no quantity form');
      return null;
    }
    return { value, timestamp: s.timestamp };
  }

  async #run(r: ResolvedRule, which: 'containerQuery' | 'nodeQuery', query: string): Promise<EngineResult> {
    const origin = where(this.#deps.rules.origin, `${r.what}.${which}`);
    const started = performance.now();
    try {
      const result = await this.#deps.engine.query(query, origin);
      this.#deps.log.debug(
        { rule: origin, query, source: result.source, samples: result.samples.length, ms: +(performance.now() - started).toFixed(2) },
        'prometheus query',
      );
      return result;
    } catch (err) {
      if (err instanceof AdapterError) {
        // Same status, with the rule named so users know which part of their config to look at.
        throw err.withContext(`rule ${origin}`);
      }
      throw err;
    }
  }
}
