/**
 * Errors that cross module boundaries. Each carries what the API layer needs to build a Kubernetes
 * `Status` (code and reason) and a message that says what to fix; `cause` keeps the chain for logs.
 */
export type StatusReason =
  | 'BadRequest'
  | 'NotFound'
  | 'Unauthorized'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout'
  | 'RequestEntityTooLarge';

export interface AdapterErrorOptions {
  readonly cause?: unknown;
  /**
   * Set when the same request is worth repeating shortly (an overload, not a broken backend); it becomes the
   * Status's details.retryAfterSeconds and a Retry-After header, which client-go honours for 503.
   */
  readonly retryAfterSeconds?: number;
}

export class AdapterError extends Error {
  readonly code: number;
  readonly reason: StatusReason;
  readonly retryAfterSeconds: number | undefined;
  constructor(code: number, reason: StatusReason, message: string, options?: AdapterErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** The same failure (code, reason, retry hint) with context appended, e.g. the rule that ran the query. */
  withContext(context: string): AdapterError {
    return new AdapterError(this.code, this.reason, `${this.message}; ${context}`, {
      cause: this,
      ...(this.retryAfterSeconds !== undefined ? { retryAfterSeconds: this.retryAfterSeconds } : {}),
    });
  }
}

export class BadRequestError extends AdapterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(400, 'BadRequest', message, options);
  }
}

export class NotFoundError extends AdapterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(404, 'NotFound', message, options);
  }
}

export class InternalError extends AdapterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(500, 'InternalError', message, options);
  }
}

export class ServiceUnavailableError extends AdapterError {
  constructor(message: string, options?: AdapterErrorOptions) {
    super(503, 'ServiceUnavailable', message, options);
  }
}

export class TimeoutError extends AdapterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(504, 'Timeout', message, options);
  }
}

/** A rule file that cannot be used; the message names the file, the rule and the reason. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[]) {
    super(`invalid rule file ${file}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
