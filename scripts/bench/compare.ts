/**
 * compare on two loopback servers holding the same data (by default about
 * 2 GB each: three large tables and many small ones, mixed column types),
 * against the reading it cannot avoid, run in the same script on the same
 * servers: SELECT count(*) of every table, by hand, with the same number of
 * sessions per server working in parallel.
 *
 * Targets (issue 9): counts within 1.2x of the hand-run counts; checksum at
 * >= 50% of their speed (at most twice their time).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseRunbook, registry, planRunbook, type RunEvent } from '../../src/index.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { median, time } from './measure.js';

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
  const tables = [...['large_1', 'large_2', 'large_3'].map((t) => [t, large] as const), ...Array.from({ length: SMALL_TABLES }, (_, i) => [`small_${i + 1}`, small] as const)];
  for (const [table, rows] of tables) await server.query(fill(table, rows), [], DB);
  await server.query('VACUUM ANALYZE', [], DB);
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


export async function benchCompare(options: CompareBenchOptions): Promise<void> {
  const { sizeMb, version, repeat, jobs } = options;
  console.log(`compare bench: about ${sizeMb} MB per server, two PostgreSQL ${version} servers, ${jobs} sessions per server, median of ${repeat}`);
  const [source, target] = await Promise.all([startPostgres(version), startPostgres(version)]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
  try {
    const started = Date.now();
    const [tables] = await Promise.all([load(source, sizeMb), load(target, sizeMb)]);
    const [{ size } = { size: '?' }] = await source.query<{ size: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS size', [], DB);
    console.log(`loaded ${tables.length} tables, ${size} per server, in ${((Date.now() - started) / 1000).toFixed(0)}s`);

    const step = async (mode: string): Promise<number> => {
      const text = `version: 1
name: bench
connections:
  source: { kind: postgres, url: "${source.urlFor(DB)}" }
  target: { kind: postgres, url: "${target.urlFor(DB)}" }
steps:
  - id: compare
    kind: compare
    source: source
    target: target
    mode: ${mode}
    jobs: ${jobs}
`;
      const file = path.join(dir, `${mode}.yaml`);
      writeFileSync(file, text);
      const events: RunEvent[] = [];
      const result = await planRunbook(parseRunbook(text, file, { registry, env: {} }), { registry, stateDir: dir, onEvent: (e) => events.push(e) });
      if (result.status !== 'planned') throw new Error(`compare ${mode} failed: ${JSON.stringify(result.steps[0]?.error)}`);
      const planned = events.find((e) => e.type === 'step.planned');
      if (planned?.type !== 'step.planned') throw new Error('no timing');
      return planned.durationMs;
    };

    // One untimed pass, so no measurement pays for reading from disk into the cache.
    await Promise.all([countByHand(source, tables, jobs), countByHand(target, tables, jobs)]);
    const byHand: number[] = [];
    const counts: number[] = [];
    const checksums: number[] = [];
    for (let r = 0; r < repeat; r++) {
      byHand.push(await time(async () => void (await Promise.all([countByHand(source, tables, jobs), countByHand(target, tables, jobs)]))));
      counts.push(await step('counts'));
      checksums.push(await step('checksum'));
    }
    const hand = median(byHand);
    const count = median(counts);
    const checksum = median(checksums);
    console.log('');
    console.log(`count(*) of every table by hand, both servers:  ${hand.toFixed(0)} ms`);
    console.log(`compare, mode counts:                           ${count.toFixed(0)} ms`);
    console.log(`compare, mode checksum:                         ${checksum.toFixed(0)} ms`);
    console.log('');
    console.log(`counts / by hand   = ${(count / hand).toFixed(2)}x   (target <= 1.2x)  ${count / hand <= 1.2 ? 'met' : 'MISSED'}`);
    console.log(`checksum speed     = ${((hand / checksum) * 100).toFixed(0)}% of counting   (target >= 50%)  ${hand / checksum >= 0.5 ? 'met' : 'MISSED'}`);
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}
