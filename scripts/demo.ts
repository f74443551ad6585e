/**
 * `npm run demo`: a whole logical-replication cutover on two embedded
 * PostgreSQL servers and Debian's PgBouncer (which `npm run demo` installs
 * first where it can). A shop database on the old primary replicates to the
 * new one while an application keeps writing orders through PgBouncer; the
 * real CLI plans and runs runbooks/shop-cutover.yaml (freeze,
 * caught up, compare, sequences, statistics, plan check, fallback slot,
 * switch the pooler, detach, fallback subscription), checks that the way
 * back works,
 * shows the sequences a naive START WITH would have left behind next to what
 * cutover set, writes the HTML report, and stops everything it started.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { jsonText, listRuns, readJournal, runsDir } from '../src/index.js';
import { DEMO_RUNBOOK as runbook, demoRunbookEnv } from './demo-runbook.js';
import { startPostgres } from './embedded-postgres.js';
import { startPgBouncer } from './pgbouncer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The CLI as users run it (package.json's bin): the bundle.
const cli = path.join(root, 'dist', 'cli', 'main.js');
/** The name runbooks/shop-cutover.yaml waits for and detaches. */
const SUBSCRIPTION = 'cutover_sub';

/** Asynchronous, so the shop application keeps writing while the CLI runs. */
function cutover(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  process.stdout.write(`\n$ cutover ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit', env });
  return new Promise((resolve) =>
    child.on('close', (code) => {
      resolve(code ?? 1);
    }),
  );
}

const SHOP = `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, amount numeric(10, 2), note text);
  CREATE INDEX orders_customer ON orders (customer_id);`;

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; !(await check());) {
    await sleep(100);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

interface Traffic {
  /** Orders written before the freeze. */
  readonly written: number;
  /** Writes refused between the freeze and the switch. */
  readonly refused: number;
  /** Orders written after the switch, on the new primary. */
  readonly moved: number;
}

/** The application: reads a customer's last orders and inserts an order every 20 ms as shop_app through PgBouncer, until told to stop. */
function application(url: string): { stop(): Promise<Traffic> } {
  let running = true;
  let written = 0;
  let refused = 0;
  let moved = 0;
  const loop = (async () => {
    let client: pg.Client | undefined;
    // stop() clears it while the loop awaits.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    while (running) {
      try {
        if (client === undefined) {
          client = new pg.Client({ connectionString: url });
          client.on('error', () => {});
          await client.connect();
        }
        const customer = 1 + Math.floor(Math.random() * 200);
        await client.query('SELECT id, amount FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 5', [customer]);
        await client.query("INSERT INTO orders (customer_id, amount, note) VALUES ($1, 9.99, 'web')", [customer]);
        if (refused === 0) written++;
        else moved++;
      } catch {
        refused++;
        await client?.end().catch(() => {});
        client = undefined;
      }
      await sleep(20);
    }
    await client?.end().catch(() => {});
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { written, refused, moved };
    },
  };
}

async function main(): Promise<void> {
  process.stdout.write('starting two embedded PostgreSQL 18 servers (old primary, new primary) …\n');
  // pg_stat_statements on the old primary tells plan-check which queries the application runs.
  const [old, fresh] = await Promise.all([
    startPostgres(18, { wal_level: 'logical', shared_preload_libraries: 'pg_stat_statements' }),
    startPostgres(18, { wal_level: 'logical' }),
  ]);
  process.stdout.write(`old primary: port ${old.port}, ${old.dataDir}\nnew primary: port ${fresh.port}, ${fresh.dataDir}\n`);
  let app: ReturnType<typeof application> | undefined;
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | undefined;
  try {
    for (const server of [old, fresh]) {
      await server.query('CREATE DATABASE shop');
      await server.query(SHOP, [], 'shop');
    }
    for (const server of [old, fresh]) {
      await server.query('CREATE ROLE shop_app LOGIN');
      await server.query('GRANT SELECT, INSERT ON customers, orders TO shop_app; GRANT USAGE ON SEQUENCE orders_id_seq TO shop_app', [], 'shop');
    }
    await old.query(
      `CREATE EXTENSION pg_stat_statements;
       INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 200) g;
       INSERT INTO orders (customer_id, amount, note) SELECT 1 + g % 200, (g % 500) / 10.0, 'shop' FROM generate_series(1, 5000) g;
       CREATE PUBLICATION shop_pub FOR TABLE customers, orders;`,
      [],
      'shop',
    );
    await fresh.query(
      `CREATE SUBSCRIPTION ${SUBSCRIPTION} CONNECTION 'host=127.0.0.1 port=${old.port} dbname=shop user=postgres' PUBLICATION shop_pub`,
      [],
      'shop',
    );
    await until(async () => (await fresh.query<{ n: number }>('SELECT count(*)::int AS n FROM orders', [], 'shop'))[0]?.n === 5000, 'the initial copy');
    const appPassword = 'shop-app-demo';
    bouncer = await startPgBouncer({ databases: { shop: { host: '127.0.0.1', port: old.port, dbname: 'shop' } }, users: { shop_app: appPassword } });
    process.stdout.write(`PgBouncer: port ${bouncer.port}, transaction pooling, [databases] in ${bouncer.databasesFile}\n`);
    app = application(bouncer.urlFor('shop', { user: 'shop_app', password: appPassword }));
    process.stdout.write('replicating; the shop application is writing orders through PgBouncer to the old primary …\n');
    await sleep(1000);

    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'cutover-demo-'));
    const env = {
      ...process.env,
      ...demoRunbookEnv({
        oldPort: old.port,
        newPort: fresh.port,
        pgbouncerPort: bouncer.port,
        pgbouncerAdminPassword: bouncer.adminPassword,
        pgbouncerDatabasesFile: bouncer.databasesFile,
      }),
      CUTOVER_STATE_DIR: stateDir,
    };
    const steps: [string[], number][] = [
      [['validate', runbook], 0],
      // Planned while the application still writes: compare would (rightly) find the copy behind, so it waits for the run.
      [['plan', runbook, '--only', 'slots-before', 'sequences'], 0],
      [['run', runbook, '--yes', '--label', 'demo', '--environment', 'laptop'], 0],
    ];
    for (const [args, expected] of steps) {
      const code = await cutover(args, env);
      if (code !== expected) throw new Error(`cutover ${args.join(' ')} exited ${code}, expected ${expected}`);
    }
    // A few orders on the new primary, through the same PgBouncer address the application always used.
    const [{ before } = { before: 0 }] = await fresh.query<{ before: number }>("SELECT count(*)::int AS before FROM orders WHERE note = 'web'", [], 'shop');
    const onNew = async () => (await fresh.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE note = 'web'", [], 'shop'))[0]?.n ?? 0;
    await until(async () => (await onNew()) >= before + 10, 'orders on the new primary');
    const { written, refused, moved } = await app.stop();
    app = undefined;
    // The way back: every order the new primary took reaches the old one over the fallback subscription.
    const webOrders = "SELECT count(*)::int AS n FROM orders WHERE note = 'web'";
    const [{ n: onNewTotal } = { n: -1 }] = await fresh.query<{ n: number }>(webOrders, [], 'shop');
    await until(
      async () => (await old.query<{ n: number }>(webOrders, [], 'shop'))[0]?.n === onNewTotal,
      'the fallback subscription to bring the new orders to the old primary',
    );
    process.stdout.write(
      `\nthe application wrote ${written} orders, ${refused} writes were refused after the freeze, then ${moved} orders went to the new primary through PgBouncer` +
        ` and reached the old primary over the fallback subscription\n`,
    );

    const run = listRuns(stateDir).find((r) => r.mode === 'run');
    if (run === undefined) throw new Error('no run recorded');
    const planned = readJournal(path.join(runsDir(stateDir), run.runId)).find((r) => r.event.type === 'step.planned' && r.event.stepId === 'sequences')?.event;
    const rows = (planned?.type === 'step.planned' ? planned.plan.tables?.[0]?.rows : undefined) ?? [];
    process.stdout.write('\nsequences on the new primary:\n  sequence                  next after START WITH   next set by cutover\n');
    for (const row of rows) {
      // START WITH changes only what RESTART goes back to: the counter stays where it was.
      process.stdout.write(`  ${jsonText(row['sequence']).padEnd(26)}${jsonText(row['current']).padStart(20)}${jsonText(row['next']).padStart(22)}\n`);
    }
    const [{ max } = { max: '?' }] = await fresh.query<{ max: string }>('SELECT max(id)::text AS max FROM orders', [], 'shop');
    process.stdout.write(`  (orders already holds ids up to ${max}: the first insert after START WITH would have collided)\n`);

    const report = path.join(stateDir, 'report.html');
    if ((await cutover(['report', run.runId, '--format', 'html', '--out', report], env)) !== 0) throw new Error('report failed');
    process.stdout.write(`\nreport: ${report}\njournals: ${runsDir(stateDir)}\n`);
  } finally {
    await app?.stop();
    await bouncer?.stop();
    await Promise.all([old.stop(), fresh.stop()]);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
