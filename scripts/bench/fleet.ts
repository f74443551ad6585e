/**
 * `npm run bench -- --only fleet`: one short runbook (a transactional sql
 * step and a read-only wait) across N databases on two loopback PostgreSQL
 * servers. Measured in the same script on the same databases:
 *
 *   - the floor: the library's runRunbook called N times in a plain loop
 *     (the work itself, no fleet);
 *   - `runFleet` in this process with --jobs 1, 2, 4 and 8 (8 shows where two cores saturate);
 *   - a shell loop of `cutover run` processes, and `xargs -P 4` of them:
 *     what people do today;
 *   - queue mode: `runFleetOnQueue` here (the coordinator) with two
 *     `cutover fleet worker` processes (started before the clock, as a
 *     deployment keeps them running) at --concurrency 1 and 2, against
 *     in-process --jobs 2 and 4: equal concurrency. The queue database is a
 *     database on the first server.
 *
 * Per-target overhead of the fleet = (fleet --jobs 1 wall - floor wall) / N.
 * A `cutover run` process costs seconds on a busy 2-core machine, so the two
 * shell loops run over the first `shellTargets` databases only (default 20)
 * and are compared per target.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory, loadRunbook, registry, runFleet, runFleetOnQueue, runRunbook } from '../../src/index.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { median, time } from './measure.js';
import { runbookText } from '../../test/helpers/runbook.js';
import { inventoryText } from '../../test/helpers/fleet.js';

export interface FleetBenchOptions {
  readonly version: PgVersion;
  readonly repeat: number;
  readonly targets: number;
  readonly shellTargets?: number;
}

// Compiled to dist/scripts/bench/: the CLI (the bundle users run) is at dist/cli/main.js.
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

/** Every target runs this: a transactional insert (with its undo) and a read-only wait; DB_URL comes from the inventory. */
const RUNBOOK = runbookText({
  name: 'fleet bench',
  connections: { db: '${DB_URL}' },
  steps: [
    {
      id: 'migrate',
      kind: 'sql',
      connection: 'db',
      sql: "INSERT INTO effects (step) VALUES ('migrate')",
      rollback: "DELETE FROM effects WHERE step = 'migrate'",
    },
    { id: 'check', kind: 'wait', connection: 'db', query: 'SELECT count(*) > 0 FROM effects', expect: true, interval: '100ms', timeout: '10s' },
  ],
}).text;

function stats(xs: readonly number[]): string {
  const sorted = [...xs].sort((a, b) => a - b);
  const f = (n: number | undefined) => `${((n ?? NaN) / 1000).toFixed(2)} s`;
  return `${f(sorted[0]).padStart(8)} ${f(median(sorted)).padStart(8)} ${f(sorted.at(-1)).padStart(8)}`;
}

