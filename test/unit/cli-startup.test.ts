/**
 * The CLI's start-up (issue 23): a command loads only what it needs. The CLI
 * tested is the bundle users run (dist/cli/): a module resolve hook records
 * which of its chunks (and which packages outside it) a process loaded, and
 * the bundle's metafile says which source files each chunk holds. These
 * tests say what is imported, never how long it takes (that is
 * `npm run bench -- --only startup`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { commandTable } from '../../src/cli/command-table.js';

// This file runs from dist/test/unit/; the CLI is the bundle in dist/cli/, next to its metafile.
const BUNDLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli');
const CLI = path.join(BUNDLE, 'main.js');
const ROOT = path.resolve(BUNDLE, '../..');
/** Each chunk of the bundle (path from the project root) -> the source files in it (from the root, as esbuild names them). */
const CHUNKS = new Map(
  Object.entries(
    (JSON.parse(readFileSync(path.join(BUNDLE, 'meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }).outputs,
  ).map(([chunk, output]) => [chunk, Object.keys(output.inputs)]),
);
// The hook sees ESM imports, not a CommonJS package's own require() calls: pg-boss (CommonJS) is listed
// because importing it loads pg without the hook seeing pg.
const HEAVY = ['pg', 'pg-boss', 'execa', 'listr2', 'enquirer', '@listr2/prompt-adapter-enquirer', 'oracledb'];

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-startup-test-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
writeFileSync(
  path.join(dir, 'hooks.mjs'),
  `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.CUTOVER_TEST_LOADED, resolved.url + '\\n');
  return resolved;
}
`,
);
writeFileSync(
  path.join(dir, 'register.mjs'),
  `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)});\n`,
);

/** Runs the CLI; returns its exit code, output, the npm packages it imported and the layers of src/ it loaded (engine, fleet, ...). */
function run(args: readonly string[]): { code: number | null; stdout: string; stderr: string; packages: Set<string>; layers: Set<string> } {
  const log = path.join(dir, `loaded-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(log, '');
  const result = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(dir, 'register.mjs')).href, CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CUTOVER_TEST_LOADED: log },
    timeout: 30_000,
  });
  // A chunk of the bundle stands for the source files in it, written as paths from the root ("/node_modules/zod/...", "/dist/src/engine/...").
  const urls = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((url) => {
      const inputs = CHUNKS.get(path.relative(ROOT, fileURLToPath(url)));
      return inputs !== undefined ? inputs.map((input) => `/${input}`) : [url];
    });
  assert.ok(
    urls.some((url) => url.startsWith('/dist/src/cli/')),
    'the bundle loaded (its metafile names the files the chunks hold)',
  );
  const packages = new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []));
  const layers = new Set(urls.flatMap((url) => (url.includes('/node_modules/') ? [] : (/\/dist\/src\/([^/]+)\//.exec(url)?.[1] ?? []))));
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, packages, layers };
}

describe('CLI start-up: only what the command needs is imported', () => {
  it('--version and --help import yargs and nothing of the library (no zod, yaml, pg, execa, listr2, enquirer)', () => {
    for (const flag of ['--version', '--help']) {
      const { code, stdout, packages } = run([flag]);
      assert.equal(code, 0, flag);
      assert.ok(packages.has('yargs'), `${flag} should load yargs (the hook sees packages): ${[...packages].join(', ')}`);
      for (const heavy of [...HEAVY, 'zod', 'yaml']) assert.ok(!packages.has(heavy), `${flag} imported ${heavy}`);
      if (flag === '--help') for (const entry of commandTable) assert.ok(stdout.includes(`cutover ${entry.command}`), `help lists ${entry.command}`);
    }
  });

  it('validate loads the schema code but connects to nothing: no engine, fleet, pg, pg-boss, execa, listr2, enquirer or oracledb', () => {
    const file = path.join(dir, 'cutover.yaml');
    writeFileSync(
      file,
      'version: 1\nname: n\nconnections:\n  db:\n    kind: postgres\n    url: postgres://u@localhost/db\nsteps:\n  - id: a\n    kind: sql\n    connection: db\n    sql: SELECT 1\n',
    );
    const { code, stdout, packages, layers } = run(['validate', file]);
    assert.equal(code, 0);
    assert.match(stdout, /valid: "n", 1 step\(s\): a \[sql\]/);
    assert.ok(packages.has('zod') && packages.has('yaml'));
    for (const heavy of HEAVY) assert.ok(!packages.has(heavy), `validate imported ${heavy}`);
    // Through src/runbooks.ts: the kinds and the loader, not the engine that would run them.
    assert.ok(layers.has('runbook') && layers.has('steps'), [...layers].join(', '));
    for (const layer of ['engine', 'fleet']) assert.ok(!layers.has(layer), `validate loaded src/${layer}/`);
  });

  it('help of one command still shows its own options (its module is loaded for it)', () => {
    const { code, stdout } = run(['run', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /--state-dir/);
  });

  it('an option before the command still runs the command', () => {
    // The first word is the option's value, so every module is loaded and yargs picks the command.
    const { code, stdout, stderr } = run(['--state-dir', path.join(dir, 'no-runs'), 'status']);
    assert.equal(code, 2, stdout);
    assert.match(stdout + stderr, /no runs under .*no-runs/);
  });
});

describe('command table', () => {
  it('lists each command with the usage and description of its own module, in help order', async () => {
    for (const entry of commandTable) {
      const module = await entry.load();
      assert.equal(module.command, entry.command, entry.name);
      assert.equal(module.describe, entry.describe, entry.name);
    }
    assert.deepEqual(
      commandTable.map((e) => e.name),
      ['init', 'validate', 'check', 'plan', 'run', 'resume', 'rollback', 'abandon', 'status', 'runs', 'report', 'audit', 'schema', 'fleet'],
    );
  });
});
