/**
 * The floor for compare's checksum (issue 23): the same per-row hash over
 * every table, by hand, one statement per table per side, on `jobs` new
 * sessions per server, largest table first. Every value must be read and
 * turned into text to compare by value; this does exactly that and nothing
 * more. Runs in-process (phase against phase) or as its own process (whole
 * job against whole job):
 *
 *   node dist/scripts/bench/hash-floor.js <jobs> <source url> <target url> <table>...
 */
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Columns in order, each table's; read once before timing, as a hand-written script would have them. */
export type TableColumns = ReadonlyMap<string, readonly string[]>;

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export async function columnsOf(url: string, tables: readonly string[]): Promise<TableColumns> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ t: string; cols: string[] }>(
      `SELECT c.relname AS t, array_agg(a.attname::text ORDER BY a.attnum) AS cols FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relname = ANY ($1) AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped GROUP BY 1`,
      [tables],
    );
    return new Map(rows.map((r) => [r.t, r.cols]));
  } finally {
    await client.end();
  }
}

/** count(*) and the per-row hash sum of each table, on one server, in `jobs` sessions. */
export async function hashTables(url: string, tables: readonly string[], columns: TableColumns, jobs: number): Promise<void> {
  const queue = [...tables];
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
          const row = (columns.get(t) ?? []).map(ident).join(', ');
          await client.query(`SELECT count(*), sum(hashtextextended(ROW(${row})::text, 0)) FROM ${ident(t)}`);
        }
      } finally {
        await client.end();
      }
    }),
  );
}

/** Both servers at once, as compare reads both at once. */
export async function hashFloor(sourceUrl: string, targetUrl: string, tables: readonly string[], columns: TableColumns, jobs: number): Promise<void> {
  await Promise.all([hashTables(sourceUrl, tables, columns, jobs), hashTables(targetUrl, tables, columns, jobs)]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [jobs, sourceUrl, targetUrl, ...tables] = process.argv.slice(2);
  if (jobs === undefined || sourceUrl === undefined || targetUrl === undefined)
    throw new Error('usage: hash-floor <jobs> <source url> <target url> <table>...');
  const columns = await columnsOf(sourceUrl, tables);
  await hashFloor(sourceUrl, targetUrl, tables, columns, Number(jobs));
}
