/**
 * `compare`: is everything there? Exact row counts, or per-table digests of
 * key-range chunks (PostgreSQL on both sides), between a source and a target,
 * in parallel, read-only. The plan is the comparison, so it runs in a dry run
 * too; each side is read inside one REPEATABLE READ snapshot shared by all its
 * sessions (pg_export_snapshot), so each side is consistent with itself. Any
 * difference blocks the step (`tolerance` allows a count difference in tables compared by count), naming the table and, by
 * checksum, the keys of the rows that differ (src/compare/locate.ts).
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { both, inParallel } from '../parallel.js';
import { defineStep, type BaseContext, type Step } from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { oracleOwners, type OracleSession } from '../db/oracle.js';
import { displayQualified, quoteLiteral } from '../db/quote.js';
import { chunksOf, countRows, describeChunk, digestChunk, type Chunk, type Side } from '../compare/digest.js';
import { emptyLocated, locate, type DifferingRow, type Located } from '../compare/locate.js';
import { oracleCount, readOracleTables, readTables, type Table } from '../compare/tables.js';
import { globMatcher, unmatchedBlockers, unmatchedPatterns } from '../runbook/patterns.js';

const config = z.object({
  source: z.string().min(1).describe('the connection holding the original data (postgres, or oracle for counts)'),
  target: z.string().min(1).describe('the postgres connection holding the copy'),
  mode: z.enum(['counts', 'checksum']).optional().describe('exact counts (default), or digests of key-range chunks'),
  schemas: z.record(z.string(), z.string()).optional().describe('source schema -> target schema; when given, only these'),
  include: z.array(z.string().min(1)).optional().describe('target `schema.table` patterns (* and ?); default all'),
  exclude: z.array(z.string().min(1)).optional().describe('target `schema.table` patterns to leave out'),
  jobs: z.number().int().min(1).max(32).optional().describe('sessions per side working in parallel (default 2)'),
  tolerance: z
    .number()
    .int()
    .nonnegative()
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .describe('allowed row-count difference per table compared by count (default 0); a checksum compares keyed tables row for row'),
  chunkRows: z
    .number()
    .int()
    .min(1000)
    .max(2 ** 31 - 1)
    .optional()
    .describe('checksum: about this many rows per chunk (default 100000)'),
  bisectRows: z
    .number()
    .int()
    .min(10)
    .max(1_000_000)
    .optional()
    .describe(
      'checksum: a differing chunk is narrowed down on both sides (16 parts at a time for an integer key, halves otherwise) until at most this many rows, whose keys are then matched (default 1000)',
    ),
  maxReportedRows: z.number().int().min(0).max(100_000).optional().describe('checksum: differing rows listed per table; the rest are counted (default 100)'),
});

type Config = z.output<typeof config>;

const DEFAULT_JOBS = 2;
const DEFAULT_CHUNK_ROWS = 100_000;
const DEFAULT_BISECT_ROWS = 1_000;
const DEFAULT_MAX_REPORTED_ROWS = 100;

type Status = 'ok' | 'count-differs' | 'checksum-differs' | 'missing-on-target' | 'missing-on-source' | 'count-only';

interface Pair {
  readonly source?: Table;
  readonly target?: Table;
  /** Target `schema.table` (or where it would be), as include and exclude patterns match it. */
  readonly label: string;
  /** The same, as output shows it: a part with upper case, a space or a dot is double-quoted. */
  readonly shown: string;
}

interface Result {
  readonly table: string;
  readonly sourceRows: string | null;
  readonly targetRows: string | null;
  readonly status: Status;
  /** By checksum: the differing rows found and the ranges not narrowed down; the first differing range if no row could be named. */
  readonly firstDifference: string | null;
  readonly note?: string;
  readonly rows?: readonly DifferingRow[];
}

