import { Option, type Command } from 'commander';
import { pino } from 'pino';
import { createLogger } from '../logging.ts';
import { formatExplanation, type ExplainRequest } from '../providers/explain.ts';
import { startServer } from '../server.ts';
import { addServeFlags, toServeOptions } from './serve-options.ts';

/** 0: the metric resolves with at least one value; 1: it does not (or the adapter could not be wired). */
export const EXPLAIN_RESOLVED = 0;
export const EXPLAIN_UNRESOLVED = 1;

/** `explain [path]`: the serve flags reach Prometheus and the objects; these say which read to explain. */
export function addExplainCommand(program: Command): void {
  const cmd = program
    .command('explain')
    .description(
      'show how one custom-metrics read resolves: the rule, the PromQL, the raw Prometheus result, the objects, and the MetricValueList ' +
        '(or why not). Takes the serve flags (--config, --prometheus-url, --kubeconfig, --object-source, ...). Exit code: 0 at least one value, 1 otherwise',
    )
    .argument('[path]', 'metric path, e.g. /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu?labelSelector=app%3Dweb');
  addServeFlags(cmd)
    .addOption(new Option('--resource <resource>', 'resource of the read (instead of a path), e.g. pods or deployments.apps'))
    .addOption(new Option('--namespace <namespace>', 'namespace of the read'))
    .addOption(new Option('--name <name>', 'object name; * (default) selects by --selector').default('*'))
    .addOption(new Option('--selector <selector>', 'labelSelector of the objects'))
    .addOption(new Option('--metric-selector <selector>', 'metricLabelSelector'))
    .addOption(new Option('--metric <metric>', 'metric name'))
    .addOption(new Option('--api-version <version>', 'custom.metrics.k8s.io version').choices(['v1beta1', 'v1beta2']).default('v1beta2'))
    .addOption(new Option('--output <format>', 'report format').choices(['text', 'json']).default('text'))
    .action(async (path: string | undefined, flags: Record<string, unknown>) => {
      process.exitCode = await runExplain(path, flags);
    });
}

async function runExplain(path: string | undefined, flags: Record<string, unknown>): Promise<number> {
  const str = (k: string): string | undefined => (typeof flags[k] === 'string' ? (flags[k] as string) : undefined);
  if (!path && (!str('resource') || !str('metric'))) {
    process.stderr.write('explain: give a metric path, or --resource and --metric\n');
    return EXPLAIN_UNRESOLVED;
  }
  // The server's own wiring, so the answer is the server's; it listens only on a loopback port no one is told about.
  const options = { ...toServeOptions(flags), bindAddress: '127.0.0.1', securePort: 0, insecureDisableAuth: true, metricsBindAddress: '' };
  // Start-up chatter would bury the report; warnings (Prometheus down, discovery failed) still matter.
  const log =
    options.verbosity > 0
      ? createLogger(options.verbosity)
      : pino(
          {
            level: 'warn',
            hooks: {
              // The auth-off warning is about the loopback listener explain opens for itself, not something to act on.
              logMethod(args, method) {
                if (args.some((a) => typeof a === 'string' && a.startsWith('!!! AUTHENTICATION'))) return;
                method.apply(this, args);
              },
            },
          },
          pino.destination({ dest: 2, sync: true }),
        );
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(options, log);
  } catch (err) {
    process.stderr.write(`explain: cannot wire the adapter: ${(err as Error).message}\n`);
    setTimeout(() => process.exit(EXPLAIN_UNRESOLVED), 1_000).unref();
    return EXPLAIN_UNRESOLVED;
  }
  try {
    const request: ExplainRequest = path
      ? { path, version: flags.apiVersion as 'v1beta1' | 'v1beta2' }
      : {
          resource: str('resource')!,
          metric: str('metric')!,
          namespace: str('namespace') ?? null,
          name: str('name') ?? '*',
          version: flags.apiVersion as 'v1beta1' | 'v1beta2',
          ...(str('selector') !== undefined ? { selector: str('selector')! } : {}),
          ...(str('metricSelector') !== undefined ? { metricSelector: str('metricSelector')! } : {}),
        };
    const explanation = await server.explain(request);
    process.stdout.write(flags.output === 'json' ? `${JSON.stringify(explanation, null, 2)}\n` : `${formatExplanation(explanation)}\n`);
    return explanation.resolved ? EXPLAIN_RESOLVED : EXPLAIN_UNRESOLVED;
  } catch (err) {
    process.stderr.write(`explain: ${(err as Error).message}\n`);
    return EXPLAIN_UNRESOLVED;
  } finally {
    await server.close();
  }
}
