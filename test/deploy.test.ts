// Static checks of the manifests in deploy/: they parse, they agree with each other, the rule
// ConfigMap matches config/rules.yaml, RBAC never opens the API to everyone, and every flag the
// Deployment passes exists in the CLI.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const EXAMPLES = join(DEPLOY, 'examples');
const NAMESPACE = 'prometheus-metrics-adapter';
const OPEN_TO_EVERYONE = new Set(['system:anonymous', 'system:unauthenticated', 'system:authenticated']);

interface Metadata {
  name?: unknown;
  namespace?: unknown;
}
interface Manifest {
  file: string;
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: Metadata;
  [field: string]: unknown;
}
interface Subject {
  kind?: string;
  name?: string;
  namespace?: string;
}
interface Binding extends Manifest {
  subjects?: Subject[];
  roleRef?: { kind?: string; name?: string };
}
interface ApiService extends Manifest {
  spec?: {
    group?: string;
    version?: string;
    service?: { name?: string; namespace?: string; port?: number };
    groupPriorityMinimum?: number;
    versionPriority?: number;
    insecureSkipTLSVerify?: boolean;
    caBundle?: string;
  };
}
interface Service extends Manifest {
  spec?: { selector?: Record<string, string>; ports?: { port?: number; targetPort?: number | string }[] };
}
interface Probe {
  httpGet?: { path?: string; port?: number | string; scheme?: string };
}
interface Container {
  name?: string;
  args?: string[];
  ports?: { name?: string; containerPort?: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
    seccompProfile?: { type?: string };
  };
  volumeMounts?: { name?: string; mountPath?: string }[];
}
interface Deployment extends Manifest {
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { labels?: Record<string, string> };
      spec?: {
        serviceAccountName?: string;
        securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type?: string } };
        containers?: Container[];
        volumes?: { name?: string; configMap?: { name?: string }; emptyDir?: object }[];
      };
    };
  };
}

function loadDir(dir: string): Manifest[] {
  const out: Manifest[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()) {
    const file = join(dir, name);
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      assert.deepEqual(doc.errors.map((e) => e.message), [], `${file} does not parse`);
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) continue; // an empty document, e.g. after a trailing ---
      assert.equal(typeof value, 'object', `${file}: a document is not a mapping`);
      out.push({ ...(value as object), file: name });
    }
  }
  return out;
}

const manifests = loadDir(DEPLOY);
// deploy/optional holds the external and resource metrics APIServices, applied only on request.
const optional = loadDir(join(DEPLOY, 'optional'));
const ofKind = <T extends Manifest>(kind: string): T[] => manifests.filter((m) => m.kind === kind) as T[];
const nameOf = (m: Manifest): string => String(m.metadata?.name);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'APIService']);

