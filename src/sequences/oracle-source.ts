/**
 * Next values from Oracle: ALL_SEQUENCES, plus ALL_TAB_IDENTITY_COLUMNS to
 * tie each identity column's system sequence (ISEQ$$_nnn) to its table and
 * column, so it can be matched to the target's identity sequence.
 *
 * LAST_NUMBER is the next value Oracle would write to disk: with a cache, it
 * is past every value any session has been handed (cached values are lost on
 * restart anyway), so it is the safe next value. It may skip up to
 * CACHE_SIZE values; it never repeats one.
 *
 * Not run against a live Oracle server (none can run here): the queries and
 * row mapping are tested against an injected connection.
 */
import { oracleOwners, type OracleSession } from '../db/oracle.js';
import type { SourceValue } from './model.js';

export interface OracleSequenceRow {
  SEQUENCE_OWNER: string;
  SEQUENCE_NAME: string;
  LAST_NUMBER: string;
  INCREMENT_BY: string;
  CACHE_SIZE: string;
}

export interface OracleIdentityRow {
  OWNER: string;
  TABLE_NAME: string;
  COLUMN_NAME: string;
  SEQUENCE_NAME: string;
}

/** Owners as bind variables (:o0, :o1, ...); numbers as text, since NUMBER(28) exceeds a double. */
function ownerBinds(owners: readonly string[]): { list: string; binds: Record<string, string> } {
  const binds = Object.fromEntries(owners.map((o, i) => [`o${i}`, o]));
  return { list: owners.map((_, i) => `:o${i}`).join(', '), binds };
}

export function sequencesQuery(owners: readonly string[]) {
  const { list, binds } = ownerBinds(owners);
  return {
    sql: `SELECT sequence_owner AS "SEQUENCE_OWNER", sequence_name AS "SEQUENCE_NAME",
       TO_CHAR(last_number) AS "LAST_NUMBER", TO_CHAR(increment_by) AS "INCREMENT_BY", TO_CHAR(cache_size) AS "CACHE_SIZE"
  FROM all_sequences
 WHERE sequence_owner IN (${list})
 ORDER BY sequence_owner, sequence_name`,
    binds,
  };
}

export function identityQuery(owners: readonly string[]) {
  const { list, binds } = ownerBinds(owners);
  return {
    sql: `SELECT owner AS "OWNER", table_name AS "TABLE_NAME", column_name AS "COLUMN_NAME", sequence_name AS "SEQUENCE_NAME"
  FROM all_tab_identity_columns
 WHERE owner IN (${list})`,
    binds,
  };
}

/** Rows to source values; identity sequences carry their table and column. */
export function oracleSourceValues(sequences: readonly OracleSequenceRow[], identities: readonly OracleIdentityRow[]): SourceValue[] {
  const owners = new Map(identities.map((i) => [`${i.OWNER}\u0000${i.SEQUENCE_NAME}`, i]));
  return sequences.map((s) => {
    const identity = owners.get(`${s.SEQUENCE_OWNER}\u0000${s.SEQUENCE_NAME}`);
    return {
      schema: s.SEQUENCE_OWNER,
      name: s.SEQUENCE_NAME,
      next: BigInt(s.LAST_NUMBER),
      ...(identity !== undefined ? { owner: { schema: identity.OWNER, table: identity.TABLE_NAME, column: identity.COLUMN_NAME } } : {}),
      evidence: `LAST_NUMBER=${s.LAST_NUMBER} INCREMENT_BY=${s.INCREMENT_BY} CACHE=${s.CACHE_SIZE}`,
    };
  });
}

export async function readOracleSequences(db: OracleSession, mappedOwners: readonly string[]): Promise<SourceValue[]> {
  const owners = await oracleOwners(db, mappedOwners);
  const seq = sequencesQuery(owners);
  const ident = identityQuery(owners);
  const sequences = await db.query<Record<string, unknown> & OracleSequenceRow>(seq.sql, seq.binds);
  const identities = await db.query<Record<string, unknown> & OracleIdentityRow>(ident.sql, ident.binds);
  return oracleSourceValues(sequences, identities);
}