/** Oracle names are upper case unless created quoted; PostgreSQL folds to lower. */
function pairTables(sources: readonly Table[], targets: readonly Table[], c: Config, foldCase: boolean): { pairs: Pair[]; unmatched: string[] } {
  const key = (schema: string, name: string) => `${schema}\u0000${name}`;
  const byName = new Map(targets.map((t) => [key(t.schema, t.name), t]));
  const schemasOnTarget = new Set(targets.map((t) => t.schema));
  const fold = (name: string, exists: (n: string) => boolean) => (!foldCase || exists(name) ? name : name.toLowerCase());
  const pairs: Pair[] = [];
  const claimed = new Set<Table>();
  for (const source of sources) {
    if (c.schemas !== undefined && !(source.schema in c.schemas)) continue;
    const schema = c.schemas?.[source.schema] ?? fold(source.schema, (s) => schemasOnTarget.has(s));
    const name = fold(source.name, (n) => byName.has(key(schema, n)));
    const target = byName.get(key(schema, name));
    if (target) claimed.add(target);
    pairs.push({ source, ...(target ? { target } : {}), label: `${schema}.${name}`, shown: displayQualified(schema, name) });
  }
  const mapped = c.schemas === undefined ? undefined : new Set(Object.values(c.schemas));
  for (const target of targets) {
    if (!claimed.has(target) && (mapped === undefined || mapped.has(target.schema))) {
      pairs.push({ target, label: `${target.schema}.${target.name}`, shown: displayQualified(target.schema, target.name) });
    }
  }
  const include = c.include?.length ? globMatcher(c.include) : () => true;
  const exclude = c.exclude?.length ? globMatcher(c.exclude) : () => false;
  return {
    pairs: pairs.filter((p) => include(p.label) && !exclude(p.label)),
    unmatched: unmatchedPatterns(
      c.include,
      pairs.map((p) => p.label),
    ),
  };
}

