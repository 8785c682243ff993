/**
 * The floor of any HTTPS metrics adapter written in Node, run as its own process by bench/latency.ts: for each
 * request it sends the request's PromQL to Prometheus over a keep-alive connection, reads the whole answer, and
 * answers with bytes prepared in advance (`bytes=`: as many as the adapter's answer has). No parsing, no join, no encoding, no
 * framework: only what every adapter must do (TLS in, one Prometheus round trip, TLS out). The gap between this and
 * Prometheus queried directly is the transport's share of the adapter's overhead; the gap between the adapter and
 * this is the adapter's own work.
 *
 * With `codec=<namespace>/<metric>/<window seconds>` it is the codec floor instead: the same, plus the adapter's own
 * reader of Prometheus's answer and writer of the MetricValueList (one pod per sample, named by its `pod` label), and
 * nothing else: no framework, no HTTP client library, no object cache or join. What is left between the adapter and
 * this is routing, the HTTP client, the join and the rest of the adapter's bookkeeping.
 *
 *   node bench/relay-floor.ts <prometheus url>
 *
 * Prints its HTTPS port on stdout once listening; serves `GET /?query=<PromQL>&bytes=<answer size>` and
 * `GET /?query=<PromQL>&codec=<namespace>/<metric>/<window seconds>` on 127.0.0.1.
 */
import { Agent, request } from 'node:http';
import { createServer } from 'node:https';
import { generateSelfSignedServingCert } from '../src/api/certificates.ts';
import { writeMetricValueList } from '../src/api/custom-metrics-wire.ts';
import type { MetricValue } from '../src/providers/types.ts';
import { readVectorAnswer } from '../src/prometheus/vector-answer.ts';

const prometheusUrl = process.argv[2];
if (!prometheusUrl) {
  console.error('usage: node bench/relay-floor.ts <prometheus url>');
  process.exit(2);
}
const answers = new Map<number, Buffer>();
const prometheus = new URL(prometheusUrl);
const agent = new Agent({ keepAlive: true });
const { certPem, keyPem } = await generateSelfSignedServingCert({ hosts: ['localhost'], ips: ['127.0.0.1'] });

const NO_SELECTOR: MetricValue['metricSelector'] = [];

/** The MetricValueList the adapter would write for these samples, by the adapter's own reader and writer. */
function encode(text: string, codec: string): Buffer | undefined {
  const [namespace = '', metric = '', window = ''] = codec.split('/');
  const read = readVectorAnswer(text);
  if (read === undefined) return undefined;
  const values = read.samples.map(
    (s): MetricValue => ({
      describedObject: { kind: 'Pod', apiVersion: '/v1', namespace, name: s.labels['pod'] ?? '' },
      metric,
      metricSelector: NO_SELECTOR,
      timestamp: s.timestamp,
      windowSeconds: Number(window),
      value: s.value,
    }),
  );
  return writeMetricValueList('v1beta2', values);
}

const server = createServer({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
  const asked = new URL(req.url ?? '/', 'https://relay').searchParams;
  const query = asked.get('query') ?? '';
  const codec = asked.get('codec');
  const size = Math.min(Number(asked.get('bytes')) || 0, 64 * 2 ** 20);
  let prepared = answers.get(size);
  if (prepared === undefined) answers.set(size, (prepared = Buffer.alloc(size, 'x')));
  const params = new URLSearchParams({ query, time: (Date.now() / 1000).toFixed(3) });
  const upstream = request(
    { host: prometheus.hostname, port: prometheus.port, path: `/api/v1/query?${params}`, agent, headers: { Accept: 'application/json', 'Accept-Encoding': 'identity' } },
    (answerFromPrometheus) => {
      const chunks: Buffer[] = [];
      answerFromPrometheus.on('data', (c: Buffer) => chunks.push(c));
      answerFromPrometheus.on('end', () => {
        // Holds the whole answer, as an adapter must before it can join it with its objects.
        const body = Buffer.concat(chunks);
        const answer = codec === null ? prepared : encode(body.toString('utf8'), codec);
        if (answerFromPrometheus.statusCode !== 200 || answer === undefined) {
          res.writeHead(502);
          res.end();
          return;
        }
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length });
        res.end(answer);
      });
    },
  );
  upstream.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  upstream.end();
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(typeof address === 'object' && address ? address.port : 0);
});
// Stops with the bench: it holds our stdin.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
