// `npm test`: typecheck, make sure a real Prometheus is available (installing Debian's package when
// running as root), then run every test file with Node's test runner. Runs under the Node 24 that
// `npm ci` puts in node_modules/.bin, which npm scripts put first on PATH.
import { spawnSync } from 'node:child_process';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`tests need Node.js >= 22.19, this is ${process.versions.node}: run them with \`npm test\` after \`npm ci\`, which provides Node 24`);
  process.exit(1);
}

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--noEmit']);
// The CLI and end-to-end tests run the packaged command, which runs dist/: never test a stale build.
run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']);
const { ensurePrometheus } = await import('../src/demo/prometheus-process.ts');
await ensurePrometheus((m) => console.log(`[test setup] ${m}`));

const patterns = process.argv.slice(2);
// The end-to-end suite needs the control-plane binary. Building it here, outside any test timeout,
// keeps a cold build (minutes) from counting against the suite; later runs reuse the cached binary.
if (patterns.length === 0 || patterns.some((p) => p.includes('e2e'))) {
  const started = Date.now();
  const build = spawnSync('bash', ['scripts/build-kubecp.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (build.status !== 0) {
    console.error('[test setup] scripts/build-kubecp.sh failed: the end-to-end suite cannot run');
    process.exit(build.status ?? 1);
  }
  const lines = build.stdout.trim().split('\n');
  for (const line of lines.slice(0, -1)) console.log(`[test setup] ${line}`);
  process.env.KUBECP = lines.at(-1);
  console.log(`[test setup] kubecp ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${process.env.KUBECP}`);
}
run(process.execPath, [
  '--test',
  '--test-concurrency=2',
  '--test-timeout=600000',
  ...(patterns.length ? patterns : ['src/**/*.test.ts', 'test/**/*.test.ts']),
]);
