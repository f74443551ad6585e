/**
 * Where two chunks differ, down to the rows. A chunk whose digests differ is
 * halved on both servers (one statement per side gives the digest of both
 * halves), and only the halves that still differ are followed, until a range
 * holds at most `bisectRows` rows on either side; then both sides send the key
 * and the 64-bit hash of each row of that range, and the keys are matched:
 * missing on the target, missing on the source, or different values. What
 * crosses the network grows with the number of differences, not with the
 * table: each differing row costs about log2(chunk / bisectRows) digest
 * statements per side and one range of at most `bisectRows` keys.
 *
 * Integer keys are cut into 16 equal parts at each step (one pass per side
 * gives all 16 digests, so a differing chunk is read about once more in all);
 * other keys are halved at the median key of the side with more rows in the
 * range (an ordered walk of the key index). A range that cannot be halved (one value of the first key
 * column of a composite key) is compared row by row when it is small enough
 * (10 x bisectRows), and reported as a range otherwise.
 */
import { displayIdent, quoteIdent, quoteQualified } from '../db/quote.js';
import { chunkWhere, describeChunk, isIntegerKey, rowHash, type Chunk, type Digest, type Side } from './digest.js';

export type RowDifference = 'missing-on-target' | 'missing-on-source' | 'different';

export interface DifferingRow {
  /** The key as text: `id=42`, or `(a, b)=(1,x)` for a composite key. */
  readonly key: string;
  readonly difference: RowDifference;
}

/** What was found in one table; shared by the workers digesting its chunks. */
export interface Located {
  /** Listed rows, at most `maxReportedRows`. */
  readonly rows: DifferingRow[];
  /** Rows found different beyond the listed ones, by kind. */
  readonly counts: Record<RowDifference, number>;
  /** Ranges that still differ but were not narrowed down (too many rows for one value of the key, or past countLimit). */
  readonly ranges: string[];
}

export interface LocateOptions {
  /** Halve until a range holds at most this many rows on either side. */
  readonly bisectRows: number;
  /** List at most this many rows per table; the rest are counted. */
  readonly maxReportedRows: number;
}

export const emptyLocated = (): Located => ({ rows: [], counts: { 'missing-on-target': 0, 'missing-on-source': 0, different: 0 }, ranges: [] });

/** How many differing rows of one table are found (listed or counted) before the rest is reported by range. */
export const countLimit = (options: LocateOptions): number => Math.max(10_000, options.maxReportedRows * 100);

const same = (a: Digest, b: Digest) => a.rows === b.rows && a.hash === b.hash;
const larger = (a: Digest, b: Digest) => (a.rows > b.rows ? a.rows : b.rows);

/** Narrows one differing chunk down to its rows, adding what it finds to `found`. */
export async function locate(
  source: Side,
  target: Side,
  chunk: Chunk,
  digests: readonly [Digest, Digest],
  found: Located,
  options: LocateOptions,
): Promise<void> {
  const [s, t] = digests;
  if (same(s, t)) return;
  const listed = () => found.rows.length + found.counts['missing-on-target'] + found.counts['missing-on-source'] + found.counts.different;
  const rows = larger(s, t);
  if (rows <= BigInt(options.bisectRows)) return compareRows(source, target, chunk, found, options);
  // Rows past the listing limit are still found and counted, up to a bound:
  // a table where everything differs (a changed type, a float format) would
  // otherwise send every key; past it, differing ranges are named instead.
  if (listed() >= countLimit(options)) {
    found.ranges.push(describeChunk(source.key[0], chunk));
    return;
  }
  if (isIntegerKey(source.key[0]) && chunk.from !== null && chunk.to !== null && BigInt(chunk.to) - BigInt(chunk.from) >= 2n) {
    // Integer keys: FANOUT parts in one pass per side, so a differing chunk is read about once more in all, not twice.
    const parts = integerParts(chunk);
    const [sourceParts, targetParts] = await Promise.all([digestParts(source, chunk, parts), digestParts(target, chunk, parts)]);
    for (const [i, part] of parts.entries()) {
      const digests = [sourceParts[i], targetParts[i]] as const;
      if (digests[0] === undefined || digests[1] === undefined)
        throw new Error(`compare: ${parts.length} parts asked, ${sourceParts.length} and ${targetParts.length} digested`);
      await locate(source, target, part, [digests[0], digests[1]], found, options);
    }
    return;
  }
  const middle = await splitPoint(source, chunk, s.rows >= t.rows ? source : target, rows);
  if (middle === undefined) {
    if (rows <= BigInt(options.bisectRows) * 10n) return compareRows(source, target, chunk, found, options);
    found.ranges.push(`${describeChunk(source.key[0], chunk)} (${rows} rows, one value of the first key column)`);
    return;
  }
  const [sourceHalves, targetHalves] = await Promise.all([digestHalves(source, chunk, middle), digestHalves(target, chunk, middle)]);
  const lower: Chunk = { from: chunk.from, to: middle };
  const upper: Chunk = { from: middle, to: chunk.to };
  await locate(source, target, lower, [sourceHalves[0], targetHalves[0]], found, options);
  await locate(source, target, upper, [sourceHalves[1], targetHalves[1]], found, options);
}

