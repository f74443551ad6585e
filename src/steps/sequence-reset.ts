/**
 * `sequence-reset`: after a data copy, makes every target sequence hand out
 * exactly the values the source never handed out.
 *
 * It moves sequences with `setval(seq, next, false)`, whose next nextval()
 * returns `next`; never with `ALTER SEQUENCE ... START WITH`, which changes
 * only what RESTART would go back to and leaves the counter where it was.
 * All sequences move in one set-based statement, so the number of round
 * trips does not grow with their count.
 *
 * setval is not transactional: a rolled-back transaction does not undo it.
 * So everything that can fail (bounds, missing sequences, values consumed
 * since the plan) is checked before the statement, the exact previous
 * (last_value, is_called) of every sequence is journaled before it runs
 * (recordBefore), and rollback restores from that whatever part was applied.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { RefusedError, UsageError, VerificationError } from '../errors.js';
import { defineStep, type Action, type BaseContext, type Json, type PlanTable, type Step } from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { quoteQualified } from '../db/quote.js';
import { readColumnExtremes, readSequences, readStates } from '../sequences/catalog.js';
import { formatOf, parseSequenceFile } from '../sequences/file.js';
import { inScope, matchSequences, type Pair } from '../sequences/match.js';
import { unmatchedBlockers, unmatchedPatterns } from '../runbook/patterns.js';
import {
  decide,
  displayName,
  nextAfterData,
  nextValue,
  sourceNext,
  type PgSequence,
  type SequenceAction,
  type SequenceState,
  type SourceValue,
} from '../sequences/model.js';
import { readOracleSequences } from '../sequences/oracle-source.js';
import { FileRefusal, readRegularFile, valueFileLimit } from '../files.js';
import { both } from '../parallel.js';

// Numbers past 2^53-1 lose digits in YAML/JavaScript: write them quoted; bigint ends at 2^63-1.
const integer = z.union([
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER, `at most ${Number.MAX_SAFE_INTEGER} as a number; quote larger values ("9223372036854775807")`),
  z
    .string()
    .regex(/^[0-9]{1,19}$/, 'a non-negative integer')
    .refine((s) => BigInt(s) <= 9_223_372_036_854_775_807n, 'at most 9223372036854775807 (the largest bigint)'),
]);

const config = z.object({
  from: z
    .union(
      [
        z.literal('data'),
        z.strictObject({ connection: z.string().min(1).describe('a postgres or oracle connection to read sequences from') }),
        z.strictObject({
          file: z.string().min(1).describe('ora2pg SEQUENCE_VALUES (.sql), CSV or JSON, relative to the runbook'),
          format: z.enum(['ora2pg', 'csv', 'json']).optional().describe('default: by extension (.csv, .json, else ora2pg)'),
        }),
      ],
      { error: 'expected data, { connection: <name> } or { file: <path>, format: ora2pg | csv | json }' },
    )
    .describe('where the next values come from; `data`: max(column) + increment of each owning column on the target'),
  schemas: z.record(z.string(), z.string()).optional().describe('source schema -> target schema; when given, only these schemas are read and reset'),
  include: z.array(z.string().min(1)).optional().describe('target `schema.name` patterns (* and ?) to reset; default all'),
  exclude: z.array(z.string().min(1)).optional().describe('target `schema.name` patterns (* and ?) to leave alone'),
  missing: z.enum(['error', 'warn']).optional().describe('a sequence on one side only: block the step (error, the default) or list it and go on (warn)'),
  allowDecrease: z.boolean().optional().describe('allow moving a sequence backwards (default false: never)'),
  margin: integer.optional().describe('headroom added to every next value, in the sequence direction (default 0)'),
});

type Config = z.output<typeof config>;

const integerText = z.string().regex(/^-?\d+$/, 'an integer');

/** One sequence to move, as planned, with its state when planned. Values are strings: they are bigints. */
const changeSchema = z.object({
  sequence: z.string(),
  schema: z.string(),
  name: z.string(),
  lastValue: integerText,
  isCalled: z.boolean(),
  next: integerText,
});

type PlannedChange = z.output<typeof changeSchema>;

