import { Command, CommanderError } from 'commander';
import { createLogger } from '../logging.ts';
import { SHUTDOWN_GRACE_MS } from '../api/app.ts';
import { startServer } from '../server.ts';
import { ConfigError } from '../errors.ts';
import { addServeFlags, toServeOptions } from './serve-options.ts';
import { validateRuleFile } from './validate.ts';
import { addExplainCommand } from './explain.ts';
import { parseGoDuration } from './durations.ts';

const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('prometheus-metrics-adapter')
    .description(
      'Serves the Kubernetes custom metrics API (custom.metrics.k8s.io v1beta1 and v1beta2) from PromQL rules,\n' +
        'as an aggregated API server behind kube-apiserver. A drop-in successor to prometheus-adapter.',
    )
    .version(VERSION, '--version', 'print the version and exit')
    .showHelpAfterError('(run with --help for usage)')
    // Flags after a subcommand (`validate --prometheus-url=...`) belong to the subcommand.
    .enablePositionalOptions();

  // Serving is the program itself, so `--help` lists its flags and manifests written for
  // prometheus-adapter (which pass flags and sometimes the binary path as an argument) work as they are.
  addServeFlags(program.allowExcessArguments(true)).action(async (flags: Record<string, unknown>) => {
    const options = toServeOptions(flags);
    const log = createLogger(options.verbosity);
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(options, log);
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : `cannot start: ${(err as Error).message}`;
      log.fatal(message);
      process.stderr.write(`${message}\n`);
      log.flush();
      process.exitCode = 1;
      // Watches and clients started before the failure (object caches, the authentication ConfigMap) would
      // keep the process alive; the unref'd timer only fires if something does.
      setTimeout(() => process.exit(1), 1_000).unref();
      return;
    }
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, graceSeconds: SHUTDOWN_GRACE_MS / 1000 }, 'shutting down: no new connections; finishing in-flight requests');
      // close() itself gives up on stragglers after the grace period; this only catches a shutdown that hangs.
      const force = setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS + 5_000);
      force.unref();
      server.close().then(
        () => {
          log.flush();
          process.exit(0);
        },
        () => process.exit(1),
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Without a handler SIGHUP would kill the process; the watcher also notices changes, this is the manual nudge.
    process.on('SIGHUP', () => {
      if (stopping) return;
      log.info({ signal: 'SIGHUP', file: options.config }, 'reloading the rule file');
      void server.reloadRules().then((outcome) => log.info({ outcome }, 'rule file reload finished'));
    });
  });
  program
    .command('validate')
    .description('check a rule file offline (schema, templates, regexes, duplicates); with --prometheus-url also run discovery and a sample query per metric. Exit code: 0 valid, 1 invalid file, 2 Prometheus checks failed')
    .argument('<file>', 'rule file, native or prometheus-adapter format')
    .option('--prometheus-url <url>', 'also check the rules against this Prometheus')
    .option('--namespace <namespace>', 'namespace for sample queries of namespaced metrics', 'default')
    .option('--prometheus-timeout <duration>', 'timeout of each Prometheus request', '30s')
    .option('--prometheus-header <name=value>', 'extra header on every Prometheus request (repeatable)', (v: string, prev: Record<string, string>) => {
      const eq = v.indexOf('=');
      return { ...prev, [eq === -1 ? v : v.slice(0, eq)]: eq === -1 ? '' : v.slice(eq + 1) };
    }, {})
    .action(async (file: string, flags: { prometheusUrl?: string; namespace: string; prometheusTimeout: string; prometheusHeader: Record<string, string> }) => {
      process.exitCode = await validateRuleFile({
        file,
        namespace: flags.namespace,
        timeoutMs: parseGoDuration(flags.prometheusTimeout),
        headers: flags.prometheusHeader,
        ...(flags.prometheusUrl ? { prometheusUrl: flags.prometheusUrl } : {}),
        out: (line) => void process.stdout.write(`${line}\n`),
      });
    });
  addExplainCommand(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}
