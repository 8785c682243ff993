import { Ajv, type ErrorObject } from 'ajv';
import { ConfigError } from '../errors.ts';
import { compileGoRegexp, goNumSubexp } from '../rules/go-regexp.ts';
import { compileResourceTemplate } from '../rules/series-naming.ts';
import { compileTemplate, type CompiledTemplate } from '../rules/template.ts';
import { adapterConfigSchema } from './adapter-schema.ts';
import type { ResourceAssociation, ResourceMetricRule, ResourceRules, SeriesRule } from './model.ts';

/** What prometheus-adapter passes to `metricsQuery`, `containerQuery` and `nodeQuery`. */
export const ADAPTER_QUERY_FIELDS = ['Series', 'LabelMatchers', 'LabelValuesByName', 'GroupBy', 'GroupBySlice'];

/** Top-level keys that mark a prometheus-adapter file. */
export const ADAPTER_TOP_LEVEL_KEYS = ['rules', 'externalRules', 'resourceRules'] as const;

type Path = (string | number)[];

interface RawMapping {
  template?: string | null;
  overrides?: Record<string, { group?: string | null; resource: string }> | null;
  namespaced?: boolean | string | null;
}
interface RawRule {
  seriesQuery: string;
  seriesFilters?: { is?: string | null; isNot?: string | null }[] | null;
  resources?: RawMapping | null;
  name?: { matches?: string | null; as?: string | null } | null;
  metricsQuery?: string | null;
}
interface RawResourceRule {
  containerQuery: string;
  nodeQuery: string;
  resources?: RawMapping | null;
  containerLabel: string;
}
interface RawConfig {
  rules?: RawRule[] | null;
  externalRules?: RawRule[] | null;
  resourceRules?: { cpu: RawResourceRule; memory: RawResourceRule; window?: string | number | null } | null;
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(adapterConfigSchema);

// yaml.v2 (YAML 1.1) booleans, which prometheus-adapter accepts for `namespaced`.
const YAML11_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', 'true', 'True', 'TRUE']);
const YAML11_FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'off', 'Off', 'OFF', 'false', 'False', 'FALSE']);

export function pathText(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out || 'top level';
}

/**
 * Prometheus's model.ParseDuration: units largest first, each at most once, `0` alone allowed.
 * Stricter than parsePrometheusDuration on purpose: this is what the reference accepts for `window`.
 */
export function parseModelDuration(text: string): number | null {
  if (text === '0') return 0;
  const m = /^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/.exec(text);
  if (!m || text === '') return null;
  const units = [31536000, 604800, 86400, 3600, 60, 1, 0.001];
  return units.reduce((sum, unit, k) => sum + Number(m[k + 1] ?? 0) * unit, 0);
}

/**
 * Reads a prometheus-adapter config (already parsed from YAML) into the shared model. Everything
 * prometheus-adapter refuses at start-up is refused here, all problems at once, each with its line and
 * path; regexes are Go's syntax and templates use `<< >>`.
 */