/** What apply executes: one setval per change, each only if the sequence is still where the plan saw it. */
const plannedSchema = z.object({ changes: z.array(changeSchema) });

/** What rollback restores: the previous state of every sequence the step moved. */
const beforeSchema = z.object({ sequences: z.array(changeSchema) }).nullable();

/**
 * Compare-and-set, one pass, one statement: each sequence is moved only if it
 * still is where the plan saw it. pg_sequence_last_value() is NULL until the
 * first nextval() after a setval(.., false) and the last value handed out
 * after that, so it changes as soon as anyone takes a value, on every
 * version. CASE evaluates the check before setval. Returns the sequences it
 * did NOT move (1-based positions).
 */
const SETVAL_SQL = `SELECT s.i::int AS i
  FROM unnest($1::regclass[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS s(seq, next_value, expected, i)
 WHERE CASE WHEN pg_sequence_last_value(s.seq) IS DISTINCT FROM s.expected THEN true
            ELSE setval(s.seq, s.next_value, false) IS NULL END`;

const RESTORE_SQL = `SELECT count(setval(s.seq, s.last_value, s.is_called)) AS restored
  FROM unnest($1::regclass[], $2::bigint[], $3::boolean[]) AS s(seq, last_value, is_called)`;

const setvalParams = (changes: readonly PlannedChange[]): Json[] => [
  changes.map((c) => c.sequence),
  changes.map((c) => c.next),
  changes.map((c) => (c.isCalled ? c.lastValue : null)),
];

const MAX_LISTED = 20;

function listSome(items: readonly string[]): string {
  const shown = items.slice(0, MAX_LISTED).join(', ');
  return items.length > MAX_LISTED ? `${shown} and ${items.length - MAX_LISTED} more` : shown;
}

interface Sourced {
  readonly values: readonly SourceValue[] | 'data';
  readonly foldCase: boolean;
  readonly description: string;
  readonly notes: readonly string[];
}

async function readSource(ctx: BaseContext, step: Step<Config>): Promise<Sourced> {
  const from = step.config.from;
  if (from === 'data') {
    return {
      values: 'data',
      foldCase: false,
      description: 'data: max(column) + increment of each owning column on the target',
      notes: ['from data: only sequences owned by a column (serial, identity) are considered; an empty table leaves its sequence as it is'],
    };
  }
  if ('file' in from) {
    const file = ctx.resolvePath(from.file);
    let text: string;
    try {
      text = readRegularFile(file, valueFileLimit()).toString('utf8');
    } catch (error) {
      if (error instanceof FileRefusal) throw new UsageError(`step "${step.id}": from.file: ${error.message}`);
      throw error;
    }
    const sha256 = createHash('sha256').update(text).digest('hex');
    const format = from.format ?? formatOf(file);
    return {
      values: parseSequenceFile(text, file, format),
      foldCase: false,
      description: `file ${file} (${format}, sha256 ${sha256})`,
      notes: format === 'ora2pg' ? ['each value in the file is taken as the next value to hand out; its START WITH / RESTART WITH is not executed'] : [],
    };
  }
  const resolved = ctx.resolved(from.connection);
  const mapped = Object.keys(step.config.schemas ?? {});
  if (resolved.kind === 'oracle') {
    return {
      values: await readOracleSequences(await ctx.oracle(from.connection), mapped),
      foldCase: true,
      description: `oracle ${resolved.identity.target}`,
      notes: ['oracle: the next value is LAST_NUMBER, which is past every cached value (it may skip up to CACHE values, never repeats one)'],
    };
  }
  const db = await ctx.session(from.connection);
  const sequences = (await readSequences(db)).filter((s) => mapped.length === 0 || mapped.includes(s.schema));
  const states = await readStates(db, sequences);
  return {
    values: sequences.map((s) => sourceNext(s, stateOf(states, s))),
    foldCase: false,
    description: `postgres ${resolved.identity.target}`,
    notes: [],
  };
}

function stateOf(states: ReadonlyMap<string, SequenceState>, seq: PgSequence): SequenceState {
  const state = states.get(seq.oid);
  if (state === undefined) throw new Error(`no state read for ${quoteQualified(seq.schema, seq.name)}`);
  return state;
}

