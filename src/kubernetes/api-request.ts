import { HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { fetch, type Dispatcher } from 'undici';

export class KubeApiError extends Error {
  readonly status: number;
  constructor(path: string, status: number, body: string) {
    super(`Kubernetes API ${path} answered HTTP ${status}: ${body.slice(0, 300)}`);
    this.name = 'KubeApiError';
    this.status = status;
  }
}

/**
 * A GET on any API path with the kubeconfig's credentials. The generated clients cannot reach
 * arbitrary group-versions (discovery) or ask for metadata-only lists, so this is the one raw call.
 */
export async function kubeGet<T>(
  kc: KubeConfig,
  path: string,
  options: { accept?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const ctx = new RequestContext(`${server.replace(/\/$/, '')}${path}`, HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  ctx.setHeaderParam('Accept', options.accept ?? 'application/json');
  const signals = [AbortSignal.timeout(options.timeoutMs ?? 30_000), ...(options.signal ? [options.signal] : [])];
  const response = await fetch(ctx.getUrl(), {
    headers: ctx.getHeaders(),
    dispatcher: ctx.getDispatcher() as Dispatcher | undefined,
    signal: AbortSignal.any(signals),
  });
  const body = await response.text();
  if (!response.ok) throw new KubeApiError(path, response.status, body);
  return JSON.parse(body) as T;
}