/** Where to halve `chunk`, or undefined when it holds a single value of the first key column. */
async function splitPoint(source: Side, chunk: Chunk, fuller: Side, rows: bigint): Promise<string | undefined> {
  const key = source.key[0];
  if (key === undefined) return undefined;
  if (isIntegerKey(key) && chunk.from !== null && chunk.to !== null) {
    const [from, to] = [BigInt(chunk.from), BigInt(chunk.to)];
    return to - from < 2n ? undefined : (from + (to - from) / 2n).toString();
  }
  const column = quoteIdent(fuller.key[0]?.name ?? key.name);
  const params: unknown[] = [];
  const where = chunkWhere(fuller, chunk, params);
  params.push((rows / 2n).toString());
  const { rows: found } = await fuller.db.query<{ v: string }>(
    `SELECT ${column}::text AS v FROM ${quoteQualified(fuller.table.schema, fuller.table.name)}${where} ORDER BY ${column} OFFSET $${params.length}::int8 LIMIT 1`,
    params,
  );
  const middle = found[0]?.v;
  // The lower bound itself: every row of the lower half would be the whole range again.
  return middle === undefined || middle === chunk.from ? undefined : middle;
}

/** How many parts an integer range is cut into at each step. */
const FANOUT = 16n;

/** [from, to) cut into at most FANOUT equal parts. */
function integerParts(chunk: Chunk): Chunk[] {
  const [from, to] = [BigInt(chunk.from ?? '0'), BigInt(chunk.to ?? '0')];
  const width = (to - from + FANOUT - 1n) / FANOUT;
  const parts: Chunk[] = [];
  for (let lo = from; lo < to; lo += width) parts.push({ from: lo.toString(), to: (lo + width < to ? lo + width : to).toString() });
  return parts;
}

/** Digests of each part of an integer range on one side, in one statement (grouped by part number). */
async function digestParts(side: Side, chunk: Chunk, parts: readonly Chunk[]): Promise<Digest[]> {
  const key = side.key[0];
  if (key === undefined) throw new Error('a keyed comparison needs a key');
  const params: unknown[] = [];
  const where = chunkWhere(side, chunk, params);
  const width = BigInt(parts[0]?.to ?? '0') - BigInt(parts[0]?.from ?? '0');
  params.push(chunk.from, width.toString());
  // int8 arithmetic where key - from cannot overflow (every range but the widest), numeric otherwise.
  const type = BigInt(chunk.to ?? '0') - BigInt(chunk.from ?? '0') < 2n ** 62n ? 'int8' : 'numeric';
  const { rows } = await side.db.query<{ part: string; n: string; h: string }>(
    `SELECT floor((${quoteIdent(key.name)}::${type} - $${params.length - 1}::${type}) / $${params.length}::${type})::int8 AS part,
            count(*)::text AS n, COALESCE(sum(${rowHash(side.columns)}), 0)::text AS h
       FROM ${quoteQualified(side.table.schema, side.table.name)}${where} GROUP BY 1`,
    params,
  );
  const byPart = new Map(rows.map((r) => [Number(r.part), r]));
  return parts.map((_, i) => ({ rows: BigInt(byPart.get(i)?.n ?? '0'), hash: byPart.get(i)?.h ?? '0' }));
}

