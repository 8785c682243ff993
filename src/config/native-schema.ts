/**
 * JSON Schema of the native rule file. It is the single source for validation at load time and for
 * `schema/rules.schema.json`, which editors use for completion (a test keeps the two identical).
 */
const DURATION = '^([0-9]+(ms|s|m|h|d|w|y))+$';
const LABEL_NAME = '^[a-zA-Z_][a-zA-Z0-9_]*$';
const BACKEND_NAME = '^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$';
const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const METRIC_NAME = '^[a-zA-Z0-9]([-a-zA-Z0-9_.{}]*[a-zA-Z0-9}])?$';

export const nativeRuleFileSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://prometheus-metrics-adapter.dev/schema/rules.schema.json',
  title: 'prometheus-metrics-adapter rule file',
  description:
    'Maps PromQL queries to Kubernetes custom metrics. Each entry of `metrics` serves one metric name (or one per window) for one resource.',
  type: 'object',
  additionalProperties: false,
  required: ['metrics'],
  properties: {
    metrics: {
      type: 'array',
      description: 'The metrics to serve on custom.metrics.k8s.io.',
      items: { $ref: '#/definitions/metric' },
    },
    backends: {
      type: 'object',
      description:
        'Prometheus-compatible backends other than the one the command-line flags describe, by name; a metric picks one with `backend`. Relative file paths are read from the rule file\'s directory.',
      propertyNames: { pattern: BACKEND_NAME },
      additionalProperties: { $ref: '#/definitions/backend' },
    },
  },
  definitions: {
    backend: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^https?://', description: 'Base URL; may carry a path prefix (`https://thanos/prometheus`).' },
        bearerTokenFile: { type: 'string', minLength: 1, description: 'File holding a bearer token; re-read when it changes.' },
        basicAuth: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'passwordFile'],
          properties: {
            username: { type: 'string', minLength: 1 },
            passwordFile: { type: 'string', minLength: 1, description: 'File holding the password; re-read when it changes.' },
          },
        },
        tls: {
          type: 'object',
          additionalProperties: false,
          properties: {
            caFile: { type: 'string', minLength: 1 },
            certFile: { type: 'string', minLength: 1, description: 'Client certificate; needs keyFile.' },
            keyFile: { type: 'string', minLength: 1 },
            insecureSkipVerify: { type: 'boolean', description: 'Accept any server certificate. Only `true` turns verification off.' },
          },
        },
        headers: {
          type: 'object',
          description: 'Headers sent with every request, e.g. `X-Scope-OrgID` for Mimir, Cortex or Loki tenants.',
          propertyNames: { pattern: HEADER_NAME },
          additionalProperties: { type: 'string' },
        },
        queryParams: {
          type: 'object',
          description: 'Query parameters added to every request, e.g. `dedup: "true"` for Thanos.',
          propertyNames: { minLength: 1 },
          additionalProperties: { type: 'string' },
        },
      },
    },
    metric: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'resource', 'query'],
      properties: {
        name: {
          type: 'string',
          pattern: METRIC_NAME,
          description:
            'Metric name in API paths. With `windows`, `{window}` in the name is replaced by each window; without the placeholder `_<window>` is appended.',
        },
        description: { type: 'string', description: 'Free text shown by `explain` and in logs.' },
        resource: {
          type: 'string',
          minLength: 1,
          description:
            'The Kubernetes resource the metric describes: `pods`, `nodes`, `namespaces`, `deployments.apps`, or any resource known to API discovery (plural, singular or kind).',
        },
        query: {
          type: 'string',
          minLength: 1,
          description:
            'PromQL template with `<< >>` delimiters. Fields: .Series, .LabelMatchers, .LabelValuesByName, .GroupBy, .GroupBySlice, .Window.',
        },
        windows: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { type: 'string', pattern: DURATION },
          description: 'Produce one metric per window (e.g. `[1m, 5m]`); `<<.Window>>` is the window and windowSeconds is reported.',
        },
        objectLabel: {
          type: 'string',
          pattern: LABEL_NAME,
          description: "Prometheus label holding the object's name. Default: the resource's singular name (`pod`, `deployment`, `node`).",
        },
        namespaceLabel: {
          type: 'string',
          pattern: LABEL_NAME,
          description: 'Prometheus label holding the namespace. Default: `namespace`.',
        },
        series: { type: 'string', description: 'Value of `<<.Series>>`, for templates shared with prometheus-adapter rules.' },
        queryScope: {
          type: 'string',
          enum: ['namespace', 'objects'],
          description:
            '`namespace` (default): query the whole namespace once and keep the requested objects, so every label selector shares one cached query. `objects`: put the object names into the query, as prometheus-adapter does.',
        },
        backend: {
          type: 'string',
          minLength: 1,
          description: 'Name of an entry of `backends` to query. Default: the backend given by the command-line flags (--prometheus-url).',
        },
        noData: {
          type: 'string',
          enum: ['error', 'zero', 'fallback'],
          description: 'An object without a sample. `error` (default): 404 when asked by name, left out of lists. `zero` / `fallback`: serve 0 / `fallback`.',
        },
        nan: {
          type: 'string',
          enum: ['error', 'zero', 'fallback'],
          description: 'A NaN sample. `error` (default): 500 when asked by name, left out of lists. `zero` / `fallback`: serve 0 / `fallback`.',
        },
        inf: {
          type: 'string',
          enum: ['error', 'zero', 'fallback'],
          description: 'A +Inf or -Inf sample. `error` (default): 500 when asked by name, left out of lists. `zero` / `fallback`: serve 0 / `fallback`.',
        },
        fallback: { type: 'number', description: 'The value served by `noData`, `nan` or `inf: fallback`; required by them.' },
        cacheTtl: {
          type: 'string',
          pattern: DURATION,
          description: 'How long this rule\'s query results are reused (e.g. `5s`, `0s` for never). Default: --query-cache-ttl.',
        },
        maxSampleAge: {
          type: 'string',
          pattern: DURATION,
          description:
            'Stale-data protection: refuse a value when the newest raw sample of `series` for the object is older than this (e.g. `2m`). Needs `series`. Refused objects are left out of lists and answer 404 by name.',
        },
      },
    },
  },
} as const;
