/**
 * Per-table comparison on PostgreSQL: exact counts, and digests of key-range
 * chunks computed on the server, so only a count and a number cross the
 * network, never the rows.
 *
 * A chunk's digest is the count and the sum of a 64-bit hash of each row's
 * text (`ROW(c1, c2, ...)::text`: the text output of every column, NULL
 * written as nothing and an empty string as ""). A sum does not depend on row
 * order, so neither physical order nor a sort matters; key ranges only say
 * where a difference is. Chunks are ranges of the first key column, with the
 * same boundaries on both sides (taken from the source), half-open, so every
 * row of either side falls in exactly one chunk.
 */
import type { Queryable } from '../db/session.js';
import { quoteIdent, quoteQualified } from '../db/quote.js';
import type { Column, Table } from './tables.js';

export interface Chunk {
  /** Inclusive lower bound (text of the first key column), none for the first chunk. */
  readonly from: string | null;
  /** Exclusive upper bound, none for the last chunk. */
  readonly to: string | null;
}

export interface Digest {
  readonly rows: bigint;
  readonly hash: string;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

export async function countRows(db: Queryable, table: Table): Promise<bigint> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${quoteQualified(table.schema, table.name)}`);
  return BigInt(rows[0]?.n ?? '0');
}

/**
 * Chunk boundaries for `table` on the source: equal-width ranges of an
 * integer key (from its min and max), or quantiles of a sample of any other
 * key. Small tables are one chunk.
 */
export async function chunksOf(db: Queryable, table: Table, chunkRows: number): Promise<Chunk[]> {
  const first = table.key?.[0];
  const wanted = Math.ceil(table.estimatedRows / chunkRows);
  if (first === undefined || wanted <= 1) return [{ from: null, to: null }];
  const column = quoteIdent(first.name);
  const relation = quoteQualified(table.schema, table.name);
  let bounds: string[];
  if (INTEGER_TYPES.has(first.type)) {
    const { rows } = await db.query<{ lo: string | null; hi: string | null }>(
      `SELECT min(${column})::text AS lo, max(${column})::text AS hi FROM ${relation}`,
    );
    if (rows[0]?.lo == null || rows[0].hi == null) return [{ from: null, to: null }];
    const lo = BigInt(rows[0].lo);
    const width = (BigInt(rows[0].hi) - lo) / BigInt(wanted) + 1n;
    bounds = Array.from({ length: wanted - 1 }, (_, i) => (lo + width * BigInt(i + 1)).toString());
  } else {
    // About 20 sampled keys per chunk; SYSTEM sampling reads whole pages, cheaply.
    const percent = Math.min(100, ((wanted * 20) / Math.max(1, table.estimatedRows)) * 100);
    const { rows } = await db.query<{ v: string }>(
      `SELECT ${column}::text AS v FROM ${relation} TABLESAMPLE SYSTEM ($1) ORDER BY ${column}`,
      [percent],
    );
    const step = Math.max(1, Math.floor(rows.length / wanted));
    bounds = [...new Set(rows.filter((_, i) => i > 0 && i % step === 0).map((r) => r.v))];
  }
  const edges = [null, ...bounds, null];
  return edges.slice(0, -1).map((from, i) => ({ from, to: edges[i + 1] ?? null }));
}

/** The digest of one chunk; `key` is this side's first key column (its own type for the casts). */
export async function digestChunk(
  db: Queryable,
  table: Pick<Table, 'schema' | 'name'>,
  columns: readonly string[],
  key: Column | undefined,
  chunk: Chunk,
): Promise<Digest> {
  const where: string[] = [];
  const params: string[] = [];
  if (key !== undefined && chunk.from !== null) {
    params.push(chunk.from);
    where.push(`${quoteIdent(key.name)} >= $${params.length}::${key.type}`);
  }
  if (key !== undefined && chunk.to !== null) {
    params.push(chunk.to);
    where.push(`${quoteIdent(key.name)} < $${params.length}::${key.type}`);
  }
  const row = columns.map(quoteIdent).join(', ');
  const { rows } = await db.query<{ n: string; h: string }>(
    `SELECT count(*)::text AS n, COALESCE(sum(hashtextextended(ROW(${row})::text, 0)), 0)::text AS h
       FROM ${quoteQualified(table.schema, table.name)}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`,
    params,
  );
  return { rows: BigInt(rows[0]?.n ?? '0'), hash: rows[0]?.h ?? '0' };
}

export function describeChunk(key: Column | undefined, chunk: Chunk): string {
  if (key === undefined || (chunk.from === null && chunk.to === null)) return 'the whole table';
  const parts = [chunk.from !== null ? `${key.name} >= ${chunk.from}` : '', chunk.to !== null ? `${key.name} < ${chunk.to}` : ''];
  return parts.filter(Boolean).join(' and ');
}
