import { pino, type Logger } from 'pino';

/** Structured JSON logs; `--v` maps Kubernetes-style verbosity onto log levels. */
export function createLogger(verbosity: number, destination?: NodeJS.WritableStream): Logger {
  const level = verbosity >= 6 ? 'trace' : verbosity >= 4 ? 'debug' : 'info';
  return pino(
    { level, base: { component: 'prometheus-metrics-adapter' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
