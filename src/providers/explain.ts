import { AdapterError, BadRequestError } from '../errors.ts';
import { objectNames, type ObjectSource } from '../kubernetes/object-source.ts';
import type { EngineResult, QueryEngine } from '../prometheus/query-engine.ts';
import type { MetricRule } from '../config/model.ts';
import type { MetricRegistry, ResourceResolver } from '../rules/registry.ts';
import { renderRuleQuery } from '../rules/render-query.ts';
import { queryTargetOf } from './custom.ts';
import { parseSelector, SelectorParseError, selectorToString, type Selector } from '../rules/selector.ts';
import { groupResourceString, type ResourceInfo } from '../rules/well-known-resources.ts';
import { CUSTOM_METRICS_GROUP, CUSTOM_METRICS_VERSIONS, encodeMetricValueList, type CustomMetricsVersion } from '../api/custom-metrics-wire.ts';
import { parseCustomMetricPath, splitPath } from '../api/metric-request.ts';
import { toStatus } from '../api/status.ts';
import type { CustomMetricsProvider, MetricValue } from './types.ts';

/** A metric read, as a path below /apis/custom.metrics.k8s.io/{version}/ or as its parts. */
export interface ExplainRequest {
  /** `namespaces/default/pods/*\/cpu?labelSelector=app%3Dweb`, with or without the `/apis/custom.metrics.k8s.io/{version}` prefix. */
  readonly path?: string;
  readonly resource?: string;
  readonly namespace?: string | null;
  /** Default `*`. */
  readonly name?: string;
  readonly selector?: string;
  readonly metricSelector?: string;
  readonly metric?: string;
  readonly version?: CustomMetricsVersion;
}

export interface ExplainDeps {
  readonly registry: () => MetricRegistry;
  /** The server's resource mapper; `resources` (when present) lists the candidates for an unknown name. */
  readonly resources: () => ResourceResolver & { readonly resources?: readonly ResourceInfo[] };
  readonly objects: ObjectSource;
  readonly engine: QueryEngine;
  /** The engine of a rule's backend; `engine` when absent. */
  readonly engineFor?: (rule: MetricRule) => QueryEngine;
  /** The provider the API routes use: the answer shown is the one a client would get. */
  readonly provider: CustomMetricsProvider;
  /** Series discovery state, when the rule file has prometheus-adapter rules. */
  readonly discovery?: () => { readonly custom: readonly MetricRule[]; readonly lastSuccess: Date | null } | null;
}

export interface ExplainedSample {
  readonly labels: Readonly<Record<string, string>>;
  /** A string, so NaN and ±Inf survive JSON. */
  readonly value: string;
  readonly timestamp: number;
}

export interface ObjectVerdict {
  readonly name: string;
  readonly ok: boolean;
  readonly value?: string;
  readonly reason: string;
}

export interface Explanation {
  readonly request: {
    readonly version: CustomMetricsVersion;
    readonly path: string | null;
    readonly resource: string | null;
    readonly namespace: string | null;
    readonly name: string | null;
    readonly selector: string;
    readonly metricSelector: string;
    readonly metric: string | null;
  };
  /** False with `failure` naming the first step that did not work. */
  readonly resolved: boolean;
  readonly failure: 'bad-request' | 'unknown-resource' | 'no-rule' | 'no-object' | 'objects-unavailable' | 'query-failed' | 'no-sample' | 'response-error' | null;
  readonly summary: string;
  readonly resource?: {
    readonly text: string;
    readonly resolved: { readonly group: string; readonly resource: string; readonly kind: string; readonly namespaced: boolean } | null;
    readonly note: string;
    readonly candidates?: readonly string[];
  };
  readonly rule?: {
    readonly found: boolean;
    readonly origin?: string;
    readonly matchedBy?: string;
    readonly objectLabel?: string;
    readonly namespaceLabel?: string;
    readonly queryScope?: string;
    readonly fromDiscovery?: boolean;
    readonly note?: string;
    readonly registeredForResource?: readonly string[];
    readonly closest?: readonly string[];
  };
  readonly discovery?: { readonly lastSuccess: string | null; readonly metrics: number; readonly discovered: boolean | null; readonly note: string };
  readonly objects?: {
    readonly namespace: string | null;
    readonly selector: string;
    readonly matched: readonly string[];
    readonly inNamespace?: number;
    readonly note: string;
  };
  readonly query?: { readonly promql: string | null; readonly note?: string };
  readonly prometheus?: {
    readonly evaluatedAt?: number;
    readonly source?: string;
    readonly samples?: readonly ExplainedSample[];
    readonly warnings?: readonly string[];
    readonly error?: string;
  };
  readonly perObject?: readonly ObjectVerdict[];
  readonly response: { readonly code: number; readonly body: object };
}

