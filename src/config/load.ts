import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isMap, isScalar } from 'yaml';
import { ConfigError } from '../errors.ts';
import { compileTemplate, TemplateError } from '../rules/template.ts';
import { WELL_KNOWN_RESOURCES, parseGroupResource } from '../rules/well-known-resources.ts';
import { parsePrometheusDuration } from './duration.ts';
import { ADAPTER_TOP_LEVEL_KEYS, parseAdapterConfig } from './adapter-format.ts';
import type { BackendConfig, MetricRule, RuleFile } from './model.ts';
import { nativeRuleFileSchema } from './native-schema.ts';

export const QUERY_TEMPLATE_FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice', 'Window'];

interface NativeMetric {
  name: string;
  description?: string;
  resource: string;
  query: string;
  windows?: string[];
  objectLabel?: string;
  namespaceLabel?: string;
  series?: string;
  queryScope?: 'namespace' | 'objects';
  backend?: string;
  noData?: ValuePolicy;
  nan?: ValuePolicy;
  inf?: ValuePolicy;
  fallback?: number;
  cacheTtl?: string;
  maxSampleAge?: string;
}

type ValuePolicy = 'error' | 'zero' | 'fallback';

/** Parameters the client sets itself; a backend's queryParams must not fight over them. */
const RESERVED_QUERY_PARAMS = ['query', 'time', 'timeout', 'match[]', 'start', 'end'];

const ajv = new Ajv({ allErrors: true, strict: true });
const validateNative = ajv.compile(nativeRuleFileSchema);

export async function loadRuleFile(file: string): Promise<RuleFile> {
  return parseRuleFile(file, await readRuleFileText(file));
}

export async function readRuleFileText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
}

/** A rule file loaded with its invalid rules left out; each skipped rule has one message per problem. */
export interface PartialRuleFile {
  readonly ruleFile: RuleFile;
  readonly skipped: readonly string[];
}

/**
 * Parses and validates a rule file, native (`metrics:`) or prometheus-adapter's format (`rules`,
 * `externalRules`, `resourceRules`); every problem found is reported at once, each with its place.
 */
export function parseRuleFile(file: string, text: string): RuleFile;
/**
 * For reloads: a file that does not parse or fails the schema still throws, but a rule with a bad template,
 * regex, window or a duplicate name is left out and reported in `skipped`, so one typo does not keep the
 * rest of an update from serving. Start-up stays strict.
 */
