/**
 * Statistics copied from a source into a PostgreSQL 18+ target with
 * pg_restore_relation_stats / pg_restore_attribute_stats, mapped by schema,
 * table and column name, in set-based statements whatever the count: one
 * statement per session, the relations shared out between the step's
 * sessions so that the restores run in parallel (each restore locks only its
 * own relation).
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

/** Column types (`schema.relation.column` -> type), and the same grouped by `schema.relation`, to refuse copying across a type change. */
export async function columnTypes(db: Queryable): Promise<{ byKey: Map<string, string>; byRelation: Map<string, [string, string][]> }> {
  const { rows } = await db.query<{ rel: string; key: string; type: string }>(
    `SELECT format('%s.%s', n.nspname, c.relname) AS rel, format('%s.%s.%s', n.nspname, c.relname, a.attname) AS key, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'`,
  );
  const byRelation = new Map<string, [string, string][]>();
  for (const r of rows) {
    const list = byRelation.get(r.rel);
    if (list === undefined) byRelation.set(r.rel, [[r.key, r.type]]);
    else list.push([r.key, r.type]);
  }
  return { byKey: new Map(rows.map((r) => [r.key, r.type])), byRelation };
}

export async function readRelationStats(db: Queryable, relations: readonly { schema: string; name: string }[]): Promise<RelationStats[]> {
  const { rows } = await db.query<RelationStats>(
    // Before 14 a relation never vacuumed or analyzed has reltuples 0, which 14+ reads as "analyzed, empty"; -1 is "unknown" there.
    `SELECT n.nspname AS schema, c.relname AS relation, c.relpages::text AS relpages,
            CASE WHEN current_setting('server_version_num')::int < 140000 AND c.reltuples = 0 AND c.relpages = 0 THEN '-1'
                 ELSE c.reltuples::text END AS reltuples,
            c.relallvisible::text AS relallvisible
       FROM unnest($1::text[], $2::text[]) AS r(schema, name)
       JOIN pg_namespace n ON n.nspname = r.schema JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.name`,
    [relations.map((r) => r.schema), relations.map((r) => r.name)],
  );
  return rows;
}

export async function readColumnStats(db: Queryable, relations: readonly { schema: string; name: string }[]): Promise<ColumnStats[]> {
  // pg_stats gained fields over the releases (the range histograms in 17): read what the source has, NULL for the rest.
  const { rows: present } = await db.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_stats'::regclass AND attnum > 0 AND NOT attisdropped`,
  );
  const has = new Set(present.map((p) => p.name));
  const { rows } = await db.query<Record<string, string | boolean | null>>(
    `SELECT s.schemaname, s.tablename, s.attname, s.inherited,
            ${ATTRIBUTE_FIELDS.map(([f]) => `${has.has(f) ? `s.${f}::text` : 'NULL::text'} AS ${f}`).join(', ')}
       FROM pg_stats s JOIN unnest($1::text[], $2::text[]) AS r(schema, name) ON s.schemaname = r.schema AND s.tablename = r.name`,
    [relations.map((r) => r.schema), relations.map((r) => r.name)],
  );
  return rows.map((r) => ({
    schema: String(r['schemaname']),
    relation: String(r['tablename']),
    column: String(r['attname']),
    inherited: r['inherited'] === true,
    values: Object.fromEntries(ATTRIBUTE_FIELDS.map(([f]) => [f, (r[f] ?? null) as string | null])) as ColumnStats['values'],
  }));
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

/**
 * Restores `relations` and `columns` on `sessions` in parallel, each session
 * one statement for its share of the relations (shared out by column count,
 * largest first). Returns how many restores warned.
 */
export async function restoreInParallel(sessions: readonly Queryable[], relations: readonly RelationStats[], columns: readonly ColumnStats[]): Promise<number> {
  const key = (schema: string, name: string) => `${schema}\u0000${name}`;
  const columnsOf = new Map<string, ColumnStats[]>();
  for (const c of columns) {
    const k = key(c.schema, c.relation);
    columnsOf.set(k, [...(columnsOf.get(k) ?? []), c]);
  }
  const shares = sessions.map(() => ({ relations: [] as RelationStats[], columns: [] as ColumnStats[] }));
  const order = [...relations].sort((a, b) => (columnsOf.get(key(b.schema, b.relation))?.length ?? 0) - (columnsOf.get(key(a.schema, a.relation))?.length ?? 0));
  for (const r of order) {
    const share = shares.reduce((least, s) => (s.columns.length + s.relations.length < least.columns.length + least.relations.length ? s : least));
    share.relations.push(r);
    share.columns.push(...(columnsOf.get(key(r.schema, r.relation)) ?? []));
  }
  // Columns of relations without a relation row (not expected) still go somewhere.
  const placed = new Set(relations.map((r) => key(r.schema, r.relation)));
  for (const c of columns) if (!placed.has(key(c.schema, c.relation))) shares[0]?.columns.push(c);
  const failed = await Promise.all(
    shares.map(async (share, i) => {
      if (share.relations.length === 0 && share.columns.length === 0) return 0;
      const params = restoreParams(share.relations, share.columns);
      const { rows } = await sessions[i]!.query<{ failed: string }>(RESTORE_SQL, [...params.relations, ...params.columns]);
      return Number(rows[0]?.failed ?? 0);
    }),
  );
  return failed.reduce((a, b) => a + b, 0);
}