/** Target sequences in scope, with their states. */
async function readTargets(db: Queryable, config: Config) {
  const wanted = inScope(config);
  const all = await readSequences(db);
  const sequences = all.filter((s) => wanted(s.schema, s.name));
  const unmatched = unmatchedPatterns(
    config.include,
    all.map((s) => `${s.schema}.${s.name}`),
  );
  return { sequences, states: await readStates(db, sequences), unmatched };
}

interface Row {
  readonly sequence: string;
  readonly source: string | null;
  readonly evidence: string | null;
  readonly current: string | null;
  readonly sourceNext: string | null;
  readonly next: string | null;
  readonly action: SequenceAction;
  readonly reason?: string;
}

const str = (v: bigint | null | undefined): string | null => (v === null || v === undefined ? null : v.toString());

function rowFor(pair: Pair, states: ReadonlyMap<string, SequenceState>, config: Config): { row: Row; change?: PlannedChange } {
  const sequence = displayName(pair.schema, pair.name);
  const source = pair.source ? displayName(pair.source.schema, pair.source.name) : null;
  const evidence = pair.source?.evidence ?? null;
  const t = pair.target;
  if (t === undefined) {
    return { row: { sequence, source, evidence, current: null, sourceNext: str(pair.source?.next), next: null, action: 'missing-on-target' } };
  }
  const state = stateOf(states, t);
  const current = nextValue(t, state);
  if (pair.source === undefined) {
    return { row: { sequence, source, evidence, current: str(current), sourceNext: null, next: str(current), action: 'missing-on-source' } };
  }
  if (pair.conflict !== undefined) {
    return {
      row: { sequence, source, evidence, current: str(current), sourceNext: str(pair.source.next), next: null, action: 'out-of-range', reason: pair.conflict },
    };
  }
  const decision = decide(t, current, pair.source.next, {
    allowDecrease: config.allowDecrease === true,
    margin: BigInt(config.margin ?? 0),
  });
  const row: Row = {
    sequence,
    source,
    evidence,
    current: str(current),
    sourceNext: str(pair.source.next),
    next: str(decision.next),
    action: decision.action,
    ...(decision.reason !== undefined ? { reason: decision.reason } : {}),
  };
  if ((decision.action !== 'advance' && decision.action !== 'decrease') || decision.next === null) return { row };
  return {
    row,
    change: {
      sequence: quoteQualified(t.schema, t.name),
      schema: t.schema,
      name: t.name,
      lastValue: state.lastValue.toString(),
      isCalled: state.isCalled,
      next: decision.next.toString(),
    },
  };
}

/** Each planned change whose new next value its owning column already holds (by `extremes`, read for `owned`), as a blocker. */
function collisionsOf(owned: readonly PgSequence[], extremes: ReadonlyMap<string, bigint | null>, changes: readonly PlannedChange[]): string[] {
  const moving = new Map(changes.map((c) => [c.sequence, c]));
  return owned.flatMap((seq) => {
    const extreme = extremes.get(seq.oid);
    const change = moving.get(quoteQualified(seq.schema, seq.name));
    if (extreme === undefined || extreme === null || change === undefined || seq.owner === undefined) return [];
    const next = BigInt(change.next);
    if (seq.increment > 0n ? next > extreme : next < extreme) return [];
    return [
      `${displayName(seq.schema, seq.name)}: the new next value ${next} collides with ${displayName(seq.owner.schema, seq.owner.table)}.${seq.owner.column} (${seq.increment > 0n ? 'max' : 'min'} ${extreme}); the source is behind this data (rows written with explicit ids?): raise it, give a margin, or use from: data`,
    ];
  });
}

/** For `from: data`, each owned sequence's next value comes from its column. */
async function dataPairs(db: Queryable, sequences: readonly PgSequence[]): Promise<Pair[]> {
  const owned = sequences.filter((s) => s.owner !== undefined);
  const extremes = await readColumnExtremes(db, owned);
  return owned.flatMap((s): Pair[] => {
    const extreme = extremes.get(s.oid) ?? null;
    if (extreme === null) return [];
    const owner = s.owner;
    const where = owner ? `${displayName(owner.schema, owner.table)}.${owner.column}` : '';
    const source: SourceValue = {
      schema: s.schema,
      name: s.name,
      next: nextAfterData(s, extreme),
      evidence: `${s.increment > 0n ? 'max' : 'min'}(${where})=${extreme}`,
    };
    return [{ target: s, source, schema: s.schema, name: s.name }];
  });
}