const MAX_LISTED = 20;

/**
 * Walks one custom-metrics read step by step with the server's own registry, resource mapper, object
 * source, query engine and provider, and says where it stops resolving. The final answer comes from the
 * provider itself, so what is shown is what an HPA would get.
 */
export async function explainCustomMetric(deps: ExplainDeps, input: ExplainRequest): Promise<Explanation> {
  let version: CustomMetricsVersion = input.version ?? 'v1beta2';
  let resourceText: string | null = input.resource ?? null;
  let namespace: string | null = input.namespace ?? null;
  let name: string | null = input.name ?? '*';
  let metric: string | null = input.metric ?? null;
  let selectorText = input.selector ?? '';
  let metricSelectorText = input.metricSelector ?? '';
  const request = (): Explanation['request'] => ({
    version,
    path: input.path ?? null,
    resource: resourceText,
    namespace,
    name,
    selector: selectorText,
    metricSelector: metricSelectorText,
    metric,
  });
  const fail = (failure: Explanation['failure'], err: unknown, extra: Partial<Explanation> = {}): Explanation => {
    const status = toStatus(err);
    return { request: request(), resolved: false, failure, summary: status.message, ...extra, response: { code: status.code, body: status } };
  };

  let objectSelector: Selector;
  let metricSelector: Selector;
  try {
    if (input.path !== undefined) {
      const [rawPath = '', query = ''] = input.path.split('?');
      let segments = splitPath(rawPath);
      if (segments[0] === 'apis' && segments[1] === CUSTOM_METRICS_GROUP) {
        const v = segments[2];
        if (!CUSTOM_METRICS_VERSIONS.includes(v as CustomMetricsVersion)) throw new BadRequestError(`unknown version "${v ?? ''}" of ${CUSTOM_METRICS_GROUP}; use v1beta1 or v1beta2`);
        version = v as CustomMetricsVersion;
        segments = segments.slice(3);
      }
      const parsed = parseCustomMetricPath(segments);
      if (parsed.kind !== 'object') throw new BadRequestError('the path is the discovery document, not a metric read');
      ({ namespace, name, metric } = parsed);
      resourceText = parsed.resource;
      const params = new URLSearchParams(query);
      selectorText = params.get('labelSelector') ?? selectorText;
      metricSelectorText = params.get('metricLabelSelector') ?? metricSelectorText;
    }
    if (!resourceText || !metric) throw new BadRequestError('give a path, or --resource and --metric');
    objectSelector = parseSelectorOrThrow(selectorText, 'labelSelector');
    metricSelector = parseSelectorOrThrow(metricSelectorText, 'metricLabelSelector');
  } catch (err) {
    return fail('bad-request', err);
  }

  // The provider gets exactly what the route would give it.
  const answer = async (): Promise<{ code: number; body: object; values: number }> => {
    try {
      const info = { resource: resourceText!, metric: metric! };
      const values: readonly MetricValue[] =
        name === '*'
          ? await deps.provider.getMetricBySelector(namespace, objectSelector, info, metricSelector)
          : [await deps.provider.getMetricByName({ namespace, name: name! }, info, metricSelector)];
      return { code: 200, body: encodeMetricValueList(version, values), values: values.length };
    } catch (err) {
      const status = toStatus(err);
      return { code: status.code, body: status, values: 0 };
    }
  };

  // 1. Resource.
  const resolver = deps.resources();
  const resource = resolver.resolve(resourceText);
  if (!resource) {
    const known = (resolver.resources ?? []).flatMap((r) => [groupResourceString(r)]);
    const candidates = closest(resourceText, known, 5);
    const response = await answer();
    return {
      request: request(),
      resolved: false,
      failure: 'unknown-resource',
      summary: `"${resourceText}" is not a known resource${candidates.length ? `; did you mean ${candidates.join(', ')}?` : ''}`,
      resource: { text: resourceText, resolved: null, note: 'not a known resource (plural, singular or kind, optionally with .group)', candidates },
      response: { code: response.code, body: response.body },
    };
  }
  const resourceOut: NonNullable<Explanation['resource']> = {
    text: resourceText,
    resolved: { group: resource.group, resource: resource.resource, kind: resource.kind, namespaced: resource.namespaced },
    note: `resolved to ${groupResourceString(resource)} (kind ${resource.kind}, ${resource.namespaced ? 'namespaced' : 'cluster-scoped'})`,
  };

  // 2. Rule.
  const registry = deps.registry();
  const entry = registry.lookup(resource.group, resource.resource, metric);
  const disc = deps.discovery?.();
  const discovered = disc && entry ? disc.custom.includes(entry.rule) : null;
  const discoveryOut: Explanation['discovery'] = disc
    ? {
        lastSuccess: disc.lastSuccess?.toISOString() ?? null,
        metrics: disc.custom.length,
        discovered: entry ? discovered : disc.custom.some((r) => r.metric === metric),
        note: disc.lastSuccess === null
          ? 'series discovery has not succeeded yet: metrics of prometheus-adapter rules are unknown until it does'
          : entry
            ? discovered
              ? `discovered from Prometheus series by ${entry.rule.origin}`
              : 'served by a native rule, not by discovery'
            : `no series found by discovery names ${metric} for ${groupResourceString(resource)} (last successful relist ${disc.lastSuccess.toISOString()})`,
      }
    : undefined;
  if (!entry) {
    const registered = registry.all().filter((r) => r.resource.group === resource.group && r.resource.resource === resource.resource).map((r) => r.rule.metric);
    const near = closest(metric, registered, 5);
    const elsewhere = registry.all().filter((r) => r.rule.metric === metric).map((r) => groupResourceString(r.resource));
    const response = await answer();
    return {
      request: request(),
      resolved: false,
      failure: 'no-rule',
      summary:
        `no rule serves ${metric} for ${groupResourceString(resource)}` +
        (elsewhere.length ? `; it is served for ${elsewhere.join(', ')}` : '') +
        (near.length ? `; closest names: ${near.join(', ')}` : ''),
      resource: resourceOut,
      rule: {
        found: false,
        note: `no rule (native or discovered) registers ${metric} for ${groupResourceString(resource)}`,
        registeredForResource: registered,
        closest: near,
      },
      ...(discoveryOut ? { discovery: discoveryOut } : {}),
      response: { code: response.code, body: response.body },
    };
  }
  const { rule } = entry;
  const ruleOut: NonNullable<Explanation['rule']> = {
    found: true,
    origin: rule.origin,
    matchedBy: `metric name ${rule.metric} and resource "${rule.resource}" (resolved to ${groupResourceString(resource)})`,
    objectLabel: rule.objectLabel,
    namespaceLabel: rule.namespaceLabel,
    queryScope: rule.queryScope,
    ...(discovered !== null ? { fromDiscovery: discovered } : {}),
  };
  const base = { request: request(), resource: resourceOut, rule: ruleOut, ...(discoveryOut ? { discovery: discoveryOut } : {}) };

  // 3. Objects.
  const ns = resource.namespaced ? namespace : null;
  if (resource.namespaced && ns === null) {
    const response = await answer();
    return { ...base, resolved: false, failure: 'bad-request', summary: `${resource.resource} are namespaced: give a namespace`, response };
  }
  let names: readonly string[];
  let objectsOut: NonNullable<Explanation['objects']>;
  const where = ns !== null ? ` in namespace ${ns}` : '';
  // An object cache that has not synced (or a kube-state-metrics query that failed) is an answer too, not a crash.
  const list = async (selector: Selector): Promise<readonly string[] | { error: unknown }> => {
    try {
      return await objectNames(deps.objects, resource, ns, selector);
    } catch (err) {
      return { error: err };
    }
  };
  const unavailable = (error: unknown): Explanation => ({
    ...fail('objects-unavailable', error),
    ...base,
    summary: `the objects could not be listed: ${toStatus(error).message}`,
  });
  if (name === '*') {
    const listed = await list(objectSelector);
    if ('error' in listed) return unavailable(listed.error);
    names = listed;
    if (names.length === 0) {
      const everything = await list([]);
      if ('error' in everything) return unavailable(everything.error);
      const all = everything;
      objectsOut = {
        namespace: ns,
        selector: selectorToString(objectSelector),
        matched: [],
        inNamespace: all.length,
        note: `no ${groupResourceString(resource)}${where} match ${objectSelector.length ? `labelSelector ${selectorToString(objectSelector)}` : 'the request'} ` +
          `(${all.length} exist${where} at all${all.length ? `: ${all.slice(0, MAX_LISTED).join(', ')}` : ''})`,
      };
      const response = await answer();
      return {
        ...base,
        resolved: false,
        failure: 'no-object',
        summary: objectsOut.note + '; the answer is an empty list and no query is sent',
        objects: objectsOut,
        query: { promql: null, note: 'not sent: no object to ask about' },
        response: { code: response.code, body: response.body },
      };
    }
    objectsOut = { namespace: ns, selector: selectorToString(objectSelector), matched: names, note: `${names.length} ${groupResourceString(resource)}${where} match` };
  } else {
    names = [name!];
    const known = resource.resource === 'namespaces' ? null : await list([]);
    if (known && 'error' in known) return unavailable(known.error);
    const exists = known === null || known.includes(name!);
    objectsOut = {
      namespace: ns,
      selector: '',
      matched: names,
      note: exists ? `asked for by name` : `asked for by name; the object source does not know ${name}${where} (the answer still comes from the samples)`,
    };
  }

  // 4. Query, with the same target the provider uses.
  const target = queryTargetOf(entry, ns, names, name === '*' ? 'selector' : 'name', metricSelector);
  let promql: string;
  try {
    promql = renderRuleQuery(rule, target);
  } catch (err) {
    const response = await answer();
    return { ...base, resolved: false, failure: 'bad-request', summary: (err as Error).message, objects: objectsOut, query: { promql: null, note: (err as Error).message }, response };
  }
  let result: EngineResult;
  try {
    result = await (deps.engineFor?.(rule) ?? deps.engine).query(promql, rule.origin);
  } catch (err) {
    const message = err instanceof AdapterError ? err.withContext(`rule ${rule.origin}`).message : (err as Error).message;
    const response = await answer();
    return {
      ...base,
      resolved: false,
      failure: 'query-failed',
      summary: `the query failed: ${message}`,
      objects: objectsOut,
      query: { promql },
      prometheus: { error: message },
      response: { code: response.code, body: response.body },
    };
  }
  const samples = result.samples.map((s) => ({ labels: s.labels, value: String(s.value), timestamp: s.timestamp }));

  // 5. Per object: why it has a value or not.
  const perObject = names.map((n) => verdict(rule, result, n, ns));
  const response = await answer();
  const ok = response.code === 200 && response.values > 0;
  const missing = perObject.filter((v) => !v.ok);
  const failure: Explanation['failure'] = ok ? null : response.code !== 200 && missing.length === 0 ? 'response-error' : 'no-sample';
  return {
    ...base,
    resolved: ok,
    failure,
    summary: ok
      ? `${response.values} of ${names.length} object(s) have a value${missing.length ? `; without: ${missing.map((m) => m.name).join(', ')}` : ''}`
      : missing.length
        ? missing.map((m) => `${m.name}: ${m.reason}`).join('; ')
        : `the answer is ${response.code}`,
    objects: objectsOut,
    query: { promql },
    prometheus: { evaluatedAt: result.evaluatedAt, source: result.source, samples, warnings: result.warnings },
    perObject,
    response: { code: response.code, body: response.body },
  };
}

