import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ExternalMetricsProvider } from '../providers/types.ts';
import { sendJson } from './json-response.ts';
import { serializeExternalMetricValueList } from './wire-serializers.ts';
import { parseExternalMetricPath, parseSelectorParam, splitPath } from './metric-request.ts';
import {
  encodeExternalApiGroup,
  encodeExternalMetricValueList,
  encodeExternalResourceList,
  EXTERNAL_METRICS_GROUP,
  EXTERNAL_METRICS_VERSION,
} from './external-metrics-wire.ts';

/** external.metrics.k8s.io/v1beta1: group and version discovery, and `namespaces/{ns}/{metric}` reads. */
export function registerExternalMetricsRoutes(app: FastifyInstance, provider: ExternalMetricsProvider): void {
  const prefix = `/apis/${EXTERNAL_METRICS_GROUP}`;
  const base = `${prefix}/${EXTERNAL_METRICS_VERSION}`;
  app.get(prefix, async (request, reply) => sendJson(request, reply, 200, encodeExternalApiGroup()));
  app.get(base, async (request, reply) => sendJson(request, reply, 200, encodeExternalResourceList(provider.listAllExternalMetrics())));
  app.get(`${base}/*`, async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const rawPath = request.url.split('?')[0]!.slice(base.length);
    const segments = splitPath(rawPath);
    // A trailing slash on the version root is the same document, as with ignoreTrailingSlash elsewhere.
    if (segments.length === 0) {
      return sendJson(request, reply, 200, encodeExternalResourceList(provider.listAllExternalMetrics()));
    }
    const { namespace, metric } = parseExternalMetricPath(segments);
    // The HPA sends the metric selector as labelSelector (ListOptions), not metricLabelSelector.
    const selector = parseSelectorParam(request.query, 'labelSelector');
    const values = await provider.getExternalMetric(namespace, metric, selector);
    return sendJson(request, reply, 200, encodeExternalMetricValueList(values), serializeExternalMetricValueList);
  });
}