export function parseRuleFile(file: string, text: string, options: { skipInvalidRules: true }): PartialRuleFile;
export function parseRuleFile(file: string, text: string, options?: { skipInvalidRules: true }): RuleFile | PartialRuleFile {
  const skip = options?.skipInvalidRules === true;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        return `${at ? `line ${at.line}, column ${at.col}: ` : ''}${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
    );
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new ConfigError(file, [
      'the file is empty: expected a `metrics:` list, or prometheus-adapter\'s `rules`, `externalRules` or `resourceRules`',
    ]);
  }
  const lineOf = (path: (string | number)[]): string => {
    let node: { range?: [number, number, number] | null } | null | undefined;
    const last = path[path.length - 1];
    if (typeof last === 'string') {
      // A key's own line: for `overides:` followed by a nested map, the value starts a line later.
      const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
      if (isMap(parent)) node = parent.items.find((pair) => (isScalar(pair.key) ? pair.key.value : pair.key) === last)?.key as typeof node;
    }
    node ??= doc.getIn(path, true) as typeof node;
    const offset = node?.range?.[0];
    return offset === undefined ? '' : `line ${lines.linePos(offset).line}: `;
  };
  const adapterKeys = isMap(doc.contents) ? ADAPTER_TOP_LEVEL_KEYS.filter((k) => doc.has(k)) : [];
  if (adapterKeys.length > 0) {
    if (doc.has('metrics')) {
      throw new ConfigError(file, [
        `${lineOf(['metrics'])}top level: the native \`metrics:\` list cannot be mixed with prometheus-adapter's ${adapterKeys.map((k) => `\`${k}\``).join(', ')} in one file; use one format per file`,
      ]);
    }
    const { seriesRules, resourceRules, skipped } = parseAdapterConfig(file, data, lineOf, { skipInvalidRules: skip });
    const ruleFile: RuleFile = { file, metrics: [], seriesRules, resourceRules };
    return skip ? { ruleFile, skipped } : ruleFile;
  }
  if (!validateNative(data)) {
    throw new ConfigError(file, (validateNative.errors ?? []).map((e) => describeSchemaError(e, data, lineOf)));
  }
  const metrics = (data as { metrics: NativeMetric[] }).metrics;
  const backends = parseBackends(file, (data as { backends?: Record<string, BackendConfig> }).backends, lineOf);
  const problems: string[] = [];
  const rules: MetricRule[] = [];
  const seen = new Map<string, string>();
  metrics.forEach((m, index) => {
    const where = `${lineOf(['metrics', index])}metrics[${index}] (${m.name})`;
    // Problems with one key point at that key's line rather than the rule's.
    const whereKey = (key: string): string => `${lineOf(['metrics', index, key])}metrics[${index}] (${m.name})`;
    const problemsBefore = problems.length;
    const mine: MetricRule[] = [];
    const mineSeen = new Map<string, string>();
    let query;
    try {
      query = compileTemplate(m.query, QUERY_TEMPLATE_FIELDS);
    } catch (err) {
      if (err instanceof TemplateError) {
        problems.push(`${where}: query: ${err.message}`);
        return;
      }
      throw err;
    }
    if (m.backend !== undefined && !(backends && Object.hasOwn(backends, m.backend))) {
      const known = backends ? Object.keys(backends) : [];
      problems.push(
        `${whereKey('backend')}: backend: unknown backend "${m.backend}"; ` +
          (known.length ? `the file's backends are ${known.join(', ')}` : 'the file has no `backends:`'),
      );
      return;
    }
    const substitute: { noData?: number; nan?: number; inf?: number } = {};
    const policies = (['noData', 'nan', 'inf'] as const).filter((k) => m[k] !== undefined && m[k] !== 'error');
    const fallbackUsers = policies.filter((k) => m[k] === 'fallback');
    if (fallbackUsers.length > 0 && m.fallback === undefined) {
      problems.push(`${whereKey(fallbackUsers[0]!)}: fallback: required by ${fallbackUsers.map((k) => `${k}: fallback`).join(', ')}`);
      return;
    }
    if (m.fallback !== undefined && !Number.isFinite(m.fallback)) {
      problems.push(`${whereKey('fallback')}: fallback: must be a finite number, not ${String(m.fallback)}`);
      return;
    }
    if (m.fallback !== undefined && fallbackUsers.length === 0) {
      problems.push(`${whereKey('fallback')}: fallback: set, but none of noData, nan, inf is \`fallback\``);
      return;
    }
    for (const k of policies) substitute[k] = m[k] === 'zero' ? 0 : m.fallback!;
    const cacheTtlSeconds = m.cacheTtl === undefined ? undefined : parsePrometheusDuration(m.cacheTtl);
    if (cacheTtlSeconds === null) {
      problems.push(`${whereKey('cacheTtl')}: cacheTtl: "${m.cacheTtl}" is not a duration`);
      return;
    }
    const maxSampleAgeSeconds = m.maxSampleAge === undefined ? undefined : parsePrometheusDuration(m.maxSampleAge);
    if (maxSampleAgeSeconds === null || (maxSampleAgeSeconds !== undefined && !m.series)) {
      problems.push(
        `${whereKey('maxSampleAge')}: maxSampleAge: ${maxSampleAgeSeconds === null ? `"${m.maxSampleAge}" is not a duration` : 'needs `series:`, the raw metric whose newest sample must be recent enough'}`,
      );
      return;
    }
    const objectLabel = m.objectLabel ?? defaultObjectLabel(m.resource);
    if (objectLabel === null) {
      problems.push(
        `${where}: objectLabel: cannot derive the Prometheus label for resource "${m.resource}"; set objectLabel to the label that holds the object's name`,
      );
      return;
    }
    const windows: (string | null)[] = m.windows ?? [null];
    for (const windowText of windows) {
      const metric = windowText === null ? m.name : metricNameForWindow(m.name, windowText);
      const seconds = windowText === null ? null : parsePrometheusDuration(windowText);
      if (windowText !== null && (seconds === null || !Number.isInteger(seconds) || seconds <= 0)) {
        problems.push(`${where}: windows: "${windowText}" must be a whole number of seconds, e.g. 30s, 1m, 5m`);
        continue;
      }
      if (windowText === null && m.name.includes('{window}')) {
        problems.push(`${where}: name: contains {window} but the rule has no windows`);
        continue;
      }
      const key = `${m.resource}/${metric}`;
      const previous = seen.get(key) ?? mineSeen.get(key);
      if (previous) {
        problems.push(`${where}: name: metric "${metric}" for ${m.resource} is already defined by ${previous}`);
        continue;
      }
      mineSeen.set(key, `metrics[${index}]`);
      mine.push({
        metric,
        origin: `${file} metrics[${index}] (${metric})`,
        resource: m.resource,
        objectLabel,
        namespaceLabel: m.namespaceLabel ?? 'namespace',
        query,
        series: m.series ?? '',
        window: windowText === null ? null : { text: windowText, seconds: seconds! },
        queryScope: m.queryScope ?? 'namespace',
        ...(m.description !== undefined ? { description: m.description } : {}),
        ...(m.backend !== undefined ? { backend: m.backend } : {}),
        ...(policies.length > 0 ? { substitute } : {}),
        ...(cacheTtlSeconds !== undefined ? { cacheTtlMs: Math.round(cacheTtlSeconds * 1000) } : {}),
        ...(maxSampleAgeSeconds !== undefined
          ? { maxSampleAgeSeconds, freshnessQuery: compileTemplate('max by (<<.GroupBy>>) (timestamp(<<.Series>>{<<.LabelMatchers>>}))', QUERY_TEMPLATE_FIELDS) }
          : {}),
      });
    }
    // When skipping, a rule is served whole or not at all (not some of its windows), and a skipped rule's
    // names stay free for a later rule.
    if (skip && problems.length > problemsBefore) return;
    for (const [key, owner] of mineSeen) seen.set(key, owner);
    rules.push(...mine);
  });
  const ruleFile: RuleFile = { file, metrics: rules, seriesRules: [], resourceRules: null, ...(backends ? { backends } : {}) };
  if (skip) return { ruleFile, skipped: problems };
  if (problems.length > 0) throw new ConfigError(file, problems);
  return ruleFile;
}

