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
run(process.execPath, [
  '--test',
  '--test-concurrency=2',
  '--test-timeout=600000',
  ...(patterns.length ? patterns : ['src/**/*.test.ts', 'test/**/*.test.ts']),
]);
