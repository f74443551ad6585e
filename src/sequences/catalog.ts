/**
 * Reading sequences from PostgreSQL in a constant number of round trips,
 * whatever their count: the catalog in one query, every sequence's
 * (last_value, is_called) in one more, column extremes in one more.
 */
import type { Queryable } from '../db/session.js';
import { quoteIdent, quoteQualified } from '../db/quote.js';
import type { PgSequence, SequenceState } from './model.js';

interface CatalogRow {
  oid: string;
  schema: string;
  name: string;
  type: string;
  start: string;
  increment: string;
  min: string;
  max: string;
  cycle: boolean;
  table_schema: string | null;
  table_name: string | null;
  column_name: string | null;
  deptype: string | null;
}

/** Every sequence outside the system schemas, with the column that owns it (serial 'a', identity 'i'). */
export const CATALOG_SQL = `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name,
       format_type(s.seqtypid, NULL) AS type, s.seqstart::text AS start, s.seqincrement::text AS increment,
       s.seqmin::text AS min, s.seqmax::text AS max, s.seqcycle AS cycle,
       tn.nspname AS table_schema, tc.relname AS table_name, a.attname AS column_name, d.deptype::text AS deptype
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
       AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
  LEFT JOIN pg_class tc ON tc.oid = d.refobjid
  LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'cutover') AND n.nspname !~ '^pg_'
 ORDER BY n.nspname, c.relname`;

export async function readSequences(db: Queryable): Promise<PgSequence[]> {
  const { rows } = await db.query<CatalogRow>(CATALOG_SQL);
  return rows.map((r) => ({
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    type: r.type,
    start: BigInt(r.start),
    increment: BigInt(r.increment),
    min: BigInt(r.min),
    max: BigInt(r.max),
    cycle: r.cycle,
    ...(r.table_schema !== null && r.table_name !== null && r.column_name !== null
      ? { owner: { schema: r.table_schema, table: r.table_name, column: r.column_name, identity: r.deptype === 'i' } }
      : {}),
  }));
}

/** Statements per UNION ALL: a 10,000-branch UNION ALL exceeds the server's stack depth. */
const BRANCHES_PER_STATEMENT = 500;

/** Several small queries as chunked UNION ALL statements, sent in one round trip. */
async function unionAll<Row extends { k: number }>(db: Queryable, branches: readonly string[]): Promise<Row[]> {
  if (branches.length === 0) return [];
  const statements: string[] = [];
  for (let i = 0; i < branches.length; i += BRANCHES_PER_STATEMENT) {
    statements.push(branches.slice(i, i + BRANCHES_PER_STATEMENT).join('\nUNION ALL '));
  }
  return (await db.queryMany<Row>(statements)).flat();
}

/**
 * Every sequence's exact (last_value, is_called). PostgreSQL 18 has
 * pg_get_sequence_data() for this; before 18 the only way is to select from
 * each sequence relation. Keyed by oid.
 */
export async function readStates(db: Queryable, seqs: readonly PgSequence[]): Promise<Map<string, SequenceState>> {
  const states = new Map<string, SequenceState>();
  if (seqs.length === 0) return states;
  const { rows: probe } = await db.query<{ has: boolean }>("SELECT to_regprocedure('pg_get_sequence_data(regclass)') IS NOT NULL AS has");
  if (probe[0]?.has === true) {
    const { rows } = await db.query<{ oid: string; last_value: string | null; is_called: boolean | null }>(
      `SELECT s.oid::text AS oid, d.last_value::text AS last_value, d.is_called
         FROM unnest($1::oid[]) AS s(oid), LATERAL pg_get_sequence_data(s.oid::regclass) AS d`,
      [seqs.map((s) => s.oid)],
    );
    for (const r of rows) {
      if (r.last_value !== null && r.is_called !== null) states.set(r.oid, { lastValue: BigInt(r.last_value), isCalled: r.is_called });
    }
  } else {
    const rows = await unionAll<{ k: number; last_value: string; is_called: boolean }>(
      db,
      seqs.map((s, k) => `SELECT ${k} AS k, last_value::text AS last_value, is_called FROM ${quoteQualified(s.schema, s.name)}`),
    );
    for (const r of rows) {
      const seq = seqs[r.k];
      if (seq !== undefined) states.set(seq.oid, { lastValue: BigInt(r.last_value), isCalled: r.is_called });
    }
  }
  const unreadable = seqs.filter((s) => !states.has(s.oid));
  if (unreadable.length > 0) {
    throw new Error(
      `cannot read the state of ${unreadable.length} sequence(s) (no SELECT or USAGE privilege?): ${unreadable
        .slice(0, 5)
        .map((s) => quoteQualified(s.schema, s.name))
        .join(', ')}`,
    );
  }
  return states;
}

/**
 * For sequences owned by a column: the column's max (ascending) or min
 * (descending) value, null for an empty table. Keyed by sequence oid.
 */
export async function readColumnExtremes(db: Queryable, seqs: readonly PgSequence[]): Promise<Map<string, bigint | null>> {
  const owned = seqs.filter((s) => s.owner !== undefined);
  const rows = await unionAll<{ k: number; v: string | null }>(
    db,
    owned.map((s, k) => {
      const owner = s.owner;
      if (owner === undefined) throw new Error('unreachable: filtered to owned sequences');
      const fn = s.increment > 0n ? 'max' : 'min';
      return `SELECT ${k} AS k, ${fn}(${quoteIdent(owner.column)})::text AS v FROM ${quoteQualified(owner.schema, owner.table)}`;
    }),
  );
  const extremes = new Map<string, bigint | null>();
  for (const r of rows) {
    const seq = owned[r.k];
    if (seq !== undefined) extremes.set(seq.oid, r.v === null ? null : BigInt(r.v));
  }
  return extremes;
}