export function parseAdapterConfig(
  file: string,
  data: unknown,
  lineOf: (path: Path) => string,
  options: { skipInvalidRules?: boolean } = {},
): { seriesRules: SeriesRule[]; resourceRules: ResourceRules | null; skipped: string[] } {
  const problems: { line: number; text: string }[] = [];
  const report = (path: Path, what: string): void => {
    const at = lineOf(path);
    problems.push({ line: Number(/^line (\d+)/.exec(at)?.[1] ?? Number.MAX_SAFE_INTEGER), text: `${at}${pathText(path)}: ${what}` });
  };

  const schemaValid = validate(data);
  if (!schemaValid) {
    for (const e of validate.errors ?? []) {
      const { path, what } = describeSchemaError(e);
      report(path, what);
    }
  }
  const config = (typeof data === 'object' && data !== null ? data : {}) as RawConfig;

  const seriesRules: SeriesRule[] = [];
  for (const kind of ['rules', 'externalRules'] as const) {
    const list = config[kind];
    if (!Array.isArray(list)) continue;
    list.forEach((raw, index) => {
      const rule = parseDiscoveryRule(file, kind, index, raw, report);
      if (rule) seriesRules.push(rule);
    });
  }

  let resourceRules: ResourceRules | null = null;
  const rr = config.resourceRules;
  if (rr && typeof rr === 'object') {
    const cpu = parseResourceRule(['resourceRules', 'cpu'], rr.cpu, report);
    const memory = parseResourceRule(['resourceRules', 'memory'], rr.memory, report);
    let window: { text: string; seconds: number } | null = { text: '0s', seconds: 0 };
    const rawWindow = rr.window;
    if (rawWindow !== undefined && rawWindow !== null && (typeof rawWindow === 'string' || typeof rawWindow === 'number')) {
      const text = String(rawWindow);
      const seconds = parseModelDuration(text);
      if (seconds === null) {
        report(['resourceRules', 'window'], text === '' ? 'empty duration string' : `"${text}" is not a Prometheus duration (e.g. 5m, 1m30s)`);
        window = null;
      } else {
        window = { text, seconds };
      }
    }
    if (cpu && memory && window) resourceRules = { origin: `${file} resourceRules`, cpu, memory, window };
  }

  problems.sort((a, b) => a.line - b.line);
  // A rule with a problem is never built (each parser returns null), so what is left is safe to serve;
  // a schema failure says the file's shape is wrong, and then nothing in it is trusted.
  if (options.skipInvalidRules && schemaValid) return { seriesRules, resourceRules, skipped: problems.map((p) => p.text) };
  if (problems.length > 0) throw new ConfigError(file, problems.map((p) => p.text));
  return { seriesRules, resourceRules, skipped: [] };
}

