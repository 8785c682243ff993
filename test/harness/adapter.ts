import { httpsGet } from './https-get.ts';
import { pino, type Logger } from 'pino';
import { parseServeArgs, type ServeOptions } from '../../src/cli/serve-options.ts';
import { startServer, type RunningServer } from '../../src/server.ts';

export interface TestAdapter {
  readonly server: RunningServer;
  readonly url: string;
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; json: any; text: string; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * The real adapter, in-process, on a free loopback port with authentication off (auth has its own
 * tests); everything else is the product's wiring from src/server.ts. `log` lets a test read what it logs.
 */
export async function startTestAdapter(
  overrides: Partial<ServeOptions> & Pick<ServeOptions, 'config' | 'prometheusUrl'>,
  log: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
): Promise<TestAdapter> {
  const options: ServeOptions = {
    ...parseServeArgs(['--bind-address=127.0.0.1', '--secure-port=0', '--insecure-disable-auth', '--prometheus-timeout=5s']),
    ...overrides,
  };
  const server = await startServer(options, log);
  const get: TestAdapter['get'] = (path, headers = {}) => httpsGet(`${server.url}${path}`, { rejectUnauthorized: false, headers });
  return { server, url: server.url, get, close: () => server.close() };
}
