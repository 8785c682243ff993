/**
 * `npm run demo`: a real Prometheus with a simulated workload, the adapter in front of it on
 * loopback, and the curl commands to try, with their answers. `--once` prints and exits.
 */
import { request as httpsRequest } from 'node:https';
import { pino } from 'pino';
import { DEFAULT_CONFIG, parseServeArgs } from '../cli/serve-options.ts';
import { loadRuleFile } from '../config/load.ts';
import { renderRuleQuery } from '../rules/render-query.ts';
import { startServer } from '../server.ts';
import { ensurePrometheus, queryPrometheus, startPrometheus } from './prometheus-process.ts';
import { demoSeries, demoWorkload } from './workload.ts';

interface Example {
  title: string;
  path: string;
  /** Rule metric whose PromQL is shown and checked against Prometheus directly. */
  compare?: { metric: string; namespace: string };
}

const EXAMPLES: Example[] = [
  { title: 'Which metrics exist (discovery)', path: '/apis/custom.metrics.k8s.io/v1beta2' },
  {
    title: 'CPU of the pods of deployment "demo" (what an HPA Pods metric reads)',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/pod_cpu_used_1m?labelSelector=app%3Ddemo',
    compare: { metric: 'pod_cpu_used_1m', namespace: 'default' },
  },
  {
    title: 'The same in v1beta1',
    path: '/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/pod_cpu_used_5m?labelSelector=app%3Ddemo',
  },
  {
    title: 'CPU of one container, chosen with a metric label selector',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/container_cpu_used_1m?labelSelector=app%3Ddemo&metricLabelSelector=container%3Dapp',
  },
  {
    title: 'CPU used as a fraction of the CPU limit',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/pod_cpu_usage_for_limit_1m?labelSelector=app%3Dweb',
  },
  {
    title: 'Memory working set of one pod',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-5f6b7-xk2lp/pod_memory_working_set_bytes',
  },
  {
    title: 'HTTP request rate of deployment "web" (what an HPA Object metric reads)',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/web/deployment_http_requests_per_second_1m',
  },
  {
    title: 'A metric about the namespace itself',
    path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/namespace_http_requests_per_second_1m',
  },
  { title: 'An unknown metric: a Status error', path: '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/no_such_metric' },
];

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, headers: { 'User-Agent': 'curl/8 (demo)' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const say = (m: string): void => void process.stdout.write(`${m}\n`);
  const bins = await ensurePrometheus((m) => say(`[demo] ${m}`));
  const now = Math.floor(Date.now() / 1000);
  const workload = demoWorkload();
  say(`[demo] starting Prometheus (${bins.prometheus}) with a simulated workload: ${workload.pods.length} pods of 2 deployments on ${workload.nodes.length} nodes`);
  const prometheus = await startPrometheus({
    series: demoSeries(workload, now - 3600),
    fromSeconds: now - 3600,
    toSeconds: now + 6 * 3600,
    stepSeconds: 15,
  });
  say(`[demo] Prometheus is at ${prometheus.url}`);

  const options = parseServeArgs([
    `--prometheus-url=${prometheus.url}`,
    '--prometheus-timeout=10s',
    '--object-source=prometheus',
    '--bind-address=127.0.0.1',
    '--secure-port=0',
    '--insecure-disable-auth',
  ]);
  const log = pino({ level: 'error', base: null }, pino.destination({ dest: 2, sync: true }));
  const server = await startServer(options, log);
  const stop = async (): Promise<void> => {
    await server.close();
    await prometheus.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

  say('');
  say('!!! WARNING: this demo adapter runs WITHOUT authentication (--insecure-disable-auth), on 127.0.0.1 only. !!!');
  say(`prometheus-metrics-adapter is serving https://127.0.0.1:${new URL(server.url).port} (self-signed certificate, hence curl -k)`);
  say(`objects come from the workload's kube-state-metrics series (--object-source=prometheus); rules: ${DEFAULT_CONFIG}`);

  const rules = (await loadRuleFile(DEFAULT_CONFIG)).metrics;
  for (const example of EXAMPLES) {
    const url = `${server.url}${example.path}`;
    say('');
    say(`# ${example.title}`);
    say(`curl -k '${url}'`);
    const answer = await get(url);
    if (example.path.endsWith('/v1beta2')) {
      // The discovery document is long; its resource names are what a reader wants to see.
      const names = (JSON.parse(answer.body) as { resources: { name: string }[] }).resources.map((r) => r.name);
      say(`# (APIResourceList abbreviated to its ${names.length} resource names)`);
      for (const n of names) say(`  ${n}`);
      continue;
    }
    say(answer.body.trimEnd());
    if (example.compare && answer.status === 200) {
      const rule = rules.find((r) => r.metric === example.compare!.metric)!;
      const query = renderRuleQuery(rule, { namespace: example.compare.namespace, names: null, metricSelector: [] });
      const items = (JSON.parse(answer.body) as { items: { describedObject: { name: string }; timestamp: string }[] }).items;
      const at = items[0] ? Date.parse(items[0].timestamp) / 1000 : now;
      const direct = await queryPrometheus(prometheus.url, query, at);
      say(`# the rule's PromQL, sent straight to Prometheus at the same time, gives:`);
      say(`#   ${query.replace(/\s+/g, ' ')}`);
      for (const s of direct) say(`#   ${s.metric[rule.objectLabel]} = ${s.value[1]}`);
    }
  }
  say('');
  if (once) {
    await stop();
    return;
  }
  say('The values change over time (a 10-minute cycle). Press Ctrl-C to stop.');
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