describe('deploy/ manifests', () => {
  it('every file parses and every object has apiVersion, kind and metadata.name', () => {
    const all = [...manifests, ...loadDir(EXAMPLES)];
    assert.ok(all.length > 0, 'no manifests found');
    for (const m of all) {
      assert.ok(typeof m.apiVersion === 'string' && m.apiVersion, `${m.file}: apiVersion missing`);
      assert.ok(typeof m.kind === 'string' && m.kind, `${m.file}: kind missing`);
      assert.ok(typeof m.metadata?.name === 'string' && m.metadata.name, `${m.file}: metadata.name missing`);
    }
  });

  it('defines the namespace first and puts namespaced objects in it (the auth-reader RoleBinding in kube-system)', () => {
    const first = manifests[0];
    assert.equal(first?.kind, 'Namespace');
    assert.equal(first?.metadata?.name, NAMESPACE);
    for (const m of manifests) {
      if (CLUSTER_SCOPED.has(String(m.kind))) {
        assert.equal(m.metadata?.namespace, undefined, `${m.file}: ${String(m.kind)} is cluster-scoped`);
      } else if (m.kind === 'RoleBinding' && (m as Binding).roleRef?.name === 'extension-apiserver-authentication-reader') {
        assert.equal(m.metadata?.namespace, 'kube-system', `${m.file}: must be in kube-system to reach that Role`);
      } else {
        assert.equal(m.metadata?.namespace, NAMESPACE, `${m.file}: ${String(m.kind)} ${nameOf(m)} is not in ${NAMESPACE}`);
      }
    }
  });

  it('the rule ConfigMap carries exactly config/rules.yaml (run node scripts/sync-deploy-config.mjs)', () => {
    const cms = ofKind<Manifest & { data?: Record<string, string> }>('ConfigMap').filter(
      (m) => nameOf(m) === 'prometheus-metrics-adapter-rules',
    );
    assert.equal(cms.length, 1, 'ConfigMap prometheus-metrics-adapter-rules not found');
    const expected = readFileSync(join(ROOT, 'config', 'rules.yaml'), 'utf8');
    assert.ok(
      cms[0]!.data?.['rules.yaml'] === expected,
      `deploy/${cms[0]!.file} differs from config/rules.yaml: run node scripts/sync-deploy-config.mjs`,
    );
  });

  it('every APIService points at the Service and namespace defined here', () => {
    const services = ofKind<Service>('Service');
    const apiServices = ofKind<ApiService>('APIService');
    assert.deepEqual(apiServices.map(nameOf).sort(), ['v1beta1.custom.metrics.k8s.io', 'v1beta2.custom.metrics.k8s.io']);
    const optionalApiServices = optional.filter((m) => m.kind === 'APIService') as ApiService[];
    assert.deepEqual(optionalApiServices.map(nameOf).sort(), ['v1beta1.external.metrics.k8s.io', 'v1beta1.metrics.k8s.io']);
    for (const a of [...apiServices, ...optionalApiServices]) {
      const spec = a.spec ?? {};
      assert.equal(nameOf(a), `${spec.version}.${spec.group}`, `${a.file}: name must be <version>.<group>`);
      const svc = services.find((s) => nameOf(s) === spec.service?.name && s.metadata?.namespace === spec.service?.namespace);
      assert.ok(svc, `${a.file}: service ${spec.service?.namespace}/${spec.service?.name} is not defined in deploy/`);
      assert.equal(spec.service?.namespace, NAMESPACE);
      assert.ok(
        (svc.spec?.ports ?? []).some((p) => p.port === (spec.service?.port ?? 443)),
        `${a.file}: port ${spec.service?.port} is not a port of the Service`,
      );
      assert.equal(spec.groupPriorityMinimum, 100);
      assert.equal(spec.versionPriority, spec.version === 'v1beta2' ? 200 : 100);
      assert.ok(!(spec.insecureSkipTLSVerify && spec.caBundle), `${a.file}: insecureSkipTLSVerify may not be true with a caBundle`);
    }
  });

  it('the Service selects the Deployment pods and targets the container port', () => {
    const [svc] = ofKind<Service>('Service');
    const [deployment] = ofKind<Deployment>('Deployment');
    assert.ok(svc && deployment);
    const labels = deployment.spec?.template?.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) assert.equal(labels[k], v, `Service selector ${k}=${v}`);
    const containerPorts = (deployment.spec?.template?.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
    for (const p of svc.spec?.ports ?? []) {
      assert.ok(
        containerPorts.some((cp) => cp.containerPort === p.targetPort || cp.name === p.targetPort),
        `Service targetPort ${p.targetPort} is no container port`,
      );
    }
  });

  it('no (Cluster)RoleBinding grants anything to anonymous, unauthenticated or all authenticated users', () => {
    const bindings = [...manifests, ...optional].filter((m) => m.kind === 'ClusterRoleBinding' || m.kind === 'RoleBinding') as Binding[];
    assert.ok(bindings.length >= 4);
    const serviceAccounts = new Set(ofKind<Manifest>('ServiceAccount').map((sa) => `${String(sa.metadata?.namespace)}/${nameOf(sa)}`));
    for (const b of bindings) {
      assert.ok((b.subjects ?? []).length > 0, `${b.file}: ${nameOf(b)} has no subjects`);
      for (const s of b.subjects ?? []) {
        assert.ok(!OPEN_TO_EVERYONE.has(String(s.name)), `${b.file}: ${nameOf(b)} binds ${s.kind} ${s.name}`);
        if (s.kind === 'ServiceAccount') {
          const id = `${s.namespace}/${s.name}`;
          assert.ok(
            serviceAccounts.has(id) || id === 'kube-system/horizontal-pod-autoscaler',
            `${b.file}: ${nameOf(b)} binds the unknown ServiceAccount ${id}`,
          );
        }
      }
    }
  });

  it('the Deployment runs hardened, with probes, the rule ConfigMap and its own ServiceAccount', () => {
    const [deployment] = ofKind<Deployment>('Deployment');
    const pod = deployment?.spec?.template?.spec;
    assert.ok(pod);
    assert.equal(deployment.spec?.replicas, 2);
    assert.ok(ofKind<Manifest>('ServiceAccount').some((sa) => nameOf(sa) === pod.serviceAccountName));
    const [container] = pod.containers ?? [];
    assert.ok(container);
    const sc = container.securityContext ?? {};
    assert.equal(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities?.drop, ['ALL']);
    assert.equal(sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.deepEqual(
      [container.livenessProbe?.httpGet?.path, container.readinessProbe?.httpGet?.path],
      ['/livez', '/readyz'],
    );
    assert.equal(container.livenessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(container.readinessProbe?.httpGet?.scheme, 'HTTPS');
    assert.ok(container.resources?.requests?.cpu && container.resources.requests.memory);

    // --config names rules.yaml inside the mount of the rule ConfigMap.
    const config = (container.args ?? []).find((a) => a.startsWith('--config='))?.slice('--config='.length);
    const rulesVolume = (pod.volumes ?? []).find((v) => v.configMap?.name === 'prometheus-metrics-adapter-rules');
    const mount = (container.volumeMounts ?? []).find((m) => m.name === rulesVolume?.name);
    assert.ok(config && mount?.mountPath, 'the rule ConfigMap is not mounted');
    assert.equal(config, `${mount.mountPath}/rules.yaml`);
    // The writable paths of a read-only root filesystem are emptyDirs.
    for (const path of ['/tmp', '/var/run/serving-cert']) {
      const m = (container.volumeMounts ?? []).find((vm) => vm.mountPath === path);
      assert.ok(m && (pod.volumes ?? []).find((v) => v.name === m.name)?.emptyDir, `${path} is not an emptyDir`);
    }
  });

  it('every flag in the Deployment args is in the --help output', () => {
    const help = spawnSync(process.execPath, [join(ROOT, 'bin', 'prometheus-metrics-adapter.js'), '--help'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(help.status, 0, `--help failed (is dist/ built? npm run build): ${help.stderr}`);
    const known = new Set(help.stdout.match(/--[a-z0-9][a-z0-9-]*/g) ?? []);
    const args = ofKind<Deployment>('Deployment').flatMap((d) => (d.spec?.template?.spec?.containers ?? []).flatMap((c) => c.args ?? []));
    assert.ok(args.length > 0);
    for (const arg of args) {
      assert.match(arg, /^--[a-z0-9-]+(=|$)/, `argument ${arg} is not a --flag[=value]`);
      const flag = arg.split('=')[0]!;
      assert.ok(known.has(flag), `${flag} is not a flag of prometheus-metrics-adapter (see --help)`);
    }
  });
});