type Report = (path: Path, what: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function regex(path: Path, source: string, report: Report): RegExp | null {
  try {
    return compileGoRegexp(source);
  } catch (err) {
    report(path, `invalid regular expression "${source}": ${(err as Error).message}`);
    return null;
  }
}

function template(path: Path, source: string, report: Report): CompiledTemplate | null {
  try {
    return compileTemplate(source, ADAPTER_QUERY_FIELDS);
  } catch (err) {
    report(path, (err as Error).message);
    return null;
  }
}

function parseMapping(path: Path, raw: unknown, report: Report): ResourceAssociation | null {
  const mapping = isObject(raw) ? (raw as RawMapping) : {};
  let ok = true;
  const templateText = str(mapping.template);
  if (templateText !== '') {
    try {
      compileResourceTemplate(templateText);
    } catch (err) {
      report([...path, 'template'], (err as Error).message);
      ok = false;
    }
  }
  const overrides: Record<string, { group?: string; resource: string }> = {};
  if (isObject(mapping.overrides)) {
    for (const [label, target] of Object.entries(mapping.overrides)) {
      if (!isObject(target) || typeof target.resource !== 'string') continue;
      const group = str(target.group);
      overrides[label] = group ? { group, resource: target.resource } : { resource: target.resource };
    }
  }
  let namespaced = true;
  const rawNamespaced = mapping.namespaced;
  if (typeof rawNamespaced === 'boolean') namespaced = rawNamespaced;
  else if (typeof rawNamespaced === 'string') {
    if (YAML11_TRUE.has(rawNamespaced)) namespaced = true;
    else if (YAML11_FALSE.has(rawNamespaced)) namespaced = false;
    else {
      report([...path, 'namespaced'], `must be true or false, not "${rawNamespaced}"`);
      ok = false;
    }
  }
  return ok ? { overrides, template: templateText === '' ? null : templateText, namespaced } : null;
}

function parseDiscoveryRule(
  file: string,
  kind: 'rules' | 'externalRules',
  index: number,
  raw: unknown,
  report: Report,
): SeriesRule | null {
  if (!isObject(raw)) return null;
  const rule = raw as unknown as RawRule;
  const at: Path = [kind, index];
  let ok = typeof rule.seriesQuery === 'string' && rule.seriesQuery !== '';

  const filters: { is?: RegExp; isNot?: RegExp }[] = [];
  if (Array.isArray(rule.seriesFilters)) {
    rule.seriesFilters.forEach((filter, k) => {
      if (!isObject(filter)) return;
      const is = str(filter.is);
      const isNot = str(filter.isNot);
      const where: Path = [...at, 'seriesFilters', k];
      if (is !== '' && isNot !== '') {
        report(where, 'cannot have both an `is` and an `isNot` expression in a single filter');
        ok = false;
      } else if (is === '' && isNot === '') {
        report(where, 'must have either an `is` or an `isNot` expression');
        ok = false;
      } else if (is !== '') {
        const re = regex([...where, 'is'], is, report);
        if (re) filters.push({ is: re });
        else ok = false;
      } else {
        const re = regex([...where, 'isNot'], isNot, report);
        if (re) filters.push({ isNot: re });
        else ok = false;
      }
    });
  }

  const name = isObject(rule.name) ? rule.name : {};
  const matchesText = str(name.matches);
  let matches: RegExp | null = compileGoRegexp('.*');
  let as = str(name.as);
  if (matchesText !== '') {
    matches = regex([...at, 'name', 'matches'], matchesText, report);
    if (matches) filters.unshift({ is: matches });
  }
  if (matches && as === '') {
    const groups = goNumSubexp(matches);
    if (groups === 0) as = '$0';
    else if (groups === 1) as = '$1';
    else {
      report(
        [...at, 'name'],
        `name.as is required: name.matches "${matchesText}" has ${groups} capture groups, so it is not clear which make the metric name (e.g. as: "\${1}_\${2}")`,
      );
      ok = false;
    }
  }
  if (!matches) ok = false;

  const resources = parseMapping([...at, 'resources'], rule.resources, report);
  // An absent metricsQuery loads, as in prometheus-adapter; the empty query fails per request.
  const metricsQuery = template([...at, 'metricsQuery'], str(rule.metricsQuery), report);
  if (!ok || !resources || !metricsQuery || !matches) return null;
  return {
    origin: `${file} ${kind}[${index}]`,
    kind: kind === 'rules' ? 'custom' : 'external',
    seriesQuery: rule.seriesQuery,
    seriesFilters: filters,
    resources,
    name: { matches, as },
    metricsQuery,
  };
}

function parseResourceRule(at: Path, raw: unknown, report: Report): ResourceMetricRule | null {
  if (!isObject(raw)) return null;
  const rule = raw as unknown as RawResourceRule;
  const containerQuery = template([...at, 'containerQuery'], str(rule.containerQuery), report);
  const nodeQuery = template([...at, 'nodeQuery'], str(rule.nodeQuery), report);
  const resources = parseMapping([...at, 'resources'], rule.resources, report);
  if (!containerQuery || !nodeQuery || !resources || typeof rule.containerLabel !== 'string' || rule.containerLabel === '') return null;
  return { containerQuery, nodeQuery, resources, containerLabel: rule.containerLabel };
}

function describeSchemaError(e: ErrorObject): { path: Path; what: string } {
  const path: Path = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s.replaceAll('~1', '/').replaceAll('~0', '~')));
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      return { path: [...path, key], what: `unknown key "${key}"` };
    }
    case 'required':
      return { path, what: `missing required key "${(e.params as { missingProperty: string }).missingProperty}"` };
    case 'type': {
      const types = String((e.params as { type: string | string[] }).type)
        .split(',')
        .filter((t) => t !== 'null');
      const words: Record<string, string> = { object: 'a map', array: 'a list', string: 'a string', boolean: 'true or false', integer: 'a number' };
      return { path, what: `must be ${types.map((t) => words[t] ?? t).join(' or ')}` };
    }
    case 'minLength':
      return { path, what: 'must not be empty' };
    default:
      return { path, what: e.message ?? 'is invalid' };
  }
}
