import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const DEPLOY = new URL('../../../deploy/', import.meta.url).pathname;

export interface ManifestPatches {
  /** Loopback port the adapter process listens on. */
  readonly adapterPort: number;
  /** CA bundle that verifies the adapter's serving certificate. */
  readonly caBundlePem: string;
}

/**
 * deploy/*.yaml as shipped, with only what cannot exist on this machine changed (each change is
 * listed in test/e2e/README.md):
 * - the Service becomes `type: ExternalName` to localhost, because no kube-proxy or pod network runs;
 * - the APIServices point at the adapter's loopback port and carry its CA in `caBundle` (instead of
 *   `insecureSkipTLSVerify`), so the aggregator really verifies the serving certificate;
 * - the Deployment is not applied: no kubelet runs pods, the adapter runs as a process instead.
 */
export function patchedDeployManifests(patches: ManifestPatches): { objects: Record<string, any>[]; skipped: string[] } {
  const objects: Record<string, any>[] = [];
  const skipped: string[] = [];
  const files = [
    ...readdirSync(DEPLOY).filter((f) => f.endsWith('.yaml')).sort(),
    // The optional external and resource metrics APIServices: this suite's rule file serves both.
    ...readdirSync(path.join(DEPLOY, 'optional')).filter((f) => f.endsWith('.yaml')).sort().map((f) => `optional/${f}`),
  ];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8'))) {
      const obj = doc.toJS() as Record<string, any> | null;
      if (!obj) continue;
      if (obj.kind === 'Deployment') {
        skipped.push(`${file}: Deployment ${obj.metadata.name}`);
        continue;
      }
      if (obj.kind === 'Service') {
        obj.spec = { type: 'ExternalName', externalName: 'localhost', ports: obj.spec.ports };
      }
      if (obj.kind === 'APIService') {
        obj.spec.service.port = patches.adapterPort;
        delete obj.spec.insecureSkipTLSVerify;
        obj.spec.caBundle = Buffer.from(patches.caBundlePem).toString('base64');
      }
      objects.push(obj);
    }
  }
  return { objects, skipped };
}