/** `jobs` sessions on one connection sharing one REPEATABLE READ snapshot. */
async function snapshotSessions(ctx: BaseContext, connection: string, jobs: number): Promise<Queryable[]> {
  const sessions = await Promise.all(Array.from({ length: jobs }, (_, w) => ctx.session(connection, w)));
  const [leader, ...followers] = sessions;
  if (leader === undefined) throw new Error('no session');
  await leader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await leader.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
  const id = rows[0]?.id ?? '';
  for (const s of followers) {
    await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await s.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(id)}`);
  }
  return sessions;
}

const endAll = (sessions: readonly Queryable[]) => Promise.all(sessions.map((s) => s.query('COMMIT').catch(() => undefined)));

function session(sessions: readonly Queryable[], worker: number): Queryable {
  const s = sessions[worker] ?? sessions[0];
  if (s === undefined) throw new Error('no session');
  return s;
}

/**
 * A row's text depends on session settings that each server, database or
 * role may set differently: a timestamptz prints in the session's TimeZone,
 * dates in its DateStyle, intervals in its IntervalStyle, bytea in its
 * bytea_output, money in its lc_monetary. Every compare session prints
 * the same way, for this transaction only.
 */
const PIN_OUTPUT_SQL = `SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true),
  set_config('IntervalStyle', 'postgres', true), set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true)`;

/**
 * Pins the settings above; and floats: PostgreSQL 12 prints floats in their
 * shortest exact form, 11 and before 15 significant digits. With an older
 * side, both sides print the old way (extra_float_digits = 0 means that on
 * every release), so equal values have equal text; floats that differ only
 * beyond the 15th digit then compare equal, which the plan notes.
 */
async function alignText(sources: readonly Queryable[], targets: readonly Queryable[]): Promise<string | undefined> {
  const version = async (db: Queryable) => (await db.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v")).rows[0]?.v ?? 0;
  await Promise.all([...sources, ...targets].map((s) => s.query(PIN_OUTPUT_SQL)));
  const oldest = Math.min(...(await Promise.all([version(session(sources, 0)), version(session(targets, 0))])));
  if (oldest >= 120000) return undefined;
  await Promise.all([...sources, ...targets].map((s) => s.query('SET LOCAL extra_float_digits = 0')));
  return `a side is PostgreSQL ${Math.floor(oldest / 10000)}, which prints floats with 15 significant digits: float columns are compared to 15 significant digits`;
}

async function compare(
  ctx: BaseContext,
  step: Step<Config>,
): Promise<{ results: Result[]; description: string; floatNote?: string | undefined; unmatched: string[] }> {
  const c = step.config;
  const jobs = c.jobs ?? DEFAULT_JOBS;
  const checksum = c.mode === 'checksum';
  const resolved = ctx.resolved(c.source);
  const oracle: OracleSession | undefined = resolved.kind === 'oracle' ? await ctx.oracle(c.source) : undefined;
  // Each side's sessions, snapshot and catalog at once: they are separate servers.
  const [sources, targets] = await both(
    oracle === undefined ? snapshotSessions(ctx, c.source, jobs) : Promise.resolve([]),
    snapshotSessions(ctx, c.target, jobs),
  );
  try {
    const floatNote = checksum && oracle === undefined ? await alignText(sources, targets) : undefined;
    const [sourceTables, targetTables] = await both(
      oracle !== undefined
        ? oracleOwners(oracle, Object.keys(c.schemas ?? {})).then((owners) => readOracleTables(oracle, owners))
        : readTables(session(sources, 0)),
      readTables(session(targets, 0)),
    );
    const { pairs, unmatched } = pairTables(sourceTables, targetTables, c, oracle !== undefined);
    // Largest first: the wall time is bounded by the largest table, not the sum.
    pairs.sort((a, b) => (b.source?.bytes ?? b.target?.bytes ?? 0) - (a.source?.bytes ?? a.target?.bytes ?? 0));

    // Oracle sessions are single connections: its counts queue up one by one.
    let oracleQueue: Promise<unknown> = Promise.resolve();
    const sourceCount = (table: Table, worker: number): Promise<bigint> => {
      if (oracle === undefined) return countRows(session(sources, worker), table);
      const next = oracleQueue.then(() => oracleCount(oracle, table));
      oracleQueue = next.catch(() => undefined);
      return next;
    };

    const results = new Map<Pair, Result>();
    const tasks: { pair: Pair; chunk?: Chunk; sides?: readonly [Side, Side] }[] = [];
    for (const pair of pairs) {
      if (pair.source === undefined || pair.target === undefined) {
        results.set(pair, {
          table: pair.shown,
          sourceRows: null,
          targetRows: null,
          status: pair.target === undefined ? 'missing-on-target' : 'missing-on-source',
          firstDifference: null,
        });
      } else tasks.push({ pair });
    }

    // Checksums: chunk boundaries come from the source, for tables with a key on both sides.
    const chunked: typeof tasks = [];
    if (checksum) {
      await inParallel(tasks, jobs, async (task, worker) => {
        const { source, target } = task.pair;
        const targetKey = source?.key?.map((k) => target?.columns.find((col) => col.name === k.name));
        if (source?.key == null || target === undefined || targetKey === undefined || targetKey.length === 0 || targetKey.some((k) => k === undefined)) {
          chunked.push(task);
          return;
        }
        const columns = source.columns.map((col) => col.name).filter((name) => target.columns.some((col) => col.name === name));
        // Sessions are chosen per chunk below; these carry the tables, key types and columns.
        const sides = [
          { db: session(sources, worker), table: source, key: source.key, columns },
          { db: session(targets, worker), table: target, key: targetKey.filter((k) => k !== undefined), columns },
        ] as const;
        for (const chunk of await chunksOf(sides[0], sides[1], Math.max(source.heapBytes, target.heapBytes), c.chunkRows ?? DEFAULT_CHUNK_ROWS)) {
          chunked.push({ pair: task.pair, chunk, sides });
        }
      });
    } else chunked.push(...tasks);
    const size = (p: Pair) => p.source?.bytes ?? p.target?.bytes ?? 0;
    chunked.sort((a, b) => size(b.pair) - size(a.pair));

    interface Tally {
      sourceRows: bigint;
      targetRows: bigint;
      firstDifference: Chunk | undefined;
      chunks: number;
      located: Located;
    }
    const locateOptions = { bisectRows: c.bisectRows ?? DEFAULT_BISECT_ROWS, maxReportedRows: c.maxReportedRows ?? DEFAULT_MAX_REPORTED_ROWS };
    const tallies = new Map<Pair, Tally>();
    let done = 0;
    await inParallel(chunked, jobs, async ({ pair, chunk, sides }, worker) => {
      const { source, target } = pair;
      if (source === undefined || target === undefined) return;
      const tally = tallies.get(pair) ?? { sourceRows: 0n, targetRows: 0n, firstDifference: undefined, chunks: 0, located: emptyLocated() };
      tallies.set(pair, tally);
      if (chunk === undefined || sides === undefined) {
        const [s, t] = await Promise.all([sourceCount(source, worker), countRows(session(targets, worker), target)]);
        tally.sourceRows += s;
        tally.targetRows += t;
      } else {
        const sourceKey = source.key?.[0];
        // This worker's own sessions: chunks of one table are digested in parallel.
        const [sourceSide, targetSide] = [
          { ...sides[0], db: session(sources, worker) },
          { ...sides[1], db: session(targets, worker) },
        ];
        const [s, t] = await Promise.all([digestChunk(sourceSide, chunk), digestChunk(targetSide, chunk)]);
        tally.sourceRows += s.rows;
        tally.targetRows += t.rows;
        tally.chunks++;
        if (s.rows !== t.rows || s.hash !== t.hash) {
          // Keep the lowest differing range: chunks finish in any order.
          const earlier = tally.firstDifference;
          if (earlier === undefined || (earlier.from !== null && (chunk.from === null || compareBounds(chunk.from, earlier.from, sourceKey?.type) < 0))) {
            tally.firstDifference = chunk;
          }
          await locate(sourceSide, targetSide, chunk, [s, t], tally.located, locateOptions);
        }
      }
      ctx.progress(`compared ${++done} of ${chunked.length} ${checksum ? 'chunks' : 'tables'}`);
    });

    const tolerance = BigInt(c.tolerance ?? 0);
    for (const [pair, tally] of tallies) {
      const diff = tally.sourceRows > tally.targetRows ? tally.sourceRows - tally.targetRows : tally.targetRows - tally.sourceRows;
      const keyed = checksum && tally.chunks > 0;
      const key = pair.source?.key?.[0];
      const status: Status =
        diff > tolerance ? 'count-differs' : keyed && tally.firstDifference !== undefined ? 'checksum-differs' : checksum && !keyed ? 'count-only' : 'ok';
      results.set(pair, {
        table: pair.shown,
        sourceRows: tally.sourceRows.toString(),
        targetRows: tally.targetRows.toString(),
        status,
        firstDifference: tally.firstDifference ? summarize(tally.located) || `in ${describeChunk(key, tally.firstDifference)}` : null,
        ...(checksum && !keyed ? { note: 'no primary key or unique NOT NULL key: compared by count only' } : {}),
        ...(tally.located.rows.length > 0 ? { rows: [...tally.located.rows].sort(byKey) } : {}),
      });
    }
    const description = `${checksum ? 'checksum' : 'counts'} of ${pairs.length} table(s), ${jobs} session(s) per side`;
    return { results: pairs.map((p) => results.get(p)).filter((r): r is Result => r !== undefined), description, floatNote, unmatched };
  } finally {
    await endAll([...sources, ...targets]);
  }
}

const KIND_TEXT = { 'missing-on-target': 'missing on target', 'missing-on-source': 'missing on source', different: 'different' } as const;

/** `id=7 different, id=10 missing on target`, the first 10 by key; then how many more, by kind; then ranges not narrowed down. */
function summarize(found: Located): string {
  const sorted = [...found.rows].sort(byKey);
  const listed = sorted.slice(0, 10).map((r) => `${r.key} ${KIND_TEXT[r.difference]}`);
  const total = { ...found.counts };
  for (const r of found.rows) total[r.difference]++;
  const unlisted = found.rows.length - listed.length + found.counts['missing-on-target'] + found.counts['missing-on-source'] + found.counts.different;
  const byKind = (['different', 'missing-on-target', 'missing-on-source'] as const)
    .filter((kind) => total[kind] > 0)
    .map((kind) => `${total[kind]} ${KIND_TEXT[kind]}`)
    .join(', ');
  return [
    `${listed.join(', ')}${unlisted > 0 ? `, and ${unlisted} more (in all ${byKind})` : ''}`,
    ...(found.ranges.length > 0
      ? [`not narrowed down: ${found.ranges.slice(0, 5).join('; ')}${found.ranges.length > 5 ? `; and ${found.ranges.length - 5} more range(s)` : ''}`]
      : []),
  ]
    .filter(Boolean)
    .join('; ');
}

/** Keys in a stable order for output: numerically where both are numbers. */
function byKey(a: DifferingRow, b: DifferingRow): number {
  return a.key.localeCompare(b.key, 'en', { numeric: true });
}

/** Orders two bounds of the first key column: numerically for integer keys, as text otherwise. */
function compareBounds(a: string, b: string, type: string | undefined): number {
  if (type === 'smallint' || type === 'integer' || type === 'bigint') {
    const [x, y] = [BigInt(a), BigInt(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

export const compareStep = defineStep({
  kind: 'compare',
  summary: 'Compare source and target: exact row counts, or per-table digests of key ranges; read-only, in parallel',
  config,
  connection: { required: false, kinds: ['postgres'] },
  connections: (c) => [c.source, c.target],
  validate(c, runbook) {
    const issues = [];
    if (c.mode === 'checksum' && runbook.connectionKind(c.source) === 'oracle') {
      issues.push({
        path: ['mode'],
        message: 'checksum needs PostgreSQL on both sides (the text of a value differs between Oracle and PostgreSQL); use mode: counts with an Oracle source',
      });
    }
    if (runbook.connectionKind(c.target) === 'oracle') issues.push({ path: ['target'], message: 'the target must be a postgres connection' });
    return issues;
  },
  effects: () => 'none',
  // Reads only: apply executes nothing, so nothing is planned; the results are in the table.
  planned: z.null(),
  before: z.null(),
  reversibility: () => ({ kind: 'nothing-to-undo' }),

  async plan(ctx, step) {
    if (step.connection !== undefined) throw new UsageError(`step "${step.id}": compare uses source and target, not connection`);
    const { results, description, floatNote, unmatched } = await compare(ctx, step);
    const tolerance = step.config.tolerance ?? 0;
    const differing = results.filter((r) => r.status !== 'ok' && r.status !== 'count-only');
    const countOnly = results.filter((r) => r.status === 'count-only');
    return {
      actions: [],
      planned: null,
      tables: [
        {
          title: `${description}${tolerance > 0 ? `, tolerance ${tolerance} row(s) for tables compared by count` : ''}`,
          columns: [
            { key: 'table', title: 'table' },
            { key: 'sourceRows', title: 'source rows', align: 'right' },
            { key: 'targetRows', title: 'target rows', align: 'right' },
            { key: 'status', title: 'status' },
            { key: 'firstDifference', title: 'differences' },
          ],
          rows: results.map(({ rows: _rows, ...r }) => ({ ...r })),
          footer: `${results.length - differing.length} same, ${differing.length} different`,
        },
        ...(results.some((r) => r.rows !== undefined)
          ? [
              {
                title: `rows that differ (at most ${step.config.maxReportedRows ?? DEFAULT_MAX_REPORTED_ROWS} listed per table)`,
                columns: [
                  { key: 'table', title: 'table' },
                  { key: 'key', title: 'key' },
                  { key: 'difference', title: 'difference' },
                ],
                rows: results.flatMap((r) => (r.rows ?? []).map((row) => ({ table: r.table, key: row.key, difference: row.difference }))),
              },
            ]
          : []),
      ],
      notes: [
        ...(countOnly.length > 0 ? [`compared by count only (no key to chunk by): ${countOnly.map((r) => r.table).join(', ')}`] : []),
        ...(floatNote !== undefined ? [floatNote] : []),
      ],
      ...(differing.length > 0 || unmatched.length > 0
        ? {
            blockers: [
              ...differing.map(
                (r) =>
                  `${r.table}: ${r.status}${r.sourceRows !== null ? ` (source ${r.sourceRows}, target ${r.targetRows})` : ''}${r.firstDifference ? `: ${r.firstDifference}` : ''}`,
              ),
              ...unmatchedBlockers(unmatched, 'table'),
            ],
          }
        : {}),
    };
  },

  async apply() {
    return { before: null };
  },
});
