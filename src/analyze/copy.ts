/**
 * Statistics copied from a source into a PostgreSQL 18+ target with
 * pg_restore_relation_stats / pg_restore_attribute_stats, mapped by schema,
 * table and column name, in set-based statements whatever the count. The
 * relations are cut into batches; each of the step's sessions takes the next
 * batch, reads it from the source in one statement (relation and column
 * statistics together) and restores it on the target in one statement, so
 * reading one batch overlaps restoring another, and restores run in parallel
 * (each locks only its own relations).
 * Values travel as text and are cast by the target, as pg_dump does; NULL
 * arguments are ignored by the restore functions. What cannot be copied
 * (missing on the source, a column whose type differs, expression index or
 * extended statistics, which 18 cannot restore) is left to ANALYZE.
 */
import type { Queryable } from '../db/session.js';

export interface ColumnStats {
  readonly schema: string;
  readonly relation: string;
  readonly column: string;
  readonly inherited: boolean;
  readonly values: Readonly<Record<(typeof ATTRIBUTE_FIELDS)[number][0], string | null>>;
}

export interface RelationStats {
  readonly schema: string;
  readonly relation: string;
  readonly relpages: string;
  readonly reltuples: string;
  readonly relallvisible: string;
}

/** pg_stats columns and the type each restore argument takes. */
export const ATTRIBUTE_FIELDS = [
  ['null_frac', 'real'],
  ['avg_width', 'integer'],
  ['n_distinct', 'real'],
  ['most_common_vals', 'text'],
  ['most_common_freqs', 'real[]'],
  ['histogram_bounds', 'text'],
  ['correlation', 'real'],
  ['most_common_elems', 'text'],
  ['most_common_elem_freqs', 'real[]'],
  ['elem_count_histogram', 'real[]'],
  ['range_length_histogram', 'text'],
  ['range_empty_frac', 'real'],
  ['range_bounds_histogram', 'text'],
] as const;

/** What the plan needs to know of a relation on either side: whether it was analyzed, and its columns' types. */
export interface RelationShape {
  /** -1: never analyzed (before 14 too, where that reads 0). */
  readonly reltuples: number;
  /** column -> format_type */
  readonly columns: ReadonlyMap<string, string>;
}

/** `relations` as they are on `db`, keyed `schema.name`; absent ones are left out. One statement. */
export async function describeRelations(db: Queryable, relations: readonly { schema: string; name: string }[]): Promise<Map<string, RelationShape>> {
  const { rows } = await db.query<{ rel: string; reltuples: number; names: string[]; types: string[] }>(
    // Before 14 a relation never vacuumed or analyzed has reltuples 0, which 14+ reads as "analyzed, empty"; -1 is "unknown" there.
    `SELECT format('%s.%s', n.nspname, c.relname) AS rel,
            CASE WHEN current_setting('server_version_num')::int < 140000 AND c.reltuples = 0 AND c.relpages = 0 THEN -1
                 ELSE c.reltuples END::float8 AS reltuples,
            COALESCE(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS names,
            COALESCE(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS types
       FROM unnest($1::text[], $2::text[]) AS r(schema, name)
       JOIN pg_namespace n ON n.nspname = r.schema JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.name
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      GROUP BY n.nspname, c.relname, c.reltuples, c.relpages`,
    [relations.map((r) => r.schema), relations.map((r) => r.name)],
  );
  return new Map(rows.map((r) => [r.rel, { reltuples: r.reltuples, columns: new Map(r.names.map((name, i) => [name, r.types[i] ?? ''])) }]));
}

/** The pg_stats fields this server has (they were added over the releases: the range histograms in 17). */
export async function statsFields(db: Queryable): Promise<ReadonlySet<string>> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_stats'::regclass AND attnum > 0 AND NOT attisdropped`,
  );
  return new Set(rows.map((p) => p.name));
}