function parseSelectorOrThrow(text: string, what: string): Selector {
  try {
    return parseSelector(text || undefined);
  } catch (err) {
    if (err instanceof SelectorParseError) throw new BadRequestError(`invalid ${what}: ${err.message}`);
    throw err;
  }
}

/** Mirrors the provider's join rules (object label, namespace label, finite values) and says which one dropped the object. */
function verdict(rule: MetricRule, result: EngineResult, name: string, namespace: string | null): ObjectVerdict {
  const forName = result.samples.filter((s) => s.labels[rule.objectLabel] === name);
  const inNamespace = forName.filter((s) => namespace === null || !(rule.namespaceLabel in s.labels) || s.labels[rule.namespaceLabel] === namespace);
  const finite = inNamespace.filter((s) => Number.isFinite(s.value));
  const last = finite[finite.length - 1];
  if (last) return { name, ok: true, value: String(last.value), reason: `sample with ${rule.objectLabel}="${name}"` };
  if (inNamespace.length > 0) {
    return { name, ok: false, value: String(inNamespace[0]!.value), reason: `the sample with ${rule.objectLabel}="${name}" is ${String(inNamespace[0]!.value)}, which is never served` };
  }
  if (forName.length > 0) {
    const other = [...new Set(forName.map((s) => s.labels[rule.namespaceLabel]))].join(', ');
    return { name, ok: false, reason: `samples with ${rule.objectLabel}="${name}" carry ${rule.namespaceLabel}=${other}, not ${namespace}` };
  }
  const carried = [...new Set(result.samples.map((s) => s.labels[rule.objectLabel]).filter((v): v is string => v !== undefined))];
  const unlabelled = result.samples.filter((s) => s.labels[rule.objectLabel] === undefined).length;
  const detail =
    result.samples.length === 0
      ? 'the query returned no samples at all'
      : `the samples carry ${rule.objectLabel}=${carried.length ? carried.slice(0, MAX_LISTED).join(', ') + (carried.length > MAX_LISTED ? ', ...' : '') : '(none)'}` +
        (unlabelled ? `; ${unlabelled} sample(s) have no ${rule.objectLabel} label (does the query keep it, e.g. sum by (<<.GroupBy>>)?)` : '');
  return { name, ok: false, reason: `no sample with ${rule.objectLabel}="${name}": ${detail}` };
}

