/**
 * What `compare` needs to know about tables, on PostgreSQL (one catalog
 * query) and Oracle (ALL_TABLES): columns in order, a key to chunk by (the
 * primary key, or a unique index on NOT NULL columns), and sizes to do the
 * largest tables first.
 */
import type { OracleSession } from '../db/oracle.js';
import type { Queryable } from '../db/session.js';

export interface Column {
  readonly name: string;
  readonly type: string;
}

export interface Table {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly Column[];
  /** Key columns in index order; null: no usable key (compared by count only). */
  readonly key: readonly Column[] | null;
  readonly bytes: number;
  /** The main fork's size on disk: a fact right after a load, unlike reltuples (-1 or 0 before the first ANALYZE). */
  readonly heapBytes: number;
}

const TABLES_SQL = `SELECT n.nspname AS schema, c.relname AS name,
       pg_total_relation_size(c.oid)::int8 AS bytes,
       CASE WHEN c.relkind = 'p'
            THEN (WITH RECURSIVE tree(oid) AS (SELECT c.oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
                  SELECT COALESCE(sum(pg_relation_size(tree.oid)), 0) FROM tree)
            ELSE pg_relation_size(c.oid) END::int8 AS heap,
       (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY k.ord)
          FROM (SELECT i.indkey, i.indnkeyatts FROM pg_index i
                 WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute x
                                    WHERE x.attrelid = c.oid AND x.attnum = ANY (i.indkey::int2[]) AND NOT x.attnotnull)
                 ORDER BY i.indisprimary DESC, i.indnkeyatts LIMIT 1) AS best,
               unnest((best.indkey::int2[])[0:best.indnkeyatts - 1]) WITH ORDINALITY AS k(att, ord)
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.att) AS key
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cutover') AND n.nspname !~ '^pg_'
 ORDER BY 1, 2`;

export async function readTables(db: Queryable): Promise<Table[]> {
  const { rows } = await db.query<{
    schema: string;
    name: string;
    bytes: string;
    heap: string;
    columns: Column[] | null;
    key: Column[] | null;
  }>(TABLES_SQL);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    columns: r.columns ?? [],
    key: r.key,
    bytes: Number(r.bytes),
    heapBytes: Number(r.heap),
  }));
}

/** Oracle tables of the given owners (names as Oracle stores them). */
export async function readOracleTables(db: OracleSession, owners: readonly string[]): Promise<Table[]> {
  const binds = Object.fromEntries(owners.map((o, i) => [`o${i}`, o]));
  const rows = await db.query<{ OWNER: string; TABLE_NAME: string; BLOCKS: string | null }>(
    `SELECT owner AS "OWNER", table_name AS "TABLE_NAME", TO_CHAR(blocks) AS "BLOCKS"
       FROM all_tables WHERE owner IN (${owners.map((_, i) => `:o${i}`).join(', ')}) AND nested = 'NO' AND secondary = 'N'
      ORDER BY owner, table_name`,
    binds,
  );
  return rows.map((r) => ({
    schema: r.OWNER,
    name: r.TABLE_NAME,
    columns: [],
    key: null,
    bytes: Number(r.BLOCKS ?? 0) * 8192,
    heapBytes: Number(r.BLOCKS ?? 0) * 8192,
  }));
}

const oracleIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

export async function oracleCount(db: OracleSession, table: Table): Promise<bigint> {
  const rows = await db.query<{ N: string }>(`SELECT TO_CHAR(COUNT(*)) AS "N" FROM ${oracleIdent(table.schema)}.${oracleIdent(table.name)}`);
  return BigInt(rows[0]?.N ?? '0');
}
