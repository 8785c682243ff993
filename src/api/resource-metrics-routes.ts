import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError } from '../errors.ts';
import type { ObjectMeta } from '../kubernetes/object-source.ts';
import type { ObjectFilter, ResourceMetricsSource } from '../providers/resource.ts';
import { sendJson } from './json-response.ts';
import { serializeNodeMetricsList, serializePodMetricsList } from './wire-serializers.ts';
import { parseSelectorParam, queryParam } from './metric-request.ts';
import {
  RESOURCE_METRICS_GROUP,
  RESOURCE_METRICS_VERSION,
  encodeNodeMetricsList,
  encodeNodeMetricsObject,
  encodePodMetricsList,
  encodePodMetricsObject,
  encodeResourceMetricsApiGroup,
  encodeResourceMetricsResourceList,
  nodeMetricsNotFound,
  podMetricsNotFound,
} from './resource-metrics-wire.ts';

export interface ResourceMetricsRouteOptions {
  /** Clock for `metadata.creationTimestamp`, which metrics-server sets to the time of the response. */
  readonly now?: () => number;
}

interface FieldRequirement {
  readonly field: string;
  readonly operator: '=' | '!=';
  readonly value: string;
}

/** Split at unescaped `sep`; `\` escapes the next character, as in apimachinery's fields package. */
function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[i + 1]!;
      i++;
    } else if (ch === sep) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function unescapeFieldValue(value: string): string {
  return value.replace(/\\(.)/g, (whole, ch: string) => {
    if (ch === '\\' || ch === ',' || ch === '=') return ch;
    throw new BadRequestError(`invalid field selector: invalid escape sequence: ${whole}`);
  });
}

/**
 * `fieldSelector` as apimachinery's fields.ParseSelector reads it (`k=v`, `k==v`, `k!=v`, comma-separated).
 * Only the fields the adapter knows are accepted: the object caches keep metadata, not status, and a
 * selector on a field nobody can evaluate is better refused than answered with an empty list.
 */
function parseFieldSelector(text: string | undefined, allowed: readonly string[]): FieldRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  const out: FieldRequirement[] = [];
  for (const term of splitUnescaped(text, ',')) {
    if (term === '') continue;
    const match = /^((?:[^\\=!]|\\.)*?)(!=|==|=)(.*)$/.exec(term);
    if (!match) throw new BadRequestError(`invalid selector: '${text}'; can't understand '${term}'`);
    const field = match[1]!.trim();
    if (!allowed.includes(field)) throw new BadRequestError(`field label not supported: ${field}`);
    out.push({ field, operator: match[2] === '!=' ? '!=' : '=', value: unescapeFieldValue(match[3]!) });
  }
  return out;
}

function fieldFilter(requirements: readonly FieldRequirement[]): ObjectFilter | undefined {
  if (requirements.length === 0) return undefined;
  return (object: ObjectMeta) =>
    requirements.every((r) => {
      const actual = r.field === 'metadata.name' ? object.name : object.namespace;
      return r.operator === '=' ? actual === r.value : actual !== r.value;
    });
}

/** `metadata.name=x` lets the provider query one name instead of every selected object. */
function singleName(requirements: readonly FieldRequirement[]): string | undefined {
  return requirements.find((r) => r.field === 'metadata.name' && r.operator === '=')?.value;
}

/**
 * metrics.k8s.io/v1beta1 as metrics-server serves it: discovery, and get/list of PodMetrics and
 * NodeMetrics (the paths `kubectl top` and the HPA's Resource metrics read).
 */
export function registerResourceMetricsRoutes(
  app: FastifyInstance,
  provider: ResourceMetricsSource,
  options: ResourceMetricsRouteOptions = {},
): void {
  const now = (): number => (options.now ?? Date.now)() / 1000;
  const group = `/apis/${RESOURCE_METRICS_GROUP}`;
  const base = `${group}/${RESOURCE_METRICS_VERSION}`;
  const labelSelector = (request: FastifyRequest) => parseSelectorParam(request.query, 'labelSelector');

  app.get(group, async (request, reply) => sendJson(request, reply, 200, encodeResourceMetricsApiGroup()));
  app.get(base, async (request, reply) => sendJson(request, reply, 200, encodeResourceMetricsResourceList()));

  app.get(`${base}/nodes`, async (request, reply) => {
    const fields = parseFieldSelector(queryParam(request.query, 'fieldSelector'), ['metadata.name']);
    const items = await provider.getNodeMetrics(labelSelector(request), singleName(fields), fieldFilter(fields));
    return sendJson(request, reply, 200, encodeNodeMetricsList(items, now()), serializeNodeMetricsList);
  });

  app.get<{ Params: { name: string } }>(`${base}/nodes/:name`, async (request, reply) => {
    const { name } = request.params;
    const [item] = await provider.getNodeMetrics([], name);
    if (!item) return sendJson(request, reply, 404, nodeMetricsNotFound(name));
    return sendJson(request, reply, 200, encodeNodeMetricsObject(item, now()));
  });

  const listPods = async (request: FastifyRequest, namespace: string | null) => {
    const fields = parseFieldSelector(queryParam(request.query, 'fieldSelector'), ['metadata.name', 'metadata.namespace']);
    return provider.getPodMetrics(namespace, labelSelector(request), singleName(fields), fieldFilter(fields));
  };

  app.get(`${base}/pods`, async (request, reply) => sendJson(request, reply, 200, encodePodMetricsList(await listPods(request, null), now()), serializePodMetricsList));

  app.get<{ Params: { namespace: string } }>(`${base}/namespaces/:namespace/pods`, async (request, reply) =>
    sendJson(request, reply, 200, encodePodMetricsList(await listPods(request, request.params.namespace), now()), serializePodMetricsList),
  );

  app.get<{ Params: { namespace: string; name: string } }>(`${base}/namespaces/:namespace/pods/:name`, async (request, reply) => {
    const { namespace, name } = request.params;
    const [item] = await provider.getPodMetrics(namespace, [], name);
    if (!item) return sendJson(request, reply, 404, podMetricsNotFound(namespace, name));
    return sendJson(request, reply, 200, encodePodMetricsObject(item, now()));
  });
}