/** Names within a small edit distance, or sharing a prefix/substring, nearest first. */
function closest(wanted: string, names: readonly string[], max: number): string[] {
  const scored = [...new Set(names)]
    .map((n) => ({ n, d: n.includes(wanted) || wanted.includes(n) ? 0 : levenshtein(wanted, n) }))
    .filter(({ n, d }) => d <= Math.max(2, Math.floor(Math.max(wanted.length, n.length) / 3)));
  return scored.sort((a, b) => a.d - b.d || a.n.localeCompare(b.n)).slice(0, max).map(({ n }) => n);
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The report `explain` prints. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  const r = e.request;
  const path =
    r.resource && r.metric
      ? `/apis/${CUSTOM_METRICS_GROUP}/${r.version}/${r.namespace !== null && r.resource !== 'namespaces' ? `namespaces/${r.namespace}/` : ''}${r.resource}/${r.name ?? '*'}/${r.metric}`
      : (r.path ?? '(none)');
  lines.push(`request:   GET ${path}${r.selector ? ` labelSelector=${r.selector}` : ''}${r.metricSelector ? ` metricLabelSelector=${r.metricSelector}` : ''}`);
  lines.push(`verdict:   ${e.resolved ? 'RESOLVES' : `DOES NOT RESOLVE (${e.failure})`}: ${e.summary}`);
  if (e.resource) {
    lines.push(`resource:  ${e.resource.note}`);
    if (e.resource.candidates?.length) lines.push(`           candidates: ${e.resource.candidates.join(', ')}`);
  }
  if (e.rule) {
    if (e.rule.found) lines.push(`rule:      ${e.rule.origin}`, `           matched by ${e.rule.matchedBy}; object label ${e.rule.objectLabel}, namespace label ${e.rule.namespaceLabel}, query scope ${e.rule.queryScope}`);
    else {
      lines.push(`rule:      none: ${e.rule.note}`);
      lines.push(`           registered for this resource: ${e.rule.registeredForResource?.length ? e.rule.registeredForResource.join(', ') : '(none)'}`);
      if (e.rule.closest?.length) lines.push(`           closest names: ${e.rule.closest.join(', ')}`);
    }
  }
  if (e.discovery) lines.push(`discovery: ${e.discovery.note} (${e.discovery.metrics} discovered metrics)`);
  if (e.objects) lines.push(`objects:   ${e.objects.note}${e.objects.matched.length ? `: ${e.objects.matched.slice(0, MAX_LISTED).join(', ')}` : ''}`);
  if (e.query) lines.push(`promql:    ${e.query.promql ?? `(${e.query.note ?? 'none'})`}`);
  if (e.prometheus) {
    if (e.prometheus.error) lines.push(`result:    error: ${e.prometheus.error}`);
    else {
      const samples = e.prometheus.samples ?? [];
      lines.push(`result:    ${samples.length} sample(s) at ${e.prometheus.evaluatedAt} (${e.prometheus.source})`);
      for (const s of samples.slice(0, 50)) lines.push(`           {${Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(', ')}} ${s.value} @${s.timestamp}`);
      for (const w of e.prometheus.warnings ?? []) lines.push(`           warning: ${w}`);
    }
  }
  if (e.perObject) {
    lines.push('per object:');
    for (const o of e.perObject) lines.push(`  ${o.ok ? 'ok  ' : 'MISS'} ${o.name}: ${o.ok ? `${o.value} (${o.reason})` : o.reason}`);
  }
  lines.push(`response:  ${e.response.code}`);
  lines.push(...JSON.stringify(e.response.body, null, 2).split('\n').map((l) => `  ${l}`));
  return lines.join('\n');
}
