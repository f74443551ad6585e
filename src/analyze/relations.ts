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
  /** The heap's size; null where it was not read (see readRelations' `sizes`). */
  readonly bytes: number | null;
  readonly missing: readonly string[];
  /** It has an expression index or an extended statistics object (whose statistics PostgreSQL 18 cannot restore). */
  readonly unrestorable: boolean;
}

/**
 * The catalog query for a server version (server_version_num): before 14 a
 * relation never analyzed or vacuumed has reltuples 0, not -1, and is told
 * apart by having pages on disk but relpages 0 (ANALYZE sets relpages);
 * extended statistics keep their data in pg_statistic_ext_data from 12 (a row
 * that exists empty from CREATE STATISTICS until 15), per inheritance from
 * 15, in pg_statistic_ext itself before 12.
 *
 * `readsCatalog`: whether this role may read pg_statistic and
 * pg_statistic_ext_data (superusers only). Without it, as a table owner on a
 * managed service, the same is read from the pg_stats and pg_stats_ext
 * views, which show a relation's statistics to a role that may read the
 * relation (columns it may SELECT, statistics objects of relations it owns).
 */
export function relationsSql(version: number, sizes: Sizes = 'all', readsCatalog = true): string {
  const neverAnalyzed = version >= 140000 ? 'c.reltuples < 0' : "c.relpages = 0 AND c.relkind <> 'p' AND pg_relation_size(c.oid) > 0";
  const xSchema = '(SELECT xn.nspname FROM pg_namespace xn WHERE xn.oid = x.stxnamespace)';
  const extendedData =
    version < 120000
      ? '(x.stxndistinct IS NOT NULL OR x.stxdependencies IS NOT NULL)'
      : readsCatalog
        ? version >= 150000
          ? "EXISTS (SELECT 1 FROM pg_statistic_ext_data d WHERE d.stxoid = x.oid AND d.stxdinherit = (c.relkind = 'p'))"
          : // 12 to 14 create the data row with CREATE STATISTICS, empty until ANALYZE fills it.
            "EXISTS (SELECT 1 FROM pg_statistic_ext_data d WHERE d.stxoid = x.oid AND jsonb_strip_nulls(to_jsonb(d)) ?| ARRAY['stxdndistinct', 'stxddependencies', 'stxdmcv', 'stxdexpr'])"
        : version >= 150000
          ? `EXISTS (SELECT 1 FROM pg_stats_ext e WHERE e.statistics_schemaname = ${xSchema} AND e.statistics_name = x.stxname AND e.inherited = (c.relkind = 'p'))`
          : `EXISTS (SELECT 1 FROM pg_stats_ext e WHERE e.statistics_schemaname = ${xSchema} AND e.statistics_name = x.stxname
                      AND (e.n_distinct IS NOT NULL OR e.dependencies IS NOT NULL OR e.most_common_vals IS NOT NULL))`;
  const columnStats = readsCatalog
    ? "SELECT 1 FROM pg_statistic s WHERE s.starelid = c.oid AND s.staattnum = a.attnum AND s.stainherit = (c.relkind = 'p')"
    : "SELECT 1 FROM pg_stats s WHERE s.schemaname = c.nspname AND s.tablename = c.relname AND s.attname = a.attname AND s.inherited = (c.relkind = 'p')";
  const indexStats = readsCatalog
    ? 'SELECT 1 FROM pg_statistic s WHERE s.starelid = i.indexrelid'
    : 'SELECT 1 FROM pg_stats s WHERE s.schemaname = c.nspname AND s.tablename = ic.relname';
  return relationsSqlWith({ neverAnalyzed, extendedData, columnStats, indexStats }, sizes);
}

/**
 * Set-based: each kind of lack is one grouped pass over its catalog for all
 * relations at once, not a subquery per relation, which at 500 relations cost
 * most of the plan's and verify's time. The CTE `rel`, used four times, is
 * computed once (no MATERIALIZED keyword: 11 rejects it).
 */
