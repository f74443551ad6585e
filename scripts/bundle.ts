/**
 * The CLI as users run it (`bin` in package.json): dist/cli/, bundled by
 * esbuild from what tsc wrote to dist/src/. Node's ES module loader costs
 * about a millisecond per file, and `validate` loaded 296 files unbundled (64
 * of them zod's translations of its messages, which every zod entry point
 * re-exports: the bundle still holds them, as text in one chunk rather than
 * 64 modules). Each command stays its own chunk, so
 * a command still loads only what it needs, and the heavy packages a command
 * imports on first use (pg, pg-boss, execa, listr2, enquirer, oracledb) stay
 * outside the bundle, loaded from node_modules as before.
 *
 * dist/cli/meta.json (esbuild's metafile) says which source files each
 * chunk holds: the start-up test reads it to tell what a command loaded.
 *
 *   node dist/scripts/bundle.js      after tsc (npm run build does both)
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

// Compiled to dist/scripts/: the project root is two levels up.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** dist/cli sits as deep as dist/src, so paths the code resolves from its own file (templates, package.json) hold in both. */
const out = path.join(root, 'dist/cli');

/** Imported on first use by the commands that need them; kept as ordinary packages. */
const EXTERNAL = ['pg', 'pg-native', 'pg-boss', 'execa', 'listr2', 'enquirer', '@listr2/*', 'oracledb'];

rmSync(out, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  // The session thread is its own file: sync-pg starts it from `./sync-pg-thread.js` beside itself.
  entryPoints: { main: 'dist/src/cli/main.js', 'sync-pg-thread': 'dist/src/db/sync-pg-thread.js' },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // yaml's build for Node is CommonJS and requires Node's own modules: the bundle gives it a real require.
  banner: { js: "import { createRequire as cutoverCreateRequire } from 'node:module'; const require = cutoverCreateRequire(import.meta.url);" },
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
writeFileSync(path.join(out, 'meta.json'), JSON.stringify(result.metafile));
