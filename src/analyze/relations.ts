/**
 * Which relations have planner statistics and which lack them, in one catalog
 * query: a relation never analyzed, a column with a non-zero statistics
 * target and no pg_statistic row, an expression index without statistics, an
 * extended statistics object without data. An analyzed empty table has no
 * rows to describe, so it lacks nothing.
 */
import type { Queryable } from '../db/session.js';

export interface Relation {
  readonly schema: string;
  readonly name: string;
  /** r table, p partitioned table, m materialized view */
  readonly kind: 'r' | 'p' | 'm';
  /** The partitioned table this one is a partition of. */
  readonly parent: { readonly schema: string; readonly name: string } | null;
  readonly bytes: number;
  readonly missing: readonly string[];
}

const RELATIONS_SQL = `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       pn.nspname AS parent_schema, pc.relname AS parent_name,
       pg_relation_size(c.oid)::int8 AS bytes, -- the heap ANALYZE samples; the total would stat every index too
       array_remove(ARRAY[
         CASE WHEN c.reltuples < 0 THEN 'never analyzed' END,
         CASE WHEN c.reltuples > 0 THEN (
           SELECT 'columns without statistics: ' || string_agg(a.attname, ', ' ORDER BY a.attnum)
             FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND COALESCE(a.attstattarget, -1) <> 0
              AND NOT EXISTS (SELECT 1 FROM pg_statistic s
                               WHERE s.starelid = c.oid AND s.staattnum = a.attnum AND s.stainherit = (c.relkind = 'p'))) END,
         CASE WHEN c.reltuples > 0 AND c.relkind <> 'p' THEN (
           SELECT 'expression indexes without statistics: ' || string_agg(ic.relname, ', ' ORDER BY ic.relname)
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE i.indrelid = c.oid AND i.indexprs IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM pg_statistic s WHERE s.starelid = i.indexrelid)) END,
         CASE WHEN c.reltuples > 0 THEN (
           SELECT 'extended statistics without data: ' || string_agg(x.stxname, ', ' ORDER BY x.stxname)
             FROM pg_statistic_ext x
            WHERE x.stxrelid = c.oid
              AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext_data d
                               WHERE d.stxoid = x.oid AND d.stxdinherit = (c.relkind = 'p'))) END
       ], NULL) AS missing
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_inherits h ON c.relispartition AND h.inhrelid = c.oid
  LEFT JOIN pg_class pc ON pc.oid = h.inhparent
  LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cutover') AND n.nspname !~ '^pg_'
 ORDER BY bytes DESC, 1, 2`;

export async function readRelations(db: Queryable): Promise<Relation[]> {
  const { rows } = await db.query<{
    schema: string;
    name: string;
    kind: 'r' | 'p' | 'm';
    parent_schema: string | null;
    parent_name: string | null;
    bytes: string;
    missing: string[];
  }>(RELATIONS_SQL);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    parent: r.parent_schema !== null && r.parent_name !== null ? { schema: r.parent_schema, name: r.parent_name } : null,
    bytes: Number(r.bytes),
    missing: r.missing,
  }));
}

export const qualifiedName = (r: { schema: string; name: string }) => `${r.schema}.${r.name}`;
