#!/usr/bin/env node
// Launcher: the adapter needs Node.js >= 22.19 (its Kubernetes client's HTTP stack does). Where the
// system's Node is older, re-run with the Node 24 that `npm ci` installs from the npm registry.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  const bundled = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(bundled)) {
    process.stderr.write(`prometheus-metrics-adapter needs Node.js >= 22.19 (this is ${process.versions.node}); run npm ci to install Node 24 into node_modules, or install Node 24.\n`);
    process.exit(1);
  }
  const result = spawnSync(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('prometheus-metrics-adapter is not built: run npm ci (or npm run build) in its directory first.\n');
  process.exit(1);
}
// V8 keeps the compiled code of the ~1,000 modules loaded at start on disk (the OS temp directory, or
// NODE_COMPILE_CACHE), which saves about 70 ms a start. Where the directory is not writable (a read-only root
// file system) this does nothing.
module.enableCompileCache?.();
const { main } = await import(entry.href);
await main(process.argv);
