import { AsyncLocalStorage } from 'node:async_hooks';

/** What one API request did, gathered along its way so its log line can say it all. */
export interface RequestTrace {
  /** Every query the request caused; `error` says why one failed. */
  readonly queries: { rule: string; query: string; source: string; ms: number; samples: number; error?: string }[];
  items?: number;
}

/**
 * The trace of the request being served. Providers and the query engine add to it without being
 * handed the request, so the module boundaries stay as they are.
 */
export const requestTraces = new AsyncLocalStorage<RequestTrace>();

export function currentTrace(): RequestTrace | undefined {
  return requestTraces.getStore();
}