/**
 * Checks what the schema cannot and makes file paths absolute. A broken backend fails the whole file, also on
 * reload: the rules that use it could not be served anyway.
 */
function parseBackends(
  file: string,
  raw: Record<string, BackendConfig> | undefined,
  lineOf: (p: (string | number)[]) => string,
): Record<string, BackendConfig> | undefined {
  if (raw === undefined) return undefined;
  const dir = path.dirname(path.resolve(file));
  const abs = (p: string): string => path.resolve(dir, p);
  const problems: string[] = [];
  const out: Record<string, BackendConfig> = {};
  for (const [name, b] of Object.entries(raw)) {
    const where = (...key: string[]): string => `${lineOf(['backends', name, ...key])}backends.${[name, ...key].join('.')}`;
    try {
      new URL(b.url);
    } catch {
      problems.push(`${where('url')}: "${b.url}" is not a valid URL`);
    }
    if (b.bearerTokenFile !== undefined && b.basicAuth !== undefined) {
      problems.push(`${where('basicAuth')}: use either bearerTokenFile or basicAuth, not both (each sets the Authorization header)`);
    }
    if (b.tls && (b.tls.certFile === undefined) !== (b.tls.keyFile === undefined)) {
      problems.push(`${where('tls')}: certFile and keyFile must be given together`);
    }
    for (const key of Object.keys(b.queryParams ?? {})) {
      if (RESERVED_QUERY_PARAMS.includes(key)) problems.push(`${where('queryParams', key)}: "${key}" is set by the adapter itself`);
    }
    out[name] = {
      url: b.url,
      ...(b.bearerTokenFile !== undefined ? { bearerTokenFile: abs(b.bearerTokenFile) } : {}),
      ...(b.basicAuth ? { basicAuth: { username: b.basicAuth.username, passwordFile: abs(b.basicAuth.passwordFile) } } : {}),
      ...(b.tls
        ? {
            tls: {
              ...(b.tls.caFile !== undefined ? { caFile: abs(b.tls.caFile) } : {}),
              ...(b.tls.certFile !== undefined ? { certFile: abs(b.tls.certFile) } : {}),
              ...(b.tls.keyFile !== undefined ? { keyFile: abs(b.tls.keyFile) } : {}),
              ...(b.tls.insecureSkipVerify === true ? { insecureSkipVerify: true } : {}),
            },
          }
        : {}),
      ...(b.headers ? { headers: { ...b.headers } } : {}),
      ...(b.queryParams ? { queryParams: { ...b.queryParams } } : {}),
    };
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return out;
}

export function metricNameForWindow(name: string, window: string): string {
  return name.includes('{window}') ? name.replaceAll('{window}', window) : `${name}_${window}`;
}

/** The singular resource name, which is what kube-state-metrics and cAdvisor call the label. */
function defaultObjectLabel(resource: string): string | null {
  const { group, resource: name } = parseGroupResource(resource.toLowerCase());
  const known = WELL_KNOWN_RESOURCES.find(
    (r) => (r.resource === name || r.singular === name || r.kind.toLowerCase() === name) && (group === '' || r.group === group),
  );
  return known ? known.singular : null;
}

function describeSchemaError(e: ErrorObject, data: unknown, lineOf: (p: (string | number)[]) => string): string {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s.replaceAll('~1', '/').replaceAll('~0', '~')));
  let where = '';
  if (path[0] === 'metrics' && typeof path[1] === 'number') {
    const name = ((data as { metrics: { name?: unknown }[] }).metrics[path[1]] ?? {}).name;
    where = `metrics[${path[1]}]${typeof name === 'string' ? ` (${name})` : ''}`;
    const rest = path.slice(2).map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
    if (rest) where += `: ${rest.replace(/^\./, '')}`;
  } else {
    where = path.length ? path.join('.') : 'top level';
  }
  let what = e.message ?? 'is invalid';
  if (e.keyword === 'additionalProperties') {
    what = `unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  } else if (e.keyword === 'required') {
    what = `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`;
  } else if (e.keyword === 'enum') {
    what = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  }
  return `${lineOf(path)}${where}: ${what}`;
}
