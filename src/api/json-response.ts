import type { FastifyReply, FastifyRequest } from 'fastify';
import { currentTrace } from '../observability/request-context.ts';
import type { Serializer } from './wire-serializers.ts';

// What Go's HTML-safe encoder escapes. Two regexes from one class: `test` needs one without the global flag, whose
// lastIndex would carry over between calls; `replace` needs the global one (and resets its lastIndex itself).
const HTML_UNSAFE_CLASS = '[<>&\u2028\u2029]';
const HTML_UNSAFE = new RegExp(HTML_UNSAFE_CLASS);
const HTML_UNSAFE_ALL = new RegExp(HTML_UNSAFE_CLASS, 'g');

/**
 * An answer whose compact bytes come from a specialised encoder (and may be cached); the object form is built
 * only when a human asked for indented output.
 */
export class EncodedBody {
  readonly items: number;
  /** The finished compact bytes: HTML-safe and newline-terminated, as jsonBytes() makes them. */
  readonly compact: () => Buffer;
  readonly value: () => unknown;

  constructor(items: number, compact: () => Buffer, value: () => unknown) {
    this.items = items;
    this.compact = compact;
    this.value = value;
  }
}

/**
 * Writes JSON the way Kubernetes API servers do: compact with a trailing newline, or indented for
 * `?pretty=true` and for humans' tools (curl, wget, browsers), with `<`, `>` and `&` escaped like
 * Go's HTML-safe encoder.
 */
export function sendJson(request: FastifyRequest, reply: FastifyReply, code: number, body: unknown, serialize?: Serializer): FastifyReply {
  const listed = (body as { items?: unknown } | null)?.items;
  const items = body instanceof EncodedBody ? body.items : Array.isArray(listed) ? listed.length : undefined;
  const trace = currentTrace();
  if (trace && items !== undefined) trace.items = items;
  // As kube-apiserver's error writer does: a Status that says when to retry says it in the header too, where
  // client-go and the aggregator look for it.
  const retryAfter = (body as { kind?: unknown; details?: { retryAfterSeconds?: unknown } } | null)?.details?.retryAfterSeconds;
  if ((body as { kind?: unknown } | null)?.kind === 'Status' && typeof retryAfter === 'number' && retryAfter > 0) {
    reply.header('Retry-After', String(retryAfter));
  }
  let bytes: Buffer;
  if (wantsPretty(request)) bytes = jsonBytes(JSON.stringify(body instanceof EncodedBody ? body.value() : body, null, 2));
  else if (body instanceof EncodedBody) bytes = body.compact();
  else bytes = jsonBytes(`${serialize ? serialize(body as object) : JSON.stringify(body)}\n`);
  return reply.code(code).header('Content-Type', 'application/json').header('Cache-Control', 'no-cache, private').send(bytes);
}

/**
 * JSON text as the bytes sent: `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's HTML-safe encoder does, encoded
 * once here (a string would be measured for Content-Length, then encoded again by the socket).
 */
export function jsonBytes(text: string): Buffer {
  return Buffer.from(htmlSafe(text), 'utf8');
}

/** JSON text with the characters Go's HTML-safe encoder escapes written as `\uXXXX`. */
export function htmlSafe(text: string): string {
  // Names and label values almost never hold these; scanning once is cheaper than a replace that finds nothing.
  return HTML_UNSAFE.test(text) ? text.replace(HTML_UNSAFE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : text;
}

function wantsPretty(request: FastifyRequest): boolean {
  const pretty = (request.query as Record<string, unknown> | undefined)?.pretty;
  if (pretty !== undefined) return pretty === 'true' || pretty === '1';
  const agent = request.headers['user-agent'] ?? '';
  return agent.startsWith('curl') || agent.startsWith('Wget') || agent.startsWith('Mozilla/5.0');
}
