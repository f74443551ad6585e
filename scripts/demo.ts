/**
 * `npm run demo`: starts its own PostgreSQL (embedded, no other setup),
 * creates a small database, then drives the real CLI through plan, run,
 * status, audit verify and rollback of runbooks/demo.yaml.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres } from './embedded-postgres.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
const runbook = path.join(root, 'runbooks', 'demo.yaml');

function cutover(args: string[], env: NodeJS.ProcessEnv): number {
  process.stdout.write(`\n$ cutover ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', env });
  return result.status ?? 1;
}

async function main(): Promise<void> {
  process.stdout.write('starting an embedded PostgreSQL 18 …\n');
  const server = await startPostgres(18);
  try {
    // The old database handed out order ids 1-3 and invoice numbers up to
    // 1041; the new one got the rows, but its sequences start from scratch.
    await server.query('CREATE DATABASE legacy');
    await server.query(
      `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);
       CREATE SEQUENCE invoice_no START 1000;
       INSERT INTO orders (item) VALUES ('anvil'), ('rope'), ('rocket skates');
       SELECT setval('invoice_no', 1041);`,
      [],
      'legacy',
    );
    await server.query('CREATE DATABASE shop');
    await server.query(
      `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);
       CREATE SEQUENCE invoice_no START 1000;
       INSERT INTO orders (id, item) VALUES (1, 'anvil'), (2, 'rope'), (3, 'rocket skates');`,
      [],
      'shop',
    );
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'cutover-demo-'));
    const env = {
      ...process.env,
      DEMO_SOURCE_URL: server.urlFor('legacy'),
      DEMO_TARGET_URL: server.urlFor('shop'),
      CUTOVER_STATE_DIR: stateDir,
    };
    const steps: [string[], number][] = [
      [['validate', runbook], 0],
      [['plan', runbook], 0],
      [['run', runbook, '--yes'], 0],
      [['status', '--last'], 0],
      [['audit', 'verify', '--last'], 0],
      [['rollback', '--last', '--yes'], 0],
    ];
    for (const [args, expected] of steps) {
      const code = cutover(args, env);
      if (code !== expected) throw new Error(`cutover ${args.join(' ')} exited ${code}, expected ${expected}`);
    }
    const columns = await server.query("SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped", [], 'shop');
    process.stdout.write(
      `\nafter rollback, orders has columns: ${columns.map((c) => c['attname']).join(', ')}\njournals are under ${path.join(stateDir, 'runs')}\n`,
    );
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
