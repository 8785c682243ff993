import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ServeOptions } from '../../src/cli/serve-options.ts';
import { freeLoopbackPort, startPrometheus, type PrometheusProcess, type SeriesSpec } from '../../src/demo/prometheus-process.ts';
import { startTestAdapter, type TestAdapter } from './adapter.ts';
import { addIntegrationObjects, integrationSeries, START } from './dataset.ts';
import { startFakeKubeApiServer, type FakeKubeApiServer } from './fake-kube-apiserver.ts';

/** What most integration tests run against: a real Prometheus, the FAKE Kubernetes API and the adapter. */
export interface IntegrationStack {
  readonly prometheus: PrometheusProcess;
  readonly kube: FakeKubeApiServer;
  readonly adapter: TestAdapter;
  /** The adapter's self-metrics endpoint. */
  readonly metricsUrl: string;
  close(): Promise<void>;
}

/** A rule file with this text, in a fresh temporary directory. */
export function writeRuleFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pma-rules-')), 'rules.yaml');
  writeFileSync(file, text);
  return file;
}

/** Prometheus with `series` (default: the integration dataset), the dataset's objects, and the adapter on `config`. */
export async function startIntegrationStack(options: { config: string; series?: SeriesSpec[]; adapter?: Partial<ServeOptions> }): Promise<IntegrationStack> {
  const prometheus = await startPrometheus({ series: options.series ?? integrationSeries(), fromSeconds: START, toSeconds: START + 4 * 3600, stepSeconds: 15 });
  const kube = await startFakeKubeApiServer();
  addIntegrationObjects(kube);
  const port = await freeLoopbackPort();
  const adapter = await startTestAdapter({
    config: options.config,
    prometheusUrl: prometheus.url,
    kubeconfig: kube.kubeconfigPath,
    metricsBindAddress: `127.0.0.1:${port}`,
    ...options.adapter,
  });
  return {
    prometheus,
    kube,
    adapter,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
    async close() {
      await adapter.close();
      await kube.stop();
      await prometheus.stop();
    },
  };
}
