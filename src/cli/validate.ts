import { pino } from 'pino';
import { loadRuleFile } from '../config/load.ts';
import type { MetricRule, RuleFile } from '../config/model.ts';
import { ConfigError } from '../errors.ts';
import { ResourceMapper } from '../kubernetes/resource-mapper.ts';
import { PrometheusHttpClient } from '../prometheus/http-client.ts';
import { SeriesDiscovery } from '../prometheus/series-discovery.ts';
import { MetricRegistry } from '../rules/registry.ts';
import { renderRuleQuery } from '../rules/render-query.ts';

/** Exit codes, for CI: 0 all good, 1 the file is invalid, 2 the file is valid but Prometheus checks failed. */
export const VALIDATE_OK = 0;
export const VALIDATE_INVALID = 1;
export const VALIDATE_BACKEND_FAILED = 2;

export interface ValidateOptions {
  readonly file: string;
  readonly prometheusUrl?: string;
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly out: (line: string) => void;
}

/**
 * Checks a rule file offline (schema, templates, regexes, duplicate names, resources known to
 * Kubernetes), and with a Prometheus URL also runs each discovery query and one sample query per
 * metric, so a CI job can reject a rule file before it reaches a cluster.
 */
export async function validateRuleFile(options: ValidateOptions): Promise<number> {
  const { out } = options;
  let ruleFile: RuleFile;
  try {
    ruleFile = await loadRuleFile(options.file);
  } catch (err) {
    if (err instanceof ConfigError) {
      out(err.message);
      return VALIDATE_INVALID;
    }
    throw err;
  }
  const mapper = ResourceMapper.wellKnown();
  const registry = new MetricRegistry(ruleFile.metrics, mapper);
  out(`${options.file}: valid (${ruleFile.metrics.length} metrics, ${ruleFile.seriesRules.length} discovery rules${ruleFile.resourceRules ? ', resource rules' : ''})`);
  for (const problem of registry.problems) out(`  warning: ${problem}`);
  if (!options.prometheusUrl) return VALIDATE_OK;

  const client = new PrometheusHttpClient({ url: options.prometheusUrl, timeoutMs: options.timeoutMs, verb: 'GET', headers: options.headers });
  let failed = false;
  const now = Math.floor(Date.now() / 1000);
  const sample = async (rule: MetricRule, namespaced: boolean): Promise<void> => {
    // A metric about a namespace is always asked for one namespace, by name.
    const aboutNamespace = rule.resource === 'namespaces';
    const query = renderRuleQuery(rule, {
      namespace: namespaced ? options.namespace : null,
      names: aboutNamespace ? [options.namespace] : null,
      metricSelector: [],
    });
    try {
      const result = await client.query(query, now);
      const finite = result.samples.filter((s) => Number.isFinite(s.value)).length;
      const labelled = result.samples.filter((s) => s.labels[rule.objectLabel] !== undefined).length;
      const note = result.samples.length === 0
        ? 'no samples (nothing to serve right now)'
        : `${result.samples.length} samples, ${labelled} carry the object label "${rule.objectLabel}", ${finite} finite`;
      if (result.samples.length > 0 && labelled === 0) failed = true;
      out(`  ${labelled === 0 && result.samples.length > 0 ? 'FAIL' : 'ok  '} ${rule.metric} (${rule.resource}): ${note}`);
    } catch (err) {
      failed = true;
      out(`  FAIL ${rule.metric} (${rule.resource}): ${(err as Error).message}`);
    }
  };
  out(`sample queries against ${client.displayUrl}${options.namespace ? ` (namespace ${options.namespace})` : ''}:`);
  for (const { rule, resource } of registry.all()) await sample(rule, resource.namespaced);
  if (ruleFile.seriesRules.length > 0) {
    const discovery = new SeriesDiscovery({
      client,
      rules: ruleFile.seriesRules,
      resolver: () => mapper,
      relistIntervalMs: 600_000,
      maxAgeMs: 600_000,
      log: pino({ level: 'silent' }),
    });
    const result = await discovery.runOnce();
    out('series discovery:');
    for (const q of result.perQuery) {
      if (!q.ok) failed = true;
      out(`  ${q.ok ? 'ok  ' : 'FAIL'} ${q.query}: ${q.ok ? `${q.series} series` : q.error}`);
    }
    for (const problem of result.problems) out(`  warning: ${problem}`);
    out(`  ${result.custom.length} custom and ${result.external.length} external metrics discovered`);
    const discovered = new MetricRegistry(result.custom, mapper);
    for (const { rule, resource } of discovered.all().slice(0, 50)) await sample(rule, resource.namespaced);
  }
  return failed ? VALIDATE_BACKEND_FAILED : VALIDATE_OK;
}