const relationsSqlWith = (
  { neverAnalyzed, extendedData, columnStats, indexStats }: Readonly<Record<'neverAnalyzed' | 'extendedData' | 'columnStats' | 'indexStats', string>>,
  sizes: Sizes,
) => `WITH rel AS (
  SELECT c.oid, c.relname, c.relkind, c.reltuples, c.relpages, c.relispartition, n.nspname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cutover') AND n.nspname !~ '^pg_'
), no_columns AS (
  SELECT c.oid, 'columns without statistics: ' || string_agg(a.attname, ', ' ORDER BY a.attnum) AS missing
    FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid
   WHERE c.reltuples > 0 AND a.attnum > 0 AND NOT a.attisdropped AND COALESCE(a.attstattarget, -1) <> 0
     AND NOT EXISTS (${columnStats})
   GROUP BY c.oid
), no_expressions AS (
  SELECT c.oid, 'expression indexes without statistics: ' || string_agg(ic.relname, ', ' ORDER BY ic.relname) AS missing
    FROM rel c JOIN pg_index i ON i.indrelid = c.oid JOIN pg_class ic ON ic.oid = i.indexrelid
   WHERE c.reltuples > 0 AND c.relkind <> 'p' AND i.indexprs IS NOT NULL
     AND NOT EXISTS (${indexStats})
   GROUP BY c.oid
), no_extended AS (
  SELECT c.oid, 'extended statistics without data: ' || string_agg(x.stxname, ', ' ORDER BY x.stxname) AS missing
    FROM rel c JOIN pg_statistic_ext x ON x.stxrelid = c.oid
   WHERE c.reltuples > 0 AND NOT ${extendedData}
   GROUP BY c.oid
)
SELECT c.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       pn.nspname AS parent_schema, pc.relname AS parent_name,
       -- the heap ANALYZE samples; the total would stat every index too
       ${
         sizes === 'all'
           ? 'pg_relation_size(c.oid)::int8'
           : sizes === 'missing'
             ? `CASE WHEN ${neverAnalyzed} OR nc.oid IS NOT NULL OR ne.oid IS NOT NULL OR nx.oid IS NOT NULL THEN pg_relation_size(c.oid)::int8 END`
             : 'NULL::int8'
       } AS bytes,
       array_remove(ARRAY[CASE WHEN ${neverAnalyzed} THEN 'never analyzed' END, nc.missing, ne.missing, nx.missing], NULL) AS missing,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indexprs IS NOT NULL)
         OR EXISTS (SELECT 1 FROM pg_statistic_ext x WHERE x.stxrelid = c.oid) AS unrestorable
  FROM rel c
  LEFT JOIN no_columns nc ON nc.oid = c.oid
  LEFT JOIN no_expressions ne ON ne.oid = c.oid
  LEFT JOIN no_extended nx ON nx.oid = c.oid
  LEFT JOIN pg_inherits h ON c.relispartition AND h.inhrelid = c.oid
  LEFT JOIN pg_class pc ON pc.oid = h.inhparent
  LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
 ORDER BY bytes DESC NULLS LAST, 1, 2`;

/**
 * Which sizes to read: reading a size opens the relation, a third of the
 * query's time in a new session at 500 relations. `missing`: only of the
 * relations that lack something (what onlyMissing analyzes); `none`: a check
 * of what is missing needs no size.
 */
export type Sizes = 'all' | 'missing' | 'none';

/** What relationsSql depends on: the server's version (server_version_num) and whether this role reads the statistics catalogs. */
export interface StatisticsServer {
  readonly version: number;
  readonly readsCatalog: boolean;
}

export async function statisticsServer(db: Queryable): Promise<StatisticsServer> {
  const { rows } = await db.query<{ v: number; catalog: boolean }>(
    `SELECT current_setting('server_version_num')::int AS v,
            has_table_privilege('pg_catalog.pg_statistic', 'SELECT')
              AND COALESCE(has_table_privilege(to_regclass('pg_catalog.pg_statistic_ext_data'), 'SELECT'), true) AS catalog`,
  );
  return { version: rows[0]?.v ?? 0, readsCatalog: rows[0]?.catalog ?? false };
}

/** `server` if the caller knows it already: one round trip fewer. */
export async function readRelations(db: Queryable, options: { readonly server?: StatisticsServer; readonly sizes?: Sizes } = {}): Promise<Relation[]> {
  const server = options.server ?? (await statisticsServer(db));
  const { rows } = await db.query<{
    schema: string;
    name: string;
    kind: 'r' | 'p' | 'm';
    parent_schema: string | null;
    parent_name: string | null;
    bytes: string | null;
    missing: string[];
    unrestorable: boolean;
  }>(relationsSql(server.version, options.sizes, server.readsCatalog));
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    parent: r.parent_schema !== null && r.parent_name !== null ? { schema: r.parent_schema, name: r.parent_name } : null,
    bytes: r.bytes === null ? null : Number(r.bytes),
    missing: r.missing,
    unrestorable: r.unrestorable,
  }));
}

export const qualifiedName = (r: { schema: string; name: string }) => `${r.schema}.${r.name}`;
