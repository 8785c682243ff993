import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CustomMetricsProvider, MetricValue } from '../providers/types.ts';
import { BadRequestError } from '../errors.ts';
import { EncodedBody, sendJson } from './json-response.ts';
import { parseCustomMetricPath, parseSelectorParam, queryParam, splitPath } from './metric-request.ts';
import {
  CUSTOM_METRICS_GROUP,
  CUSTOM_METRICS_VERSIONS,
  encodeApiGroup,
  encodeMetricValueList,
  encodeResourceList,
  writeMetricValueList,
  type CustomMetricsVersion,
} from './custom-metrics-wire.ts';

/** custom.metrics.k8s.io, both versions: discovery documents and metric reads. */
export function registerCustomMetricsRoutes(app: FastifyInstance, provider: CustomMetricsProvider): void {
  const prefix = `/apis/${CUSTOM_METRICS_GROUP}`;
  app.get(prefix, async (request, reply) => sendJson(request, reply, 200, encodeApiGroup()));
  for (const version of CUSTOM_METRICS_VERSIONS) {
    const base = `${prefix}/${version}`;
    const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      const rawPath = request.url.split('?')[0]!.slice(base.length);
      const path = parseCustomMetricPath(splitPath(rawPath));
      if (path.kind === 'discovery') {
        return sendJson(request, reply, 200, encodeResourceList(version, provider.listAllMetrics()));
      }
      const metricSelector = parseSelectorParam(request.query, 'metricLabelSelector');
      const info = { resource: path.resource, metric: path.metric };
      const fieldSelector = queryParam(request.query, 'fieldSelector');
      if (path.name === '*') {
        const objectSelector = parseSelectorParam(request.query, 'labelSelector');
        const values = await provider.getMetricBySelector(path.namespace, objectSelector, info, metricSelector);
        return sendJson(request, reply, 200, metricValueList(version, values));
      }
      if (fieldSelector && fieldSelector !== `metadata.name=${path.name}` && fieldSelector !== `metadata.name==${path.name}`) {
        throw new BadRequestError('fieldSelector metadata.name doesn\'t match requested name');
      }
      const value = await provider.getMetricByName({ namespace: path.namespace, name: path.name }, info, metricSelector);
      return sendJson(request, reply, 200, metricValueList(version, [value]));
    };
    app.get(base, handler);
    app.get(`${base}/*`, handler);
  }
}

/**
 * Encoded answers by the value list they encode: a provider answers the same (frozen) list while its query result
 * and objects are unchanged, and then the bytes need not be written again.
 */
const encoded = new WeakMap<readonly MetricValue[], Partial<Record<CustomMetricsVersion, Buffer>>>();

function metricValueList(version: CustomMetricsVersion, values: readonly MetricValue[]): EncodedBody {
  const compact = (): Buffer => {
    let byVersion = encoded.get(values);
    if (byVersion === undefined) encoded.set(values, (byVersion = {}));
    return (byVersion[version] ??= writeMetricValueList(version, values));
  };
  return new EncodedBody(values.length, compact, () => encodeMetricValueList(version, values));
}
