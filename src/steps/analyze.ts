/**
 * `analyze`: planner statistics back fast after a migration or upgrade. Only
 * what is missing (`onlyMissing`), in stages like `vacuumdb
 * --analyze-in-stages` (statistics target 1, 10, then the default), in
 * parallel sessions largest first, with live progress from
 * pg_stat_progress_analyze; and on a PostgreSQL 18 target, copied from the
 * source (`copyFrom`) instead of sampled. Partitioned parents, which
 * autovacuum never analyzes, come with their partitions: on 18 as `ANALYZE
 * ONLY parent`, which does not sample the partitions' own statistics again;
 * before 18 `ANALYZE parent`, which also re-analyzes every partition, so
 * those partitions are not analyzed twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { VerificationError } from '../errors.js';
import { defineStep, type Action, type BaseContext, type ConnectedStep } from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { quoteQualified } from '../db/quote.js';
import { CLEAR_COLUMNS_SQL, CLEAR_RELATIONS_SQL, RESTORE_SQL, copyStatistics, describeRelations, type RelationShape } from '../analyze/copy.js';
import { qualifiedName, readRelations, statisticsServer, type Relation } from '../analyze/relations.js';
import { globMatcher, unmatchedBlockers, unmatchedPatterns } from '../runbook/patterns.js';

const config = z.object({
  include: z.array(z.string().min(1)).optional().describe('`schema.table` patterns (* and ?); default all'),
  exclude: z.array(z.string().min(1)).optional().describe('`schema.table` patterns to leave out'),
  materializedViews: z.boolean().optional().describe('also analyze materialized views (default false)'),
  onlyMissing: z.boolean().optional().describe('analyze only relations that lack statistics (default false)'),
  stages: z.boolean().optional().describe('three passes: statistics target 1, 10, then the default (default false)'),
  jobs: z.number().int().min(1).max(32).optional().describe('parallel sessions (default 1)'),
  copyFrom: z.string().min(1).optional().describe('a PostgreSQL connection to copy statistics from (target 18+); what cannot be copied is analyzed'),
});

type Config = z.output<typeof config>;

/** One relation to analyze: the statement, and its size for ordering. */
interface Job {
  readonly relation: string;
  readonly sql: string;
  readonly bytes: number;
}

const relationRef = z.object({ schema: z.string(), name: z.string() });

/**
 * What apply executes: the ANALYZE statements in order (largest relation
 * first when planned; sizes themselves stay in the plan's table, they move
 * all the time), the statistics targets of each pass, the relations whose
 * statistics are copied, and what verify checks.
 */
const plannedSchema = z.object({
  jobs: z.array(z.object({ relation: z.string(), sql: z.string() })),
  passes: z.array(z.number().nullable()),
  copy: z.array(relationRef),
  selected: z.array(z.string()),
});

const beforeSchema = z
  .object({
    copied: z.object({
      relations: z.array(relationRef),
      columns: z.array(z.object({ schema: z.string(), name: z.string(), column: z.string(), inherited: z.boolean() })),
    }),
  })
  .nullable();

interface Planned {
  readonly jobs: readonly Job[];
  readonly passes: readonly (number | null)[];
  readonly copy: readonly { readonly schema: string; readonly name: string }[];
  /** Every selected relation, checked by verify. */
  readonly selected: readonly string[];
}

const PROGRESS_INTERVAL_MS = 1_000;
const STAGES = [1, 10, null] as const;

async function serverVersion(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
  return rows[0]?.v ?? 0;
}

/** Selected relations, with the partitioned parents of selected partitions (all levels). */
function select(all: readonly Relation[], c: Config): Relation[] {
  const include = c.include?.length ? globMatcher(c.include) : () => true;
  const exclude = c.exclude?.length ? globMatcher(c.exclude) : () => false;
  const chosen = new Set(all.filter((r) => (r.kind !== 'm' || c.materializedViews === true) && include(qualifiedName(r)) && !exclude(qualifiedName(r))));
  const byName = new Map(all.map((r) => [qualifiedName(r), r]));
  for (const r of [...chosen]) {
    for (let p = r.parent && byName.get(qualifiedName(r.parent)); p !== undefined && p !== null; p = p.parent && byName.get(qualifiedName(p.parent))) {
      chosen.add(p);
    }
  }
  return all.filter((r) => chosen.has(r));
}

/** Why a relation's statistics cannot be copied from the source, or undefined if they can. */
function uncopyable(r: Relation, onSource: RelationShape | undefined, here: RelationShape | undefined): string | undefined {
  if (onSource === undefined) return 'not on the source';
  if (onSource.reltuples < 0) return 'never analyzed on the source';
  // Whether or not they lack statistics yet: a relation never analyzed lists only that.
  if (r.unrestorable) return 'expression index or extended statistics (PostgreSQL 18 cannot restore them)';
  for (const [column, type] of here?.columns ?? []) {
    const other = onSource.columns.get(column);
    if (other === undefined) return `column ${column} is not on the source`;
    if (other !== type) return `column ${column} is ${other} on the source, ${type} here`;
  }
  return undefined;
}