const COLUMNS: PlanTable['columns'] = [
  { key: 'sequence', title: 'sequence' },
  { key: 'current', title: 'target next', align: 'right' },
  { key: 'sourceNext', title: 'source next', align: 'right' },
  { key: 'next', title: 'new next', align: 'right' },
  { key: 'action', title: 'action' },
  { key: 'source', title: 'source sequence' },
];

export const sequenceResetStep = defineStep({
  kind: 'sequence-reset',
  summary: 'Set every target sequence to continue exactly where the source left off (setval, set-based), reversibly',
  config,
  connection: { required: true, kinds: ['postgres'] },
  connections: (c) => (typeof c.from === 'object' && 'connection' in c.from ? [c.from.connection] : []),
  files: (c) => (typeof c.from === 'object' && 'file' in c.from ? [{ path: ['from', 'file'], file: c.from.file }] : []),
  // setval is not transactional, so the step is not either; see recordBefore in apply.
  effects: () => 'external',
  planned: plannedSchema,
  before: beforeSchema,
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),

  async check(ctx, step) {
    const db = await ctx.session(step.connection);
    // The plan reads each sequence's state (SELECT or USAGE), apply sets it (UPDATE), verify reads the owning column's max (SELECT).
    const { rows } = await db.query<{
      total: number;
      denied: number;
      example: string | null;
      unread: number;
      unreadExample: string | null;
      columns: number;
      hidden: number;
      hiddenExample: string | null;
    }>(
      `WITH seq AS (
         SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name,
                has_sequence_privilege(c.oid, 'UPDATE') AS can_set,
                has_sequence_privilege(c.oid, 'SELECT') OR has_sequence_privilege(c.oid, 'USAGE') AS can_read
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       ), owner AS (
         SELECT d.refobjid AS tab, a.attnum AS col, format('%I.%I.%I', tn.nspname, t.relname, a.attname) AS name
           FROM seq JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = seq.oid AND d.refclassid = 'pg_class'::regclass
                                      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
           JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       )
       SELECT (SELECT count(*) FROM seq)::int AS total,
              (SELECT count(*) FROM seq WHERE NOT can_set)::int AS denied,
              (SELECT min(name) FROM seq WHERE NOT can_set) AS example,
              (SELECT count(*) FROM seq WHERE NOT can_read)::int AS unread,
              (SELECT min(name) FROM seq WHERE NOT can_read) AS "unreadExample",
              (SELECT count(*) FROM owner)::int AS columns,
              (SELECT count(*) FROM owner WHERE NOT has_column_privilege(tab, col, 'SELECT'))::int AS hidden,
              (SELECT min(name) FROM owner WHERE NOT has_column_privilege(tab, col, 'SELECT')) AS "hiddenExample"`,
    );
    const facts = rows[0] ?? { total: 0, denied: 0, example: null, unread: 0, unreadExample: null, columns: 0, hidden: 0, hiddenExample: null };
    return [
      facts.denied === 0
        ? { severity: 'ok', check: 'UPDATE on sequences', message: `all ${facts.total} sequences` }
        : {
            severity: 'error',
            check: 'UPDATE on sequences',
            message: `${facts.denied} of ${facts.total} sequences cannot be set by this role (e.g. ${facts.example})`,
            fix: "run as the sequences' owner or a superuser, or GRANT UPDATE ON ALL SEQUENCES IN SCHEMA ... TO the role",
          },
      facts.unread === 0
        ? { severity: 'ok', check: 'SELECT on sequences', message: `all ${facts.total} sequences (the plan reads their state)` }
        : {
            severity: 'error',
            check: 'SELECT on sequences',
            message: `${facts.unread} of ${facts.total} sequences cannot be read by this role (e.g. ${facts.unreadExample}); the plan reads each one's state`,
            fix: 'GRANT SELECT ON ALL SEQUENCES IN SCHEMA ... TO the role',
          },
      facts.hidden === 0
        ? { severity: 'ok', check: 'SELECT on owning columns', message: `all ${facts.columns} columns (verify reads their max)` }
        : {
            severity: 'error',
            check: 'SELECT on owning columns',
            message: `${facts.hidden} of ${facts.columns} columns that own a sequence cannot be read by this role (e.g. ${facts.hiddenExample}); verify proves no next value collides with its column's data`,
            fix: 'GRANT SELECT ON those tables TO the role',
          },
    ];
  },

  async plan(ctx, step) {
    // Both sides at once: each is a connection, a catalog query and every sequence's state, on its own server.
    const [firstRead, { sequences, states, unmatched }] = await both(
      readSource(ctx, step),
      ctx.session(step.connection).then((target) => readTargets(target, step.config)),
    );
    let source = firstRead;
    const db = await ctx.session(step.connection);
    const decide = async (from: Sourced) => {
      const pairs = from.values === 'data' ? await dataPairs(db, sequences) : matchSequences(sequences, from.values, step.config, { foldCase: from.foldCase });
      const rows: Row[] = [];
      const changes: PlannedChange[] = [];
      for (const pair of pairs) {
        const { row, change } = rowFor(pair, states, step.config);
        rows.push(row);
        if (change) changes.push(change);
      }
      return { rows, changes };
    };
    let { rows, changes } = await decide(source);
    // What verify proves after the fact, known before: a new next value its own column already holds (the
    // source sequence is behind rows written with explicit ids) would fail in the window; say it in the plan.
    let collisions: string[] = [];
    if (source.values !== 'data') {
      const moving = new Set(changes.map((c) => c.sequence));
      const owned = sequences.filter((s) => s.owner !== undefined && moving.has(quoteQualified(s.schema, s.name)));
      const extremes = owned.length === 0 ? new Map<string, bigint | null>() : await readColumnExtremes(db, owned);
      collisions = collisionsOf(owned, extremes, changes);
      if (collisions.length > 0 && typeof step.config.from === 'object' && 'connection' in step.config.from) {
        // A source still in use moves on while it is read: rows it wrote after that read may have reached this
        // target since (logical replication) and hold ids past the value read. Read the source again, after the
        // columns: every row in them was written before this read, so what still collides is real.
        source = await readSource(ctx, step);
        ({ rows, changes } = await decide(source));
        collisions = collisionsOf(owned, extremes, changes);
      }
    }
    const totals: Record<string, number> = {};
    for (const row of rows) totals[row.action] = (totals[row.action] ?? 0) + 1;

    const missing = rows.filter((r) => r.action === 'missing-on-target' || r.action === 'missing-on-source');
    const missingText = (r: Row) =>
      r.action === 'missing-on-target' ? `${r.source ?? r.sequence} has no target sequence (looked for ${r.sequence})` : `${r.sequence} has no source value`;
    const blockers = [
      ...rows.filter((r) => r.action === 'out-of-range').map((r) => `${r.sequence}: ${r.reason ?? 'out of range'}`),
      ...collisions,
      ...unmatchedBlockers(unmatched, 'sequence'),
      ...(step.config.missing === 'warn' ? [] : missing.map(missingText)),
    ];
    const decreases = rows.filter((r) => r.action === 'kept-ahead');
    const notes = [
      `source: ${source.description}`,
      ...source.notes,
      ...(decreases.length > 0
        ? [`${decreases.length} sequence(s) already ahead of the source left as they are: ${listSome(decreases.map((r) => r.sequence))}`]
        : []),
      ...(step.config.missing === 'warn' && missing.length > 0 ? missing.map((r) => `missing (warn): ${missingText(r)}`) : []),
    ];
    const actions: Action[] =
      changes.length === 0 ? [] : [{ type: 'sql', connection: step.connection, sql: SETVAL_SQL, params: setvalParams(changes), transaction: true }];
    return {
      actions,
      planned: { changes },
      tables: [
        {
          title: 'sequences (new next = the value the first nextval() returns after this step)',
          columns: COLUMNS,
          rows: rows.map((r) => ({ ...r })),
          footer:
            Object.entries(totals)
              .map(([action, n]) => `${action}: ${n}`)
              .join(', ') || 'no sequences in scope',
        },
      ],
      notes,
      ...(blockers.length > 0 ? { blockers } : {}),
    };
  },

  async apply(ctx, step, planned) {
    const { changes } = planned;
    const prior = ctx.priorBefore?.sequences ?? [];
    const priorBy = new Map(prior.map((c) => [c.sequence, c]));
    if (changes.length === 0) return { before: { sequences: prior } };
    const db = await ctx.session(step.connection);

    const merged = new Map(prior.map((c) => [c.sequence, c]));
    for (const c of changes) merged.set(c.sequence, { ...c, ...pick(priorBy.get(c.sequence)) });
    const recorded = { sequences: [...merged.values()] };
    ctx.recordBefore(recorded);

    const { rows: skipped } = await db.query<{ i: number }>(SETVAL_SQL, setvalParams(changes));
    // A sequence an earlier attempt of this step already moved is ours, not
    // drift; any other that was not where the plan saw it handed out values
    // since: it was left alone, and a stale before-state must not be kept
    // for it, or rollback would hand those values out again.
    const foreign = skipped.flatMap(({ i }) => {
      const c = changes[i - 1];
      return c === undefined || priorBy.has(c.sequence) ? [] : [c];
    });
    if (foreign.length > 0) {
      for (const c of foreign) merged.delete(c.sequence);
      ctx.recordBefore({ sequences: [...merged.values()] });
      throw new RefusedError(
        `${foreign.length} sequence(s) handed out values since the plan read them (are writes frozen?) and were left alone: ${listSome(
          foreign.map((c) => displayName(c.schema, c.name)),
        )}. The other ${changes.length - foreign.length} moved; rollback restores them, or run the step again once writes are frozen.`,
      );
    }
    return { before: recorded, output: `moved ${changes.length} sequence(s)` };
  },

  async verify(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const { changes } = planned;
    const { sequences, states } = await readTargets(db, step.config);
    const byName = new Map(sequences.map((s) => [quoteQualified(s.schema, s.name), s]));
    const problems: string[] = [];
    for (const c of changes) {
      const seq = byName.get(c.sequence);
      const next = seq && nextValue(seq, stateOf(states, seq));
      if (next?.toString() !== c.next) problems.push(`${displayName(c.schema, c.name)}: next value is ${next ?? 'none'}, planned ${c.next}`);
    }
    // The proof that matters: no owned sequence can hand out a value its column already holds.
    const extremes = await readColumnExtremes(db, sequences);
    for (const seq of sequences) {
      const extreme = extremes.get(seq.oid);
      if (extreme === undefined || extreme === null || seq.owner === undefined) continue;
      const next = nextValue(seq, stateOf(states, seq));
      const collides = next !== null && (seq.increment > 0n ? next <= extreme : next >= extreme);
      if (collides) {
        problems.push(
          `${displayName(seq.schema, seq.name)}: next value ${next} collides with ${displayName(seq.owner.schema, seq.owner.table)}.${seq.owner.column} (${seq.increment > 0n ? 'max' : 'min'} ${extreme})`,
        );
      }
    }
    if (problems.length > 0) throw new VerificationError(`${problems.length} sequence problem(s): ${listSome(problems)}`);
  },

  async planRollback(ctx, step, before, { force }) {
    const entries = before?.sequences ?? [];
    // As the rollback would, with or without --force; without it the table says which --force would restore too.
    const undo = await undoOf(await ctx.session(step.connection), entries, force);
    // What --force restores though values were handed out since: the same sequences a rollback without it refuses.
    const forced = force ? new Set((await undoOf(await ctx.session(step.connection), entries, false)).refused.map((r) => r.entry.sequence)) : new Set<string>();
    const restoring = new Set(undo.restore.map((e) => e.sequence));
    const refusing = new Set(undo.refused.map((r) => r.entry.sequence));
    const gone = new Set(undo.gone.map((e) => e.sequence));
    return {
      actions: undo.restore.length > 0 ? [{ type: 'sql', connection: step.connection, sql: RESTORE_SQL, params: restoreParams(undo.restore) }] : [],
      tables: [
        {
          title: 'sequences (next = the value the first nextval() returns)',
          columns: [
            { key: 'sequence', title: 'sequence' },
            { key: 'now', title: 'next now', align: 'right' },
            { key: 'was', title: 'next before the step', align: 'right' },
            { key: 'action', title: 'rollback' },
          ],
          rows: entries.map((e) => ({
            sequence: displayName(e.schema, e.name),
            now: undo.now.get(e.sequence) ?? null,
            was: e.isCalled ? `after ${e.lastValue}` : e.lastValue,
            action: forced.has(e.sequence)
              ? 'restore (--force: values handed out since the step will be handed out again)'
              : restoring.has(e.sequence)
                ? 'restore'
                : refusing.has(e.sequence)
                  ? 'refuse: values handed out since the step (--force restores)'
                  : gone.has(e.sequence)
                    ? 'refuse: no longer exists'
                    : 'already restored',
          })),
          footer: `${undo.restore.length} to restore, ${undo.refused.length + undo.gone.length} refused, ${entries.length - undo.restore.length - undo.refused.length - undo.gone.length} already restored`,
        },
      ],
      ...(refusing.size + gone.size > 0 ? { blockers: refusals(undo) } : {}),
    };
  },

  async rollback(ctx, step, before) {
    const entries = before?.sequences ?? [];
    if (entries.length === 0) return;
    const db = await ctx.session(step.connection);
    const { restore, refused, gone } = await undoOf(db, entries, ctx.force);
    if (restore.length > 0) await db.query(RESTORE_SQL, restoreParams(restore));
    if (refused.length > 0 || gone.length > 0) {
      throw new RefusedError(refusals({ refused, gone }).join('\n') + (restore.length > 0 ? `\n${restore.length} other sequence(s) were restored.` : ''));
    }
  },
});

