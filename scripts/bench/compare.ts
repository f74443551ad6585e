/**
 * compare on two loopback servers holding the same freshly loaded data (no
 * ANALYZE, no VACUUM: the state right after a copy; three large tables and
 * many small ones, mixed column types), run in the same script on the same
 * servers, order alternated, min/median/max:
 *
 * - checksum against its floor: the same per-row hash over every table by
 *   hand, one statement per table per side, the same number of sessions
 *   (scripts/bench/hash-floor.ts); phase against phase in this process, and
 *   whole `cutover plan` process against the floor as its own process.
 *   Target (issue 23): within 1.3x.
 * - counts against count(*) by hand (context; issue 9 asked for 1.2x).
 * - the time to locate 10 planted differences in a 1,000,000-row table,
 *   against the floor's hash of that table.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseRunbook, registry, planRunbook, type RunResult } from '../../src/index.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { alternate, report, runProcess, spread } from './measure.js';
import { runbookFile as writeRunbook, runbookText } from '../../test/helpers/runbook.js';
import { columnsOf, hashFloor } from './hash-floor.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../../cli/main.js');
const FLOOR = path.join(here, 'hash-floor.js');

export interface CompareBenchOptions {
  readonly sizeMb: number;
  readonly version: PgVersion;
  readonly repeat: number;
  readonly jobs: number;
}

const DB = 'bench';
const SMALL_TABLES = 50;

/** Rows of about 200 bytes: bigint key, ints, text, numeric, timestamptz, boolean, a NULL now and then. */
const fill = (table: string, rows: number) =>
  `CREATE TABLE ${table} (id bigint PRIMARY KEY, a int, b text, c numeric, d timestamptz, e boolean, f text);
   INSERT INTO ${table} SELECT g, g % 1000, md5(g::text) || md5((g + 1)::text), g / 7.0,
          '2026-01-01'::timestamptz + g * interval '1 second', g % 2 = 0, CASE WHEN g % 10 = 0 THEN NULL ELSE repeat('x', 40) END
     FROM generate_series(1, ${rows}) g;`;

async function load(server: TestServer, sizeMb: number): Promise<string[]> {
  await server.query(`CREATE DATABASE ${DB}`);
  const rowsPerMb = 5_200; // about 200 bytes per row with its share of the primary key index
  const large = Math.round((sizeMb * 0.9 * rowsPerMb) / 3);
  const small = Math.max(100, Math.round((sizeMb * 0.1 * rowsPerMb) / SMALL_TABLES));
  const tables = [
    ...['large_1', 'large_2', 'large_3'].map((t) => [t, large] as const),
    ...Array.from({ length: SMALL_TABLES }, (_, i) => [`small_${i + 1}`, small] as const),
  ];
  for (const [table, rows] of tables) await server.query(fill(table, rows), [], DB);
  return tables.map(([t]) => t);
}

/** count(*) of every table on one server, in `jobs` new sessions (as the step opens its own), largest first. */
async function countByHand(server: TestServer, tables: readonly string[], jobs: number): Promise<void> {
  const queue = [...tables];
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      const client = new pg.Client({ connectionString: server.urlFor(DB) });
      await client.connect();
      try {
        for (let t = queue.shift(); t !== undefined; t = queue.shift()) await client.query(`SELECT count(*) FROM ${t}`);
      } finally {
        await client.end();
      }
    }),
  );
}

const LOCATE_DB = 'locate';
const LOCATE_ROWS = 1_000_000;
/** 10 differences: 4 changed values, 3 rows missing on the target, 3 extra rows on it. */
const PLANTED = `UPDATE big SET v = 'changed' WHERE id IN (17, 250000, 500001, 999999);
  DELETE FROM big WHERE id IN (3, 333333, 777777);
  INSERT INTO big VALUES (1000001, 'extra', 0), (1000002, 'extra', 0), (1000003, 'extra', 0);`;

async function loadLocate(server: TestServer, planted: boolean): Promise<void> {
  await server.query(`CREATE DATABASE ${LOCATE_DB}`);
  await server.query(
    `CREATE TABLE big (id bigint PRIMARY KEY, v text, n numeric);
     INSERT INTO big SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, ${LOCATE_ROWS}) g;
     ${planted ? PLANTED : ''}`,
    [],
    LOCATE_DB,
  );
}

