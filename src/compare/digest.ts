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
 * same boundaries on both sides, half-open, so every row of either side falls
 * in exactly one chunk.
 *
 * Boundaries never come from planner statistics (reltuples is -1 or 0 right
 * after a load, exactly when a compare runs): an integer key is cut into
 * equal-width ranges between the smallest and largest key of both sides;
 * any other key at quantiles of a page sample. How many chunks follows from
 * the key range and the heap's size on disk, which are facts, not estimates.
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

/** One side of a keyed comparison: its session, its table, and its own types of the key columns. */
export interface Side {
  readonly db: Queryable;
  readonly table: Pick<Table, 'schema' | 'name'>;
  /** This side's key columns (the source's key, by name), in key order. */
  readonly key: readonly Column[];
  /** The columns both sides have, in the source's order. */
  readonly columns: readonly string[];
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
export const isIntegerKey = (column: Column | undefined): boolean => column !== undefined && INTEGER_TYPES.has(column.type);

/** No heap tuple is smaller: 24 bytes of header, 4 of line pointer, at least one byte of data, aligned. */
const MIN_TUPLE_BYTES = 32;

export async function countRows(db: Queryable, table: Table): Promise<bigint> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${quoteQualified(table.schema, table.name)}`);
  return BigInt(rows[0]?.n ?? '0');
}

/**
 * Chunk boundaries for one table, the same for both sides. An integer key:
 * equal-width ranges from the smallest key of either side to one past the
 * largest (every row of both sides inside a bounded range, so any range can be
 * halved later). Another key: quantiles of a page sample of the source, the
 * first and last chunk open. About `chunkRows` rows per chunk, counting at most
 * what the key range and the heap's size allow.
 */
export async function chunksOf(source: Side, target: Side, heapBytes: number, chunkRows: number): Promise<Chunk[]> {
  const first = source.key[0];
  const whole: Chunk[] = [{ from: null, to: null }];
  const rowsAtMost = Math.max(1, Math.ceil(heapBytes / MIN_TUPLE_BYTES));
  if (first === undefined) return whole;
  if (isIntegerKey(first)) {
    const range = async (side: Side) => {
      const column = quoteIdent(side.key[0]?.name ?? first.name);
      const { rows } = await side.db.query<{ lo: string | null; hi: string | null }>(
        `SELECT min(${column})::text AS lo, max(${column})::text AS hi FROM ${quoteQualified(side.table.schema, side.table.name)}`,
      );
      return rows[0]?.lo == null || rows[0].hi == null ? undefined : { lo: BigInt(rows[0].lo), hi: BigInt(rows[0].hi) };
    };
    const [s, t] = await Promise.all([range(source), range(target)]);
    if (s === undefined && t === undefined) return whole;
    const lo = [s?.lo, t?.lo].filter((v): v is bigint => v !== undefined).reduce((a, b) => (a < b ? a : b));
    const hi = [s?.hi, t?.hi].filter((v): v is bigint => v !== undefined).reduce((a, b) => (a > b ? a : b));
    const span = hi - lo + 1n;
    const rows = span < BigInt(rowsAtMost) ? Number(span) : rowsAtMost;
    const wanted = BigInt(Math.max(1, Math.ceil(rows / chunkRows)));
    const width = (span + wanted - 1n) / wanted;
    const chunks: Chunk[] = [];
    for (let from = lo; from <= hi; from += width) {
      const to = from + width > hi + 1n ? hi + 1n : from + width;
      chunks.push({ from: from.toString(), to: to.toString() });
    }
    return chunks;
  }
  const wanted = Math.ceil(rowsAtMost / chunkRows);
  if (wanted <= 1) return whole;
  // About 20 sampled keys per chunk; SYSTEM sampling reads whole pages, cheaply.
  const column = quoteIdent(first.name);
  const percent = Math.min(100, ((wanted * 20) / rowsAtMost) * 100 * 4);
  const { rows } = await source.db.query<{ v: string }>(
    `SELECT ${column}::text AS v FROM ${quoteQualified(source.table.schema, source.table.name)} TABLESAMPLE SYSTEM ($1) ORDER BY ${column}`,
    [percent],
  );
  const step = Math.max(1, Math.floor(rows.length / wanted));
  const bounds = [...new Set(rows.filter((_, i) => i > 0 && i % step === 0).map((r) => r.v))];
  const edges = [null, ...bounds, null];
  return edges.slice(0, -1).map((from, i) => ({ from, to: edges[i + 1] ?? null }));
}

/** `WHERE` for a chunk of this side's first key column, its parameters appended to `params`. */
export function chunkWhere(side: Side, chunk: Chunk, params: unknown[]): string {
  const key = side.key[0];
  const where: string[] = [];
  if (key !== undefined && chunk.from !== null) {
    params.push(chunk.from);
    where.push(`${quoteIdent(key.name)} >= $${params.length}::${key.type}`);
  }
  if (key !== undefined && chunk.to !== null) {
    params.push(chunk.to);
    where.push(`${quoteIdent(key.name)} < $${params.length}::${key.type}`);
  }
  return where.length ? ` WHERE ${where.join(' AND ')}` : '';
}

/** The per-row hash every digest sums: the row's text, hashed to 64 bits on the server. */
export const rowHash = (columns: readonly string[]): string => `hashtextextended(ROW(${columns.map(quoteIdent).join(', ')})::text, 0)`;

/** The digest of one chunk on one side. */
export async function digestChunk(side: Side, chunk: Chunk): Promise<Digest> {
  const params: unknown[] = [];
  const where = chunkWhere(side, chunk, params);
  const { rows } = await side.db.query<{ n: string; h: string }>(
    `SELECT count(*)::text AS n, COALESCE(sum(${rowHash(side.columns)}), 0)::text AS h
       FROM ${quoteQualified(side.table.schema, side.table.name)}${where}`,
    params,
  );
  return { rows: BigInt(rows[0]?.n ?? '0'), hash: rows[0]?.h ?? '0' };
}

export function describeChunk(key: Column | undefined, chunk: Chunk): string {
  if (key === undefined || (chunk.from === null && chunk.to === null)) return 'the whole table';
  const parts = [chunk.from !== null ? `${key.name} >= ${chunk.from}` : '', chunk.to !== null ? `${key.name} < ${chunk.to}` : ''];
  return parts.filter(Boolean).join(' and ');
}