/**
 * Relation and column statistics of `relations` on the source, in one
 * statement: a row per pg_stats row, each carrying its relation's figures,
 * and one row without a column for a relation that has no column statistics.
 * pg_stats is read per relation (OFFSET 0 keeps the planner from flattening
 * the view into one join over every column of the database, which made each
 * batch cost as much as reading them all: 40 ms warm, 120 ms in a new
 * session, at 500 tables).
 */
export async function readBatch(
  db: Queryable,
  has: ReadonlySet<string>,
  relations: readonly { schema: string; name: string }[],
): Promise<{ relations: RelationStats[]; columns: ColumnStats[] }> {
  const { rows } = await db.query<Record<string, string | boolean | null>>(
    `SELECT n.nspname AS schema, c.relname AS relation, c.relpages::text AS relpages,
            CASE WHEN current_setting('server_version_num')::int < 140000 AND c.reltuples = 0 AND c.relpages = 0 THEN '-1'
                 ELSE c.reltuples::text END AS reltuples,
            c.relallvisible::text AS relallvisible,
            s.attname, s.inherited,
            ${ATTRIBUTE_FIELDS.map(([f]) => `${has.has(f) ? `s.${f}::text` : 'NULL::text'} AS ${f}`).join(', ')}
       FROM unnest($1::text[], $2::text[]) AS r(schema, name)
       JOIN pg_namespace n ON n.nspname = r.schema JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.name
       LEFT JOIN LATERAL (SELECT * FROM pg_stats s WHERE s.schemaname = r.schema AND s.tablename = r.name OFFSET 0) s ON true`,
    [relations.map((r) => r.schema), relations.map((r) => r.name)],
  );
  const seen = new Set<string>();
  const out = { relations: [] as RelationStats[], columns: [] as ColumnStats[] };
  for (const r of rows) {
    const schema = String(r['schema']);
    const relation = String(r['relation']);
    const key = `${schema}\u0000${relation}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.relations.push({ schema, relation, relpages: String(r['relpages']), reltuples: String(r['reltuples']), relallvisible: String(r['relallvisible']) });
    }
    if (r['attname'] === null) continue;
    out.columns.push({
      schema,
      relation,
      column: String(r['attname']),
      inherited: r['inherited'] === true,
      values: Object.fromEntries(ATTRIBUTE_FIELDS.map(([f]) => [f, (r[f] ?? null) as string | null])) as ColumnStats['values'],
    });
  }
  return out;
}

export const RESTORE_RELATIONS_SQL = `SELECT count(*) FILTER (WHERE NOT pg_restore_relation_stats(
         'schemaname', r.schema, 'relname', r.name,
         'relpages', r.relpages::integer, 'reltuples', r.reltuples::real, 'relallvisible', r.relallvisible::integer)) AS failed
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(schema, name, relpages, reltuples, relallvisible)`;

/** One array per field, unnested together: a slice of one long array per row would be quadratic. */
export const RESTORE_COLUMNS_SQL = `SELECT count(*) FILTER (WHERE NOT pg_restore_attribute_stats(
         'schemaname', s.schema, 'relname', s.name, 'attname', s.att, 'inherited', s.inherited,
         ${ATTRIBUTE_FIELDS.map(([f, type]) => `'${f}', s.${f}::${type}`).join(',\n         ')})) AS failed
  FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[],
              ${ATTRIBUTE_FIELDS.map((_, i) => `$${i + 5}::text[]`).join(', ')})
       AS s(schema, name, att, inherited, ${ATTRIBUTE_FIELDS.map(([f]) => f).join(', ')})`;

export function restoreParams(relations: readonly RelationStats[], columns: readonly ColumnStats[]) {
  return {
    relations: [
      relations.map((r) => r.schema),
      relations.map((r) => r.relation),
      relations.map((r) => r.relpages),
      relations.map((r) => r.reltuples),
      relations.map((r) => r.relallvisible),
    ],
    columns: [
      columns.map((c) => c.schema),
      columns.map((c) => c.relation),
      columns.map((c) => c.column),
      columns.map((c) => c.inherited),
      ...ATTRIBUTE_FIELDS.map(([f]) => columns.map((c) => c.values[f])),
    ],
  };
}

export const CLEAR_COLUMNS_SQL = `SELECT count(pg_clear_attribute_stats(a.schema, a.name, a.att, a.inherited)) AS columns
  FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[]) AS a(schema, name, att, inherited)`;

export const CLEAR_RELATIONS_SQL = `SELECT count(pg_clear_relation_stats(r.schema, r.name)) AS relations
  FROM unnest($1::text[], $2::text[]) AS r(schema, name)`;

/** Relations and column statistics restored together: one statement, one round trip. */
export const RESTORE_SQL = `SELECT (${RESTORE_RELATIONS_SQL})
     + (${RESTORE_COLUMNS_SQL.replaceAll(/\$(\d+)/g, (_, n: string) => `$${Number(n) + 5}`)}) AS failed`;

/** What a copy has written so far: what rollback clears. */
export interface Copied {
  readonly relations: readonly { readonly schema: string; readonly name: string }[];
  readonly columns: readonly { readonly schema: string; readonly name: string; readonly column: string; readonly inherited: boolean }[];
}

export interface CopyOptions {
  readonly workers: number;
  /** A worker's source and target sessions: each worker starts as soon as its own are open. */
  readonly sessions: (worker: number) => Promise<{ readonly source: Queryable; readonly target: Queryable }>;
  readonly relations: readonly { readonly schema: string; readonly name: string }[];
  /**
   * Called before each batch is restored, with everything written so far and
   * that batch: journaled, so that after a crash rollback knows what to clear.
   */
  readonly record: (copied: Copied) => void;
  /** Batches per worker (default 2): more overlap of reading and restoring, more before-state records. */
  readonly batchesPerWorker?: number;
}

export interface CopyResult {
  readonly relations: number;
  readonly columns: number;
  /** Restores that warned (returned false). */
  readonly failed: number;
}

/**
 * Copies the statistics of `relations` in batches, each worker reading one
 * from its source session while another worker restores the previous one on
 * its target session. Relations are dealt round-robin into batches of about
 * the same number of relations.
 */
export async function copyStatistics(options: CopyOptions): Promise<CopyResult> {
  const workers = Math.max(1, options.workers);
  const count = Math.min(options.relations.length, workers * (options.batchesPerWorker ?? 2));
  const queue = Array.from({ length: count }, (_, b) => options.relations.filter((_, i) => i % count === b));
  if (count === 0) return { relations: 0, columns: 0, failed: 0 };
  const pairs = Array.from({ length: Math.min(workers, count) }, (_, w) => options.sessions(w));
  // Every promise here is awaited by a worker, but not every one when a worker fails first: none may go unhandled.
  for (const pair of pairs) pair.catch(() => {});
  const [first] = pairs;
  if (first === undefined) throw new Error('statistics copy: no worker');
  const has = first.then((p) => statsFields(p.source));
  has.catch(() => {});
  const written = { relations: [] as Copied['relations'][number][], columns: [] as Copied['columns'][number][] };
  let failed = 0;
  await Promise.all(
    pairs.map(async (pair) => {
      const { source, target } = await pair;
      const fields = await has;
      for (let batch = queue.shift(); batch !== undefined; batch = queue.shift()) {
        const read = await readBatch(source, fields, batch);
        written.relations.push(...read.relations.map((r) => ({ schema: r.schema, name: r.relation })));
        written.columns.push(...read.columns.map((c) => ({ schema: c.schema, name: c.relation, column: c.column, inherited: c.inherited })));
        options.record({ relations: [...written.relations], columns: [...written.columns] });
        const params = restoreParams(read.relations, read.columns);
        const { rows } = await target.query<{ failed: string }>(RESTORE_SQL, [...params.relations, ...params.columns]);
        failed += Number(rows[0]?.failed ?? 0);
      }
    }),
  );
  return { relations: written.relations.length, columns: written.columns.length, failed };
}
