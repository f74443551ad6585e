/**
 * analyze on a generated database of 500 tables of mixed sizes (a few large,
 * many small), one loopback PostgreSQL 18, against Debian's
 * `vacuumdb --analyze-only --jobs=2` on the same database in the same run.
 *
 * Targets (issue 6): the step with jobs: 2 no slower than vacuumdb;
 * onlyMissing right after a full run under 5% of the full run; copyFrom on
 * 18 at least 5x faster than a full ANALYZE to "every relation has
 * statistics".
 *
 * Two floors for context, with nothing of the engine: a new session running
 * the catalog query of plan and verify (what any onlyMissing run must do),
 * and the copy alone with the step's own code (2 sessions each side, no plan,
 * verify, lock or journal): if a floor misses its target, the step cannot
 * meet it on this machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { registry, runRunbook, type RunEvent } from '../../src/index.js';
import { relationsSql } from '../../src/analyze/relations.js';
import { copyStatistics } from '../../src/analyze/copy.js';
import type { Queryable, QueryResult } from '../../src/db/session.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { report, spread, time } from './measure.js';
import { loadRunbookText, runbookText } from '../../test/helpers/runbook.js';
import { systemPgTool } from '../tools.js';

export interface AnalyzeBenchOptions {
  readonly version: PgVersion;
  readonly repeat: number;
  readonly tables: number;
}

function tableSizes(count: number): number[] {
  // 3 large, 5% medium, the rest small.
  return Array.from({ length: count }, (_, i) => (i < 3 ? 1_000_000 : i < 3 + Math.round(count * 0.05) ? 50_000 : 500 + ((i * 37) % 1500)));
}

/** Its own session, closed afterwards: CREATE DATABASE ... TEMPLATE needs the template unused. */
async function generate(server: TestServer, db: string, count: number): Promise<void> {
  await server.query(`CREATE DATABASE ${db}`);
  const client = new pg.Client({ connectionString: server.urlFor(db) });
  await client.connect();
  try {
    for (const [i, rows] of tableSizes(count).entries()) {
      await client.query(
        `CREATE TABLE t${i} (id bigint PRIMARY KEY, k int, name text, amount numeric, at timestamptz, flag boolean);
         INSERT INTO t${i} SELECT g, g % 100, 'n' || (g % 5000), (g % 1000) / 10.0, '2026-01-01'::timestamptz + g * interval '1 minute', g % 3 = 0
           FROM generate_series(1, ${rows}) g;`,
      );
    }
  } finally {
    await client.end();
  }
}

/** Removes every statistic of `db`, so the next measurement starts from nothing. */
async function clearStats(server: TestServer, db: string): Promise<void> {
  await server.query(
    `SELECT count(pg_clear_attribute_stats(n.nspname, c.relname, a.attname, false))
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
      WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped;
     SELECT count(pg_clear_relation_stats(n.nspname, c.relname))
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r';`,
    [],
    db,
  );
}