export async function benchFleet(options: FleetBenchOptions): Promise<void> {
  const { version, repeat, targets: n } = options;
  console.log(`fleet bench: ${n} databases on two PostgreSQL ${version} servers, a 2-step runbook (transactional sql, wait); min/median/max of ${repeat}`);
  const servers: TestServer[] = await Promise.all([startPostgres(version, { max_connections: '100' }), startPostgres(version, { max_connections: '100' })]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-fleet-'));
  try {
    const names = Array.from({ length: n }, (_, i) => `f${String(i + 1).padStart(3, '0')}`);
    const serverOf = (i: number) => servers[i % 2] as TestServer;
    for (const s of servers) {
      await s.query('CREATE DATABASE tmpl');
      await s.query('CREATE TABLE effects (id serial PRIMARY KEY, step text NOT NULL)', [], 'tmpl');
      await s.release('tmpl');
    }
    const started = Date.now();
    for (const [i, name] of names.entries()) await serverOf(i).query(`CREATE DATABASE ${name} TEMPLATE tmpl`);
    console.log(`created ${n} databases in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    const url = (i: number) => serverOf(i).urlFor(names[i] as string);
    const runbookFile = path.join(dir, 'bench.yaml');
    writeFileSync(runbookFile, RUNBOOK);
    const inventoryFile = path.join(dir, 'inventory.yaml');
    writeFileSync(inventoryFile, inventoryText({ name: 'bench', targets: names.map((name, i) => ({ name, variables: { DB_URL: url(i) } })) }));
    const inventory = loadInventory(inventoryFile);
    let round = 0;
    const fresh = () => path.join(dir, `state-${round++}`);

    const rows: { label: string; times: number[]; count: number }[] = [];
    const measure = async (label: string, count: number, body: (stateDir: string) => Promise<void> | void) => {
      const times: number[] = [];
      for (let r = 0; r < repeat; r++) {
        const stateDir = fresh();
        times.push(await time(() => body(stateDir)));
        rmSync(stateDir, { recursive: true, force: true });
      }
      rows.push({ label, times, count });
      console.log(`  ${label.padEnd(42)} ${String(count).padStart(7)} ${stats(times)}   ${(median(times) / count).toFixed(0).padStart(5)} ms`);
    };
    console.log(`  ${'configuration'.padEnd(42)} targets ${'min'.padStart(8)} ${'median'.padStart(8)} ${'max'.padStart(8)}   wall/target`);

    await measure('floor: runRunbook loop (library)', n, async (stateDir) => {
      for (const [i, name] of names.entries()) {
        const runbook = loadRunbook(runbookFile, { registry, env: { ...process.env, DB_URL: url(i) } });
        const result = await runRunbook(runbook, { registry, stateDir: path.join(stateDir, name) });
        if (result.status !== 'succeeded') throw new Error(`${name}: ${result.status}`);
      }
    });
    for (const jobs of [1, 2, 4, 8]) {
      await measure(`cutover fleet run --jobs ${jobs} (in-process)`, n, async (stateDir) => {
        const result = await runFleet(inventory, runbookFile, 'run', { registry, stateDir, jobs });
        if (result.outcome !== 'succeeded') throw new Error(`fleet: ${result.outcome}`);
      });
    }
    const shell = names.slice(0, Math.min(n, options.shellTargets ?? 20));
    const script = path.join(dir, 'loop.sh');
    writeFileSync(
      script,
      `#!/bin/sh\nset -e\nSTATE="$1"\n${shell.map((name, i) => `DB_URL='${url(i)}' "${process.execPath}" "${CLI}" run "${runbookFile}" --yes --state-dir "$STATE/${name}" > /dev/null 2>&1`).join('\n')}\n`,
    );
    await measure('shell loop of cutover run', shell.length, (stateDir) => void execFileSync('sh', [script, stateDir]));
    const lines = path.join(dir, 'xargs.txt');
    writeFileSync(lines, `${shell.map((name, i) => `${url(i)} ${name}`).join('\n')}\n`);
    await measure(
      'xargs -P 4 of cutover run',
      shell.length,
      (stateDir) =>
        void execFileSync('sh', [
          '-c',
          `xargs -P 4 -L 1 sh -c 'DB_URL="$0" "${process.execPath}" "${CLI}" run "${runbookFile}" --yes --state-dir "${stateDir}/$1" > /dev/null 2>&1' < "${lines}"`,
        ]),
    );

    // Queue mode: a fresh fleet (inventory name) per round, the same databases.
    await servers[0]?.query('CREATE DATABASE fleet_queue');
    const queueUrl = (servers[0] as TestServer).urlFor('fleet_queue');
    const timing = ['--poll-interval', '0.5', '--maintenance-interval', '30', '--takeover-after', '300'];
    for (const concurrency of [1, 2]) {
      const workers: ChildProcess[] = [0, 1].map(() =>
        spawn(process.execPath, [CLI, 'fleet', 'worker', '--queue', queueUrl, '--concurrency', String(concurrency), ...timing], { stdio: 'ignore' }),
      );
      try {
        await measure(`queue: 2 workers x --concurrency ${concurrency}`, n, async () => {
          const file = path.join(dir, `inventory-q${round++}.yaml`);
          writeFileSync(file, inventoryText({ name: `benchq${round}`, targets: names.map((name, i) => ({ name, variables: { DB_URL: url(i) } })) }));
          const result = await runFleetOnQueue(loadInventory(file), runbookFile, 'run', {
            registry,
            queue: { url: queueUrl, pollingSeconds: 0.5 },
            pollMs: 100,
          });
          if (result.outcome !== 'succeeded')
            throw new Error(`fleet on the queue: ${result.outcome} ${JSON.stringify(result.targets.filter((t) => t.status !== 'succeeded').slice(0, 3))}`);
        });
      } finally {
        for (const w of workers) w.kill('SIGTERM');
        await Promise.all(
          workers.map(
            (w) =>
              new Promise((resolve) => {
                if (w.exitCode !== null) resolve(null);
                else w.on('exit', resolve);
              }),
          ),
        );
      }
    }

    const row = (label: string) => rows.find((r) => r.label.startsWith(label));
    const med = (label: string) => median(row(label)?.times ?? []);
    const perTarget = (label: string) => med(label) / (row(label)?.count ?? 1);
    const floor = med('floor');
    const jobs1 = med('cutover fleet run --jobs 1');
    console.log('');
    console.log(`  fleet overhead per target (--jobs 1 minus the floor, / ${n}): ${((jobs1 - floor) / n).toFixed(1)} ms`);
    console.log(`  per target, shell loop / fleet --jobs 1: ${(perTarget('shell loop') / perTarget('cutover fleet run --jobs 1')).toFixed(1)}x`);
    console.log(`  per target, xargs -P 4 / fleet --jobs 4: ${(perTarget('xargs') / perTarget('cutover fleet run --jobs 4')).toFixed(1)}x`);
    console.log(
      `  queue mode / in-process at equal concurrency: 2 workers x 1 / --jobs 2 ${(med('queue: 2 workers x --concurrency 1') / med('cutover fleet run --jobs 2')).toFixed(2)}x, 2 workers x 2 / --jobs 4 ${(med('queue: 2 workers x --concurrency 2') / med('cutover fleet run --jobs 4')).toFixed(2)}x (target: within 1.5x)`,
    );
    console.log(
      `  fleet speed-up over --jobs 1: --jobs 2 ${(jobs1 / med('cutover fleet run --jobs 2')).toFixed(2)}x, --jobs 4 ${(jobs1 / med('cutover fleet run --jobs 4')).toFixed(2)}x, --jobs 8 ${(jobs1 / med('cutover fleet run --jobs 8')).toFixed(2)}x`,
    );
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