/** Digests of [from, middle) and [middle, to) on one side, in one statement. */
async function digestHalves(side: Side, chunk: Chunk, middle: string): Promise<[Digest, Digest]> {
  const key = side.key[0];
  if (key === undefined) throw new Error('a keyed comparison needs a key');
  const params: unknown[] = [];
  const where = chunkWhere(side, chunk, params);
  params.push(middle);
  const { rows } = await side.db.query<{ upper: boolean; n: string; h: string }>(
    `SELECT ${quoteIdent(key.name)} >= $${params.length}::${key.type} AS upper, count(*)::text AS n, COALESCE(sum(${rowHash(side.columns)}), 0)::text AS h
       FROM ${quoteQualified(side.table.schema, side.table.name)}${where} GROUP BY 1`,
    params,
  );
  const half = (upper: boolean): Digest => {
    const row = rows.find((r) => r.upper === upper);
    return { rows: BigInt(row?.n ?? '0'), hash: row?.h ?? '0' };
  };
  return [half(false), half(true)];
}

/** A value as record output writes it: double-quoted when empty or holding a space, a comma, a parenthesis, a quote or a backslash, those two doubled. */
export function fieldText(value: string): string {
  return value !== '' && !/[\s,()"\\]/.test(value) ? value : `"${value.replaceAll('\\', '\\\\').replaceAll('"', '""')}"`;
}

/** Each row's key and hash in `chunk` on both sides, matched by key. */
async function compareRows(source: Side, target: Side, chunk: Chunk, found: Located, options: LocateOptions): Promise<void> {
  const [sourceRows, targetRows] = await Promise.all([rowHashes(source, chunk), rowHashes(target, chunk)]);
  const names = source.key.map((k) => displayIdent(k.name));
  // A single key's text is quoted as PostgreSQL quotes a field of a row, which is how a composite key reads.
  const label = (key: string) => (names.length === 1 ? `${names[0]}=${fieldText(key)}` : `(${names.join(', ')})=${key}`);
  const differences: DifferingRow[] = [];
  for (const [key, hash] of sourceRows) {
    const other = targetRows.get(key);
    if (other === undefined) differences.push({ key, difference: 'missing-on-target' });
    else if (other !== hash) differences.push({ key, difference: 'different' });
  }
  for (const key of targetRows.keys()) if (!sourceRows.has(key)) differences.push({ key, difference: 'missing-on-source' });
  for (const row of differences) {
    if (found.rows.length < options.maxReportedRows) found.rows.push({ key: label(row.key), difference: row.difference });
    else found.counts[row.difference]++;
  }
}

async function rowHashes(side: Side, chunk: Chunk): Promise<Map<string, string>> {
  const params: unknown[] = [];
  const where = chunkWhere(side, chunk, params);
  const key = side.key.length === 1 ? `${quoteIdent(side.key[0]?.name ?? '')}::text` : `ROW(${side.key.map((k) => quoteIdent(k.name)).join(', ')})::text`;
  const { rows } = await side.db.query<{ k: string; h: string }>(
    `SELECT ${key} AS k, ${rowHash(side.columns)}::text AS h FROM ${quoteQualified(side.table.schema, side.table.name)}${where}`,
    params,
  );
  const byKey = new Map<string, string>();
  // A key twice on one side (the target without the constraint) hashes both rows together.
  for (const row of rows) byKey.set(row.k, byKey.has(row.k) ? `${byKey.get(row.k)}+${row.h}` : row.h);
  return byKey;
}
