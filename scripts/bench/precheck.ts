/**
 * upgrade-precheck on a live PostgreSQL 15 cluster (Debian's binaries) with
 * many tables, against Debian's own `pg_upgrade --check` (15 -> 15) on the
 * same cluster, in the same run: a whole `cutover run` process of the step
 * against the whole pg_upgrade process, order alternated, min/median/max.
 * Target (issue 23): at or under 0.5x.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgUpgradeArgv } from '../../src/precheck/pg-upgrade.js';
import { binDir, freePort, initPostgres, startPostgres } from '../embedded-postgres.js';
import { alternate, report, runProcess, spread } from './measure.js';
import { runbookFile as writeRunbook, runbookText } from '../../test/helpers/runbook.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export async function benchPrecheck(options: { readonly repeat: number; readonly tables: number }): Promise<void> {
  const { repeat, tables } = options;
  console.log(
    `upgrade-precheck: ${tables.toLocaleString('en-US')} tables on a live PostgreSQL 15 (Debian), whole processes, min/median/max of ${repeat}, order alternated`,
  );
  const old = await startPostgres(15);
  const fresh = await initPostgres(15);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
  try {
    const started = Date.now();
    for (let done = 0; done < tables; done += 1000) {
      await old.query(
        `DO $$ BEGIN FOR i IN ${done + 1}..${Math.min(tables, done + 1000)} LOOP
           EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, name text, amount numeric, at timestamptz)', i);
         END LOOP; END $$`,
      );
    }
    console.log(`  created in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    const { file } = writeRunbook(
      runbookText({
        name: 'precheck bench',
        connections: { old: old.url },
        steps: [{ id: 'precheck', kind: 'upgrade-precheck', connection: 'old', targetVersion: 15 }],
      }).text,
      { dir, name: 'precheck.yaml' },
    );
    const argv = pgUpgradeArgv({
      oldBindir: binDir(15),
      newBindir: binDir(15),
      oldDatadir: old.dataDir,
      newDatadir: fresh.dataDir,
      user: 'postgres',
      oldPort: old.port,
      newPort: await freePort(),
      socketDir: old.socketDir,
      ...(process.getuid?.() === 0 ? { runAs: ['runuser', '-u', 'postgres', '--'] } : {}),
    });
    const [pgUpgrade, ours] = await alternate(repeat, [
      () => runProcess(argv, { cwd: os.tmpdir() }),
      () => runProcess([process.execPath, CLI, 'run', file, '--yes', '--state-dir', dir]),
    ]);
    report({
      bench: 'precheck',
      what: 'cutover run of upgrade-precheck (whole process)',
      baseline: "pg_upgrade --check, 15 -> 15 (Debian's, live)",
      baselineMs: spread(pgUpgrade!),
      candidateMs: spread(ours!),
      target: 0.5,
    });
  } finally {
    await old.stop();
    fresh.remove();
  }
}
