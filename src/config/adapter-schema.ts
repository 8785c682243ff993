/**
 * JSON Schema of kubernetes-sigs/prometheus-adapter's `--config` file (MetricsDiscoveryConfig). It
 * checks shape only; regexes, templates and durations are checked by adapter-format.ts.
 * prometheus-adapter decodes with yaml.v2's UnmarshalStrict, so unknown keys are errors here too,
 * and an explicit null is accepted wherever Go would leave the zero value.
 */
const STRING = { type: ['string', 'null'] } as const;

const resourceMapping = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    template: {
      ...STRING,
      description: 'Label name template with `<< >>` delimiters and fields .Group and .Resource, e.g. `<<.Resource>>` or `kube_<<.Group>>_<<.Resource>>`.',
    },
    overrides: {
      type: ['object', 'null'],
      description: 'Prometheus label → the resource it names. Wins over the template.',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['resource'],
        properties: {
          group: STRING,
          resource: { type: 'string', minLength: 1 },
        },
      },
    },
    namespaced: {
      // yaml.v2 reads YAML 1.1 booleans (yes/no/on/off); adapter-format.ts accepts those spellings.
      type: ['boolean', 'string', 'null'],
      description: 'externalRules only: false leaves the request namespace out of the query. Default true.',
    },
  },
} as const;

const discoveryRule = {
  type: 'object',
  additionalProperties: false,
  required: ['seriesQuery'],
  properties: {
    seriesQuery: {
      type: 'string',
      minLength: 1,
      description: 'Series selector sent as `match[]` to /api/v1/series.',
    },
    seriesFilters: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        additionalProperties: false,
        properties: { is: STRING, isNot: STRING },
      },
    },
    resources: resourceMapping,
    name: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        matches: { ...STRING, description: 'Go regular expression on the series name; default `.*`.' },
        as: { ...STRING, description: 'Go regexp.Expand template; default `$0` (no groups) or `$1` (one group).' },
      },
    },
    metricsQuery: { ...STRING, description: 'PromQL template: .Series, .LabelMatchers, .LabelValuesByName, .GroupBy, .GroupBySlice.' },
  },
} as const;

const resourceRule = {
  type: 'object',
  additionalProperties: false,
  required: ['containerQuery', 'nodeQuery', 'containerLabel'],
  properties: {
    containerQuery: { type: 'string', minLength: 1 },
    nodeQuery: { type: 'string', minLength: 1 },
    resources: resourceMapping,
    containerLabel: { type: 'string', minLength: 1 },
  },
} as const;

export const adapterConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://prometheus-metrics-adapter.dev/schema/prometheus-adapter-config.schema.json',
  title: 'prometheus-adapter configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    rules: { type: ['array', 'null'], items: { $ref: '#/definitions/discoveryRule' } },
    externalRules: { type: ['array', 'null'], items: { $ref: '#/definitions/discoveryRule' } },
    resourceRules: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['cpu', 'memory'],
      properties: {
        cpu: { $ref: '#/definitions/resourceRule' },
        memory: { $ref: '#/definitions/resourceRule' },
        window: { type: ['string', 'integer', 'null'], description: 'Prometheus duration echoed as the metrics window, e.g. 5m.' },
      },
    },
  },
  definitions: { discoveryRule, resourceRule },
} as const;
