import { AdapterError, type StatusReason } from '../errors.ts';

/** metav1.Status as JSON, keys in Go struct order so bodies match what kube-apiserver's clients expect. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason?: StatusReason;
  details?: { name?: string; group?: string; kind?: string; causes?: { message: string }[]; retryAfterSeconds?: number };
  code: number;
}

export function statusBody(code: number, reason: StatusReason | undefined, message: string, details?: StatusBody['details']): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    ...(reason ? { reason } : {}),
    ...(details ? { details } : {}),
    code,
  };
}

/**
 * Any error as a Status. Errors of our own carry their code and message; anything else is a bug or an
 * unexpected failure, answered as a generic 500 so no stack trace or internal detail leaks.
 */
export function toStatus(err: unknown): StatusBody {
  if (err instanceof AdapterError) {
    return statusBody(err.code, err.reason, err.message, err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : undefined);
  }
  return statusBody(500, 'InternalError', 'Internal error occurred: the adapter failed unexpectedly; see its log for details');
}

export const NOT_FOUND_ROUTE = statusBody(404, 'NotFound', 'the server could not find the requested resource', {});
export const METHOD_NOT_ALLOWED = statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