/**
 * What a rollback does with each recorded sequence, from its state now:
 * restore it (untouched since the step, or `force`), leave it (already
 * restored), or refuse (it handed out values since, or it is gone).
 */
async function undoOf(db: Queryable, entries: readonly PlannedChange[], force: boolean) {
  const catalog = new Map((await readSequences(db)).map((s) => [quoteQualified(s.schema, s.name), s]));
  const present = entries.flatMap((e) => {
    const seq = catalog.get(e.sequence);
    return seq ? [{ entry: e, seq }] : [];
  });
  const states = await readStates(
    db,
    present.map((p) => p.seq),
  );
  const now = new Map<string, string | null>();
  const restore: PlannedChange[] = [];
  const refused: { entry: PlannedChange; why: string }[] = [];
  for (const { entry, seq } of present) {
    const state = stateOf(states, seq);
    now.set(entry.sequence, str(nextValue(seq, state)));
    if (state.lastValue === BigInt(entry.lastValue) && state.isCalled === entry.isCalled) continue; // already restored
    const untouched = !state.isCalled && state.lastValue.toString() === entry.next;
    if (untouched || force) restore.push(entry);
    else
      refused.push({
        entry,
        why: `${displayName(entry.schema, entry.name)} (now last_value=${state.lastValue} is_called=${state.isCalled}; the step set next=${entry.next})`,
      });
  }
  return { restore, refused, gone: entries.filter((e) => !catalog.has(e.sequence)), now };
}

/** Why a rollback leaves sequences as they are: what a person must check first. */
function refusals({ refused, gone }: { refused: readonly { why: string }[]; gone: readonly PlannedChange[] }): string[] {
  return [
    ...(refused.length > 0
      ? [
          `${refused.length} sequence(s) handed out values after the step ran; restoring them would hand those values out again: ${listSome(refused.map((r) => r.why))}. Check, then roll back with --force to restore anyway.`,
        ]
      : []),
    ...gone.map((e) => `${displayName(e.schema, e.name)} no longer exists`),
  ];
}

const restoreParams = (entries: readonly PlannedChange[]): Json[] => [
  entries.map((e) => e.sequence),
  entries.map((e) => e.lastValue),
  entries.map((e) => e.isCalled),
];

/** The original state from an earlier attempt, which wins over a later read. */
function pick(c: PlannedChange | undefined): Partial<PlannedChange> {
  return c === undefined ? {} : { lastValue: c.lastValue, isCalled: c.isCalled };
}