export async function benchCompare(options: CompareBenchOptions): Promise<void> {
  const { sizeMb, version, repeat, jobs } = options;
  console.log(
    `compare: about ${sizeMb} MB per server, fresh load (no ANALYZE), two PostgreSQL ${version} servers, ${jobs} sessions per server, min/median/max of ${repeat}, order alternated`,
  );
  const [source, target] = await Promise.all([startPostgres(version), startPostgres(version)]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
  try {
    const started = Date.now();
    const [tables] = await Promise.all([load(source, sizeMb), load(target, sizeMb), loadLocate(source, false), loadLocate(target, true)]);
    const [{ size } = { size: '?' }] = await source.query<{ size: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS size', [], DB);
    console.log(
      `  loaded ${tables.length} tables, ${size} per server, and a ${LOCATE_ROWS.toLocaleString('en-US')}-row table with 10 planted differences, in ${((Date.now() - started) / 1000).toFixed(0)}s`,
    );

    const runbookFile = (db: string, mode: string): string =>
      writeRunbook(
        runbookText({
          name: 'bench',
          connections: { source: source.urlFor(db), target: target.urlFor(db) },
          steps: [{ id: 'compare', kind: 'compare', source: 'source', target: 'target', mode, jobs }],
        }).text,
        { dir, name: `${db}-${mode}.yaml` },
      ).file;
    const plan = async (db: string, mode: string): Promise<RunResult> => {
      const file = runbookFile(db, mode);
      return planRunbook(parseRunbook(readFileSync(file, 'utf8'), file, { registry, env: {} }), { registry, stateDir: dir });
    };
    const expectPlanned = async (mode: string) => {
      const result = await plan(DB, mode);
      if (result.status !== 'planned') throw new Error(`compare ${mode} failed: ${JSON.stringify(result.steps[0]?.error)}`);
    };
    const columns = await columnsOf(source.urlFor(DB), tables);
    const floor = () => hashFloor(source.urlFor(DB), target.urlFor(DB), tables, columns, jobs);

    // One untimed pass of each, so no measurement pays for reading from disk into the cache or setting hint bits.
    await Promise.all([countByHand(source, tables, jobs), countByHand(target, tables, jobs)]);
    await floor();

    const [floorMs, checksumMs, handMs, countsMs] = await alternate(repeat, [
      floor,
      () => expectPlanned('checksum'),
      async () => {
        await Promise.all([countByHand(source, tables, jobs), countByHand(target, tables, jobs)]);
      },
      () => expectPlanned('counts'),
    ]);
    report({
      bench: 'compare',
      what: 'compare checksum (in-process plan)',
      baseline: 'the same per-row hash by hand, one statement per table per side',
      baselineMs: spread(floorMs!),
      candidateMs: spread(checksumMs!),
      target: 1.3,
    });
    report({
      bench: 'compare',
      what: 'compare counts (in-process plan)',
      baseline: 'count(*) by hand',
      baselineMs: spread(handMs!),
      candidateMs: spread(countsMs!),
      target: 1.2,
    });
    report({
      bench: 'compare',
      what: 'count(*) by hand, for context',
      baseline: 'the per-row hash by hand',
      baselineMs: spread(floorMs!),
      candidateMs: spread(handMs!),
    });

    const checksumFile = runbookFile(DB, 'checksum');
    const [floorProcess, planProcess] = await alternate(repeat, [
      () => runProcess([process.execPath, FLOOR, String(jobs), source.urlFor(DB), target.urlFor(DB), ...tables]),
      () => runProcess([process.execPath, CLI, 'plan', checksumFile, '--state-dir', dir]),
    ]);
    report({
      bench: 'compare',
      what: 'cutover plan, compare checksum (whole process)',
      baseline: 'the hand-written hash as its own process',
      baselineMs: spread(floorProcess!),
      candidateMs: spread(planProcess!),
      target: 1.3,
    });

    // Locating: the planted keys must be exactly what is reported.
    const locateColumns = await columnsOf(source.urlFor(LOCATE_DB), ['big']);
    const [locateFloor, locateMs] = await alternate(repeat, [
      () => hashFloor(source.urlFor(LOCATE_DB), target.urlFor(LOCATE_DB), ['big'], locateColumns, jobs),
      async () => {
        const result = await plan(LOCATE_DB, 'checksum');
        const rows = (result.steps[0]?.plan?.tables?.[1]?.rows ?? []) as { key: string }[];
        if (rows.length !== 10) throw new Error(`expected the 10 planted differences, got ${JSON.stringify(rows)}`);
      },
    ]);
    report({
      bench: 'compare',
      what: 'compare checksum locating 10 planted rows in 1,000,000',
      baseline: 'the hash of that table by hand (finds no row)',
      baselineMs: spread(locateFloor!),
      candidateMs: spread(locateMs!),
    });
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}