export async function benchAnalyze(options: AnalyzeBenchOptions): Promise<void> {
  const { version, repeat, tables } = options;
  console.log(
    `analyze: ${tables} tables (3 of 1,000,000 rows, ${Math.round(tables * 0.05)} of 50,000, the rest 500-2,000), PostgreSQL ${version}, min/median/max of ${repeat}, order alternated`,
  );
  const server = await startPostgres(version, { autovacuum: 'off' });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
  try {
    const started = Date.now();
    // bare: the data without statistics; stats: the same, analyzed (the copyFrom source).
    await generate(server, 'bare', tables);
    await server.query('CREATE DATABASE stats TEMPLATE bare');
    await server.query('ANALYZE', [], 'stats');
    console.log(`generated in ${((Date.now() - started) / 1000).toFixed(0)}s`);

    const runbook = (db: string, fields: Readonly<Record<string, unknown>>) =>
      loadRunbookText(
        runbookText({
          name: 'bench',
          connections: { db: server.urlFor(db), source: server.urlFor('stats') },
          steps: [{ id: 'stats', kind: 'analyze', connection: 'db', ...fields }],
        }).text,
        { dir, name: 'bench.yaml', env: {} },
      ).runbook;
    /** The engine's own timings of the last run of each kind: plan, apply, verify. */
    const phases = new Map<string, string>();
    const run = async (db: string, fields: Readonly<Record<string, unknown>>) => {
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook(db, fields), { registry, stateDir: dir, onEvent: (e) => events.push(e) });
      if (result.status !== 'succeeded') throw new Error(`analyze ${JSON.stringify(fields)} failed: ${JSON.stringify(result.steps[0]?.error)}`);
      const ms = (type: RunEvent['type']) => {
        const e = events.find((x) => x.type === type);
        return e !== undefined && 'durationMs' in e ? e.durationMs : NaN;
      };
      phases.set(
        Object.entries(fields)
          .map(([k, v]) => `${k}: ${String(v)}`)
          .join(','),
        `plan ${ms('step.planned')} ms, apply ${ms('step.applied')} ms, verify ${ms('step.completed')} ms`,
      );
    };

    const vacuumdbPath = systemPgTool('vacuumdb');
    const vacuumdb: number[] = [];
    const full: number[] = [];
    const missing: number[] = [];
    const copied: number[] = [];
    const missingFloor: number[] = [];
    const copyFloor: number[] = [];
    const client = async (db: string) => {
      const c = new pg.Client({ connectionString: server.urlFor(db) });
      await c.connect();
      return c;
    };
    /** A bare client as the copy's sessions (it reads and restores with query() alone). */
    const queryable = (c: pg.Client): Queryable => {
      async function query<Row extends pg.QueryResultRow>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
        const r = await c.query<Row>(sql, params === undefined ? undefined : [...params]);
        return { rows: r.rows, rowCount: r.rowCount ?? 0, command: r.command };
      }
      return { connectionName: 'bench', query, queryMany: () => Promise.reject(new Error('not used by the copy')) };
    };
    const candidates: (() => Promise<void>)[] = [
      async () =>
        void vacuumdb.push(
          await time(() => void execFileSync(vacuumdbPath, ['--analyze-only', '--jobs=2', '--quiet', '-d', server.urlFor('bare')], { stdio: 'inherit' })),
        ),
      async () => {
        full.push(await time(() => run('bare', { jobs: 2 })));
        // Right after a full run: everything has statistics, only the fixed cost is left.
        missing.push(await time(() => run('bare', { jobs: 2, onlyMissing: true })));
        // What any onlyMissing run must do here, with nothing of the engine: a new session, the catalog query (plan), again (verify), closed.
        missingFloor.push(
          await time(async () => {
            const c = await client('bare');
            await c.query(relationsSql(version * 10000, 'missing'));
            await c.query(relationsSql(version * 10000, 'none'));
            await c.end();
          }),
        );
      },
      ...(version >= 18
        ? [
            async () => {
              await clearStats(server, 'bare');
              copied.push(await time(() => run('bare', { jobs: 2, copyFrom: 'source' })));
              // The copy alone, as the step's apply does it (2 sessions each side), with no plan, verify, lock or journal.
              await clearStats(server, 'bare');
              const relations = (
                await server.query<{ name: string }>(
                  "SELECT relname AS name FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
                  [],
                  'bare',
                )
              ).map((r) => ({ schema: 'public', name: r.name }));
              copyFloor.push(
                await time(async () => {
                  const opened: pg.Client[] = [];
                  await copyStatistics({
                    workers: 2,
                    relations,
                    record: () => {},
                    sessions: async () => {
                      const [source, target] = await Promise.all([client('stats'), client('bare')]);
                      opened.push(source, target);
                      return { source: queryable(source), target: queryable(target) };
                    },
                  });
                  await Promise.all(opened.map((c) => c.end()));
                }),
              );
            },
          ]
        : []),
    ];
    // Order alternated: forwards, then backwards, so no candidate always runs on a cold or a warm cache.
    for (let r = 0; r < repeat; r++) for (const c of r % 2 === 0 ? candidates : [...candidates].reverse()) await c();
    for (const [fields, timing] of phases) console.log(`  engine phases, last run of ${fields.replace(/\s+/g, ' ')}: ${timing}`);
    report({
      bench: 'analyze',
      what: 'analyze jobs: 2 (whole step, in-process)',
      baseline: 'vacuumdb --analyze-only --jobs=2 (Debian 15 client, its own process)',
      baselineMs: spread(vacuumdb),
      candidateMs: spread(full),
      target: 1,
    });
    report({
      bench: 'analyze',
      what: 'analyze jobs: 2, onlyMissing right after a full run',
      baseline: 'the full run',
      baselineMs: spread(full),
      candidateMs: spread(missing),
      target: 0.05,
    });
    report({
      bench: 'analyze',
      what: 'for context: a new session running the catalog query of plan and verify (the floor of onlyMissing)',
      baseline: 'the full run',
      baselineMs: spread(full),
      candidateMs: spread(missingFloor),
    });
    if (copied.length > 0) {
      report({
        bench: 'analyze',
        what: 'for context: the copy alone, 2 sessions each side (no plan, verify, lock or journal)',
        baseline: 'the full run (ANALYZE)',
        baselineMs: spread(full),
        candidateMs: spread(copyFloor),
      });
      report({
        bench: 'analyze',
        what: 'analyze jobs: 2, copyFrom into the data without statistics',
        baseline: 'the full run (ANALYZE)',
        baselineMs: spread(full),
        candidateMs: spread(copied),
        target: 0.2,
      });
    }
  } finally {
    await server.stop();
  }
}
