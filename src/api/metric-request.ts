import { LRUCache } from 'lru-cache';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { parseSelector, SelectorParseError, type Selector } from '../rules/selector.ts';

/** A custom-metrics read, parsed from the path below `/apis/custom.metrics.k8s.io/{version}/`. */
export type CustomMetricPath =
  | { kind: 'discovery' }
  | { kind: 'object'; namespace: string | null; resource: string; name: string; metric: string };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Object names are DNS subdomains for almost every kind; a few allow more, but never quotes,
// backslashes or whitespace, which is what matters once a name enters a query.
const OBJECT_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$/;
const RESOURCE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const METRIC = /^[A-Za-z0-9_:]([-A-Za-z0-9_.:]*[A-Za-z0-9_:])?$/;

export function splitPath(rawPath: string): string[] {
  return rawPath
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new BadRequestError(`invalid percent-encoding in path segment "${s}"`);
      }
    });
}

function check(value: string, pattern: RegExp, what: string, max: number): string {
  if (value.length > max || !pattern.test(value)) {
    throw new BadRequestError(
      `invalid ${what} "${value.length > 80 ? `${value.slice(0, 80)}...` : value}": must match ${pattern.source} and be at most ${max} characters`,
    );
  }
  return value;
}

/** Path shapes of custom-metrics-apiserver; anything else is a 404 like an unknown route. */
export function parseCustomMetricPath(segments: readonly string[]): CustomMetricPath {
  const s = segments;
  if (s.length === 0) return { kind: 'discovery' };
  if (s.length === 4 && s[0] === 'namespaces' && s[2] === 'metrics') {
    // A metric about the namespace itself is read as the object namespaces/{ns}.
    const ns = check(s[1]!, DNS_LABEL, 'namespace', 63);
    return { kind: 'object', namespace: null, resource: 'namespaces', name: ns, metric: check(s[3]!, METRIC, 'metric name', 253) };
  }
  if (s.length === 5 && s[0] === 'namespaces') {
    return {
      kind: 'object',
      namespace: check(s[1]!, DNS_LABEL, 'namespace', 63),
      resource: check(s[2]!, RESOURCE, 'resource', 253),
      name: s[3] === '*' ? '*' : check(s[3]!, OBJECT_NAME, 'object name', 253),
      metric: check(s[4]!, METRIC, 'metric name', 253),
    };
  }
  if (s.length === 3) {
    return {
      kind: 'object',
      namespace: null,
      resource: check(s[0]!, RESOURCE, 'resource', 253),
      name: s[1] === '*' ? '*' : check(s[1]!, OBJECT_NAME, 'object name', 253),
      metric: check(s[2]!, METRIC, 'metric name', 253),
    };
  }
  throw new NotFoundError('the server could not find the requested resource');
}

/**
 * `namespaces/{ns}/{metric}` below `/apis/external.metrics.k8s.io/v1beta1/`, the only shape custom-metrics-apiserver
 * serves there; anything else is a 404 like an unknown route.
 */
export function parseExternalMetricPath(segments: readonly string[]): { namespace: string; metric: string } {
  if (segments.length !== 3 || segments[0] !== 'namespaces') {
    throw new NotFoundError('the server could not find the requested resource');
  }
  return { namespace: check(segments[1]!, DNS_LABEL, 'namespace', 63), metric: check(segments[2]!, METRIC, 'metric name', 253) };
}

const NO_SELECTOR: Selector = Object.freeze([]);

/** The first value of a query parameter; clients may repeat it and Kubernetes reads the first. */
export function queryParam(query: unknown, name: string): string | undefined {
  const v = (query as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(v)) return typeof v[0] === 'string' ? v[0] : undefined;
  return typeof v === 'string' ? v : undefined;
}

/**
 * Selectors by their text. HPAs send the same few selectors every 15 s, and parsing one costs ~0.1 ms on the request
 * path (measured in a running adapter); a parsed selector is frozen, so one serves every request with that text.
 * Bounded by text size too: selectors may be 4 KiB long, and any authorized client chooses them.
 */
const parsedSelectors = new LRUCache<string, Selector>({ max: 1024, maxSize: 1 << 20, sizeCalculation: (_selector, text) => text.length + 64 });

export function parseSelectorParam(query: unknown, name: 'labelSelector' | 'metricLabelSelector'): Selector {
  const text = queryParam(query, name);
  if (text === undefined || text === '') return NO_SELECTOR;
  const known = parsedSelectors.get(text);
  if (known !== undefined) return known;
  try {
    const selector = parseSelector(text);
    parsedSelectors.set(text, selector);
    return selector;
  } catch (err) {
    if (err instanceof SelectorParseError) throw new BadRequestError(`invalid ${name}: ${err.message}`);
    throw err;
  }
}