async function planWork(ctx: BaseContext, step: ConnectedStep<Config>) {
  const c = step.config;
  // The source connects while the target's catalog is read.
  const opening = c.copyFrom !== undefined ? ctx.session(c.copyFrom) : undefined;
  opening?.catch(() => {});
  const db = await ctx.session(step.connection);
  const server = await statisticsServer(db);
  const version = server.version;
  // onlyMissing reads the sizes only of what it will analyze: opening every relation for its size costs more than the rest of the query.
  const all = await readRelations(db, { server, sizes: c.onlyMissing === true ? 'missing' : 'all' });
  const selected = select(all, c);
  const unmatched = unmatchedPatterns(c.include, all.map(qualifiedName));
  let todo = c.onlyMissing === true ? selected.filter((r) => r.missing.length > 0) : selected;
  const notes: string[] = [];
  const reasons = new Map<string, string>();

  const copy: Relation[] = [];
  if (opening !== undefined) {
    if (version < 180000) {
      notes.push(`copyFrom needs PostgreSQL 18 or later on the target (this is ${Math.floor(version / 10000)}): everything is analyzed instead`);
    } else {
      // Only into relations without statistics: rollback can then clear exactly what it wrote.
      const candidates = todo.filter((x) => x.missing.length > 0);
      const source = await opening;
      // Both sides at once, each one statement for just these relations.
      const [onSource, here] = await Promise.all([describeRelations(source, candidates), describeRelations(db, candidates)]);
      for (const r of candidates) {
        const why = uncopyable(r, onSource.get(qualifiedName(r)), here.get(qualifiedName(r)));
        if (why === undefined) copy.push(r);
        else reasons.set(qualifiedName(r), `not copied (${why}): analyzed`);
      }
      todo = todo.filter((r) => !copy.includes(r));
    }
  }
  // Before 18, ANALYZE of a parent re-analyzes its partitions: do not do them twice.
  if (version < 180000) {
    const parents = new Set(todo.filter((r) => r.kind === 'p').map(qualifiedName));
    const covered = todo.filter((r) => r.parent !== null && parents.has(qualifiedName(r.parent)));
    if (covered.length > 0)
      notes.push(`before PostgreSQL 18, ANALYZE of a partitioned table also analyzes its partitions: ${covered.length} partition(s) are covered that way`);
    todo = todo.filter((r) => !covered.includes(r));
  }
  const jobs = batch(todo, version);
  const planned: Planned = {
    jobs,
    passes: c.stages === true ? [...STAGES] : [null],
    copy: copy.map((r) => ({ schema: r.schema, name: r.name })),
    selected: selected.map(qualifiedName),
  };
  return { planned, selected, copy, reasons, notes, unmatched };
}

/** Relations smaller than this are analyzed several to a statement. */
const SMALL_BYTES = 1024 ** 2;
const SMALL_PER_STATEMENT = 25;

/**
 * One statement per large relation; small ones share a statement
 * (`ANALYZE a, b, c`): outside a transaction block each relation still gets
 * its own transaction, and a round trip per tiny table would cost more than
 * analyzing it.
 */
function batch(todo: readonly Relation[], version: number): Job[] {
  const name = (r: Relation) => `${r.kind === 'p' && version >= 180000 ? 'ONLY ' : ''}${quoteQualified(r.schema, r.name)}`;
  const jobs: Job[] = [];
  let small: Relation[] = [];
  const flush = () => {
    if (small.length === 0) return;
    jobs.push({
      relation: small.map(qualifiedName).join(', '),
      sql: `ANALYZE ${small.map(name).join(', ')}`,
      bytes: small.reduce((s, r) => s + (r.bytes ?? 0), 0),
    });
    small = [];
  };
  for (const r of todo) {
    if ((r.bytes ?? 0) >= SMALL_BYTES || r.kind === 'p') {
      jobs.push({ relation: qualifiedName(r), sql: `ANALYZE ${name(r)}`, bytes: r.bytes ?? 0 });
      continue;
    }
    small.push(r);
    if (small.length === SMALL_PER_STATEMENT) flush();
  }
  flush();
  return jobs;
}

const setTarget = (t: number | null) => (t === null ? 'RESET default_statistics_target' : `SET default_statistics_target = ${t}`);

/** Live progress of every ANALYZE of this database, until `done` resolves. */
async function watch(ctx: BaseContext, db: Queryable, label: () => string, done: Promise<unknown>): Promise<void> {
  let finished = false;
  const stop = () => {
    finished = true;
  };
  done.then(stop, stop);
  // pg_stat_progress_analyze exists from 13; before, the run shows no live progress.
  if ((await serverVersion(db)) < 130000) return;
  // finished is set by the caller's code while this loop awaits.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  while (!finished) {
    const { rows } = await db.query<{ rel: string; phase: string; done: string; total: string }>(
      `SELECT p.relid::regclass::text AS rel, p.phase, p.sample_blks_scanned::text AS done, p.sample_blks_total::text AS total
         FROM pg_stat_progress_analyze p WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    if (rows.length > 0) ctx.progress(`${label()}: ${rows.map((r) => `${r.rel} ${r.done}/${r.total} blocks (${r.phase})`).join('; ')}`);
    await Promise.race([sleep(PROGRESS_INTERVAL_MS), done.catch(() => undefined)]);
  }
}

export const analyzeStep = defineStep({
  kind: 'analyze',
  summary: 'Give the planner statistics: only what is missing, in stages, in parallel, or copied from the source (18+)',
  config,
  connection: { required: true, kinds: ['postgres'] },
  connections: (c) => (c.copyFrom !== undefined ? [c.copyFrom] : []),
  validate(c, runbook) {
    return c.copyFrom !== undefined && runbook.connectionKind(c.copyFrom) === 'oracle'
      ? [{ path: ['copyFrom'], message: 'statistics can be copied from PostgreSQL only' }]
      : [];
  },
  effects: () => 'external',
  planned: plannedSchema,
  before: beforeSchema,
  idempotent: true,
  reversibility: (c) => (c.copyFrom !== undefined ? { kind: 'reversible' } : { kind: 'nothing-to-undo' }),

  async check(ctx, step) {
    // Without the privilege, ANALYZE only warns and skips the table: the planner would go without statistics, silently.
    const db = await ctx.session(step.connection);
    const { rows } = await db.query<{ relation: string; allowed: boolean }>(
      `SELECT format('%s.%s', n.nspname, c.relname) AS relation,
         (r.rolsuper OR pg_has_role(c.relowner, 'USAGE')
           OR (c.relisshared IS FALSE AND pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') AND current_setting('server_version_num')::int < 170000)
           OR (current_setting('server_version_num')::int >= 170000 AND has_table_privilege(c.oid, 'MAINTAIN'))) AS allowed
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, pg_roles r
       WHERE r.rolname = current_user AND c.relkind IN ('r', 'p', 'm')
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`,
    );
    const include = step.config.include?.length ? globMatcher(step.config.include) : () => true;
    const exclude = step.config.exclude?.length ? globMatcher(step.config.exclude) : () => false;
    const inScope = rows.filter((r) => include(r.relation) && !exclude(r.relation));
    const denied = inScope.filter((r) => !r.allowed);
    return [
      denied.length === 0
        ? { severity: 'ok', check: 'ANALYZE privilege', message: `all ${inScope.length} relations` }
        : {
            severity: 'error',
            check: 'ANALYZE privilege',
            message: `${denied.length} of ${inScope.length} relations cannot be analyzed by this role (e.g. ${denied[0]?.relation}); ANALYZE would skip them with only a warning`,
            fix: 'run as the owner or a superuser, or on PostgreSQL 17+ GRANT MAINTAIN ON those tables (or pg_maintain) to the role',
          },
    ];
  },

  async plan(ctx, step) {
    const connection = step.connection;
    const { planned, selected, copy, reasons, notes, unmatched } = await planWork(ctx, step);
    const analyzed = new Set(planned.jobs.flatMap((j) => j.relation.split(', ')));
    const copied = new Set(copy.map(qualifiedName));
    const actions: Action[] = [];
    if (copy.length > 0) {
      actions.push({ type: 'sql', connection, sql: RESTORE_SQL, params: [copy.map((r) => r.schema), copy.map((r) => r.name)] });
      notes.push(
        `copy: the statistics values are read from ${step.config.copyFrom ?? '?'} when the step runs and bound to this statement, once per session (${step.config.jobs ?? 1}), each for its share of the relations`,
      );
    }
    for (const pass of planned.passes) {
      if (planned.jobs.length === 0) break;
      actions.push({ type: 'sql', connection, sql: setTarget(pass), transaction: false });
      for (const job of planned.jobs) actions.push({ type: 'sql', connection, sql: job.sql, transaction: false });
    }
    const jobs = step.config.jobs ?? 1;
    return {
      actions,
      planned: {
        jobs: [...planned.jobs].sort((a, b) => b.bytes - a.bytes).map((j) => ({ relation: j.relation, sql: j.sql })),
        passes: [...planned.passes],
        copy: copy.map((r) => ({ schema: r.schema, name: r.name })),
        selected: [...planned.selected],
      },
      tables: [
        {
          title: 'relations',
          columns: [
            { key: 'relation', title: 'relation' },
            { key: 'kind', title: 'kind' },
            { key: 'size', title: 'size', align: 'right' },
            { key: 'action', title: 'action' },
            { key: 'missing', title: 'missing' },
          ],
          rows: selected.map((r) => ({
            relation: qualifiedName(r),
            kind: r.kind === 'p' ? 'partitioned' : r.kind === 'm' ? 'matview' : r.parent !== null ? 'partition' : 'table',
            size: r.bytes,
            action: copied.has(qualifiedName(r)) ? 'copy' : analyzed.has(qualifiedName(r)) ? (reasons.get(qualifiedName(r)) ?? 'analyze') : 'nothing to do',
            missing: r.missing.join('; '),
          })),
          footer: `${copy.length} to copy, ${analyzed.size} to analyze of ${selected.length} selected`,
        },
      ],
      notes: [
        ...notes,
        ...(planned.jobs.length > 0
          ? [
              `${planned.passes.length === 3 ? '3 passes (statistics target 1, 10, then the default)' : '1 pass'}, ${jobs} session(s), largest first; ${(planned.jobs.reduce((s, j) => s + j.bytes, 0) / 2 ** 20).toFixed(1)} MB of relations`,
            ]
          : ['nothing to analyze']),
      ],
      ...(unmatched.length > 0 ? { blockers: unmatchedBlockers(unmatched, 'relation') } : {}),
    };
  },

  async apply(ctx, step, planned) {
    const connection = step.connection;
    let output = '';
    let recorded: z.output<typeof beforeSchema> = null;
    if (planned.copy.length > 0 && step.config.copyFrom !== undefined) {
      const from = step.config.copyFrom;
      const workers = Math.min(step.config.jobs ?? 1, planned.copy.length);
      const copied = await copyStatistics({
        workers,
        sessions: async (worker) => {
          const [source, target] = await Promise.all([ctx.session(from, worker), ctx.session(connection, worker)]);
          return { source, target };
        },
        relations: planned.copy,
        record: (written) => {
          recorded = { copied: { relations: [...written.relations], columns: [...written.columns] } };
          ctx.recordBefore(recorded);
        },
      });
      output += `copied statistics of ${copied.relations} relation(s), ${copied.columns} column(s) in ${workers} session(s); ${copied.failed} with warnings. `;
    }
    // Nothing to analyze (all copied, or onlyMissing found nothing): no session, no statement.
    // recorded is set by the copy's record callback, which the narrowing here cannot see.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (planned.jobs.length === 0) return { before: recorded ?? ctx.priorBefore ?? null, output: `${output}analyzed 0 relation(s)` };

    const jobs = Math.max(1, Math.min(step.config.jobs ?? 1, planned.jobs.length));
    const order = planned.jobs;
    let pass = 0;
    for (const statisticsTarget of planned.passes) {
      pass++;
      const queue = [...order];
      let done = 0;
      const label = () =>
        `pass ${pass}/${planned.passes.length}${statisticsTarget !== null ? ` (target ${statisticsTarget})` : ''}, ${done}/${order.length} done`;
      const work = Promise.all(
        Array.from({ length: jobs }, async (_, worker) => {
          const session = await ctx.session(connection, worker);
          await session.query(setTarget(statisticsTarget));
          for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
            await session.query(job.sql);
            done++;
          }
        }),
      );
      await Promise.all([work, watch(ctx, await ctx.session(connection, jobs), label, work)]);
    }
    output += `analyzed ${order.flatMap((j) => j.relation.split(', ')).length} relation(s) in ${planned.passes.length} pass(es) with ${jobs} session(s)`;
    // A re-run after a crash copies nothing new (the statistics are there): keep the first record.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the record callback
    return { before: recorded ?? ctx.priorBefore ?? null, output };
  },

  async verify(ctx, step, planned) {
    const wanted = new Set(planned.selected);
    const lacking = (await readRelations(await ctx.session(step.connection), { sizes: 'none' })).filter(
      (r) => wanted.has(qualifiedName(r)) && r.missing.length > 0,
    );
    if (lacking.length > 0) {
      throw new VerificationError(`still without statistics: ${lacking.map((r) => `${qualifiedName(r)} (${r.missing.join('; ')})`).join(', ')}`);
    }
  },

  async rollback(ctx, step, before) {
    const copied = before?.copied;
    if (copied === undefined) return;
    const db = await ctx.session(step.connection);
    await db.query(CLEAR_COLUMNS_SQL, [
      copied.columns.map((c) => c.schema),
      copied.columns.map((c) => c.name),
      copied.columns.map((c) => c.column),
      copied.columns.map((c) => c.inherited),
    ]);
    await db.query(CLEAR_RELATIONS_SQL, [copied.relations.map((r) => r.schema), copied.relations.map((r) => r.name)]);
  },
});
