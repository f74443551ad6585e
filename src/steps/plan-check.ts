/**
 * `plan-check`: before the switch, the target must plan the application's
 * real queries as well as the source does. Queries come from the source's
 * pg_stat_statements (the busiest) and/or a file of named queries; each plain
 * query is planned with EXPLAIN on both sides in read-only sessions (`$n`
 * parameters as a generic plan, without values) and judged: same, changed, regressed
 * (cost beyond `costRatio`, a sequential scan where the source used an index,
 * a relation without statistics, row estimates apart by more than
 * `rowsRatio`), improved, or error (does not plan on the target). Statements
 * that are not plain queries are listed as skipped with the reason and never
 * planned. It reads only, so its whole work is its plan.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DatabaseError, UsageError } from '../errors.js';
import { defineStep, type CheckFinding, type Json, type PlanTable } from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { quoteIdent } from '../db/quote.js';
import {
  describePlan,
  explain,
  GENERIC_PLANS,
  judge,
  notAQuery,
  parseQueryFile,
  readIndexes,
  summarize,
  TAG,
  type Judgement,
  type PlanSummary,
  type RelationFacts,
  type Thresholds,
} from '../plancheck/explain.js';

const ORDER = { total_time: 'total_exec_time', calls: 'calls', mean_time: 'mean_exec_time' } as const;

const config = z.object({
  source: z.string().min(1).describe('the PostgreSQL connection the application uses now; its pg_stat_statements names the busiest queries'),
  target: z.string().min(1).describe('the PostgreSQL connection it moves to'),
  queries: z
    .strictObject({
      topStatements: z.number().int().min(1).max(1000).optional().describe('the N busiest plain queries from pg_stat_statements on the source'),
      by: z.enum(['total_time', 'calls', 'mean_time']).optional().describe('what makes a statement busy (default total_time)'),
      minCalls: z.number().int().min(1).optional().describe('leave out statements called fewer times (default 1)'),
      roles: z
        .array(z.string().min(1))
        .min(1)
        .optional()
        .describe("only statements these roles ran (default: every role but the one this runbook connects as, so cutover's own statements are left out)"),
      file: z.string().min(1).optional().describe('named queries, each after a `-- name: ...` line; `$n` parameters allowed; relative to the runbook'),
    })
    .refine((q) => q.topStatements !== undefined || q.file !== undefined, 'name topStatements, a file, or both')
    .describe('where the queries come from'),
  costRatio: z.number().gt(1).optional().describe('target cost beyond source cost times this is a regression, below source / this an improvement (default 2)'),
  seqScanRows: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('a sequential scan on a relation above this many rows, where the source used an index, is a regression (default 10000)'),
  rowsRatio: z.number().gt(1).optional().describe('row estimates of the whole query further apart than this factor are a regression (default 10)'),
  failOn: z.enum(['regressed', 'error', 'never']).optional().describe('what blocks the step: regressed (or error), error only, or never (default regressed)'),
});

type Config = z.output<typeof config>;

interface Query {
  readonly name: string;
  readonly sql: string;
  readonly calls?: number;
}

/** One row of the table; the columns show the first six, --json and reports carry the rest. */
interface Row {
  readonly [key: string]: Json;
  readonly query: string;
  readonly calls: number | null;
  readonly sourceCost: string;
  readonly targetCost: string;
  readonly ratio: string;
  readonly verdict: string;
}

const short = (sql: string) => {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 60 ? `${flat.slice(0, 59)}…` : flat;
};

async function serverVersion(session: Queryable): Promise<number> {
  const { rows } = await session.query<{ v: number }>(`${TAG}SELECT current_setting('server_version_num')::int AS v`);
  return rows[0]?.v ?? 0;
}

/** The busiest statements in this database, from pg_stat_statements; undefined when the extension is missing. */
async function topStatements(session: Queryable, q: Config['queries'], limit: number): Promise<Query[] | undefined> {
  const { rows: ext } = await session.query<{ schema: string }>(
    `${TAG}SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`,
  );
  const schema = ext[0]?.schema;
  if (schema === undefined) return undefined;
  const { rows } = await session.query<{ id: string; query: string; calls: number }>(
    `${TAG}SELECT queryid::text AS id, query, calls::float8 AS calls
       FROM ${quoteIdent(schema)}.pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND calls >= $1 AND starts_with(query, $3) IS NOT TRUE
        AND CASE WHEN $4::text[] IS NULL THEN userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
                 ELSE userid IN (SELECT oid FROM pg_roles WHERE rolname = ANY ($4::text[])) END
      ORDER BY ${ORDER[q.by ?? 'total_time']} DESC
      LIMIT $2`,
    [q.minCalls ?? 1, limit, TAG.trim(), q.roles ?? null],
  );
  return rows.map((r) => ({ name: `queryid ${r.id}`, sql: r.query, calls: r.calls }));
}

const failure = (error: unknown) =>
  error instanceof DatabaseError
    ? `${error.message.split('\n')[0] ?? ''}${error.details.sqlstate !== undefined ? ` (SQLSTATE ${error.details.sqlstate})` : ''}`
    : String(error);

/** reltuples and whether statistics exist, on the target, for the relations the target's plans scan. */
async function relationFacts(session: Queryable, relations: readonly string[], sourceSession: Queryable): Promise<Map<string, RelationFacts>> {
  if (relations.length === 0) return new Map();
  const read = async (s: Queryable) =>
    (
      await s.query<{ relation: string; rows: number; stats: boolean }>(
        // pg_stats, not pg_statistic: only superusers may read the catalog.
        `${TAG}SELECT r AS relation, c.reltuples::float8 AS rows,
                EXISTS (SELECT 1 FROM pg_stats st WHERE st.schemaname = n.nspname AND st.tablename = c.relname) AS stats
           FROM unnest($1::text[]) AS r
           JOIN pg_class c ON c.oid = to_regclass(quote_ident(split_part(r, '.', 1)) || '.' || quote_ident(split_part(r, '.', 2)))
           JOIN pg_namespace n ON n.oid = c.relnamespace`,
        [relations],
      )
    ).rows;
  const [target, source] = await Promise.all([read(session), read(sourceSession)]);
  const sourceRows = new Map(source.map((r) => [r.relation, r.rows]));
  return new Map(
    target.map((r) => [
      r.relation,
      { rows: r.rows >= 0 ? Math.max(r.rows, sourceRows.get(r.relation) ?? 0) : (sourceRows.get(r.relation) ?? 0), noStatistics: !r.stats },
    ]),
  );
}

export const planCheckStep = defineStep({
  kind: 'plan-check',
  summary: "Plan the application's busiest queries on source and target with EXPLAIN and flag regressions before the switch; read-only",
  config,
  connection: { required: false, kinds: ['postgres'] },
  connections: (c) => [c.source, c.target],
  files: (c) => (c.queries.file !== undefined ? [{ path: ['queries', 'file'], file: c.queries.file }] : []),
  validate(c, runbook) {
    return (['source', 'target'] as const)
      .filter((side) => runbook.connectionKind(c[side]) !== 'postgres')
      .map((side) => ({ path: [side], message: `${side} must be a postgres connection` }));
  },
  async check(ctx, step) {
    if (step.config.queries.topStatements === undefined) return [];
    const db = await ctx.session(step.config.source);
    const { rows } = await db.query<{ schema: string | null; visible: boolean }>(
      `${TAG}SELECT (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements') AS schema,
              pg_has_role('pg_read_all_stats', 'USAGE') AS visible`,
    );
    const schema = rows[0]?.schema ?? null;
    const finding = (message: string, fix: string): CheckFinding[] => [{ severity: 'error', check: 'pg_stat_statements', message, fix }];
    if (schema === null) return finding('not installed in the source database', 'CREATE EXTENSION pg_stat_statements in the source database');
    // shared_preload_libraries can be read only by superusers: ask the view itself, which refuses when the library is not loaded.
    try {
      await db.query(`${TAG}SELECT 1 FROM ${quoteIdent(schema)}.pg_stat_statements LIMIT 1`);
    } catch (error) {
      return finding(
        `installed but not usable: ${failure(error)}`,
        'add pg_stat_statements to shared_preload_libraries on the source server (a restart), or give queries.file instead',
      );
    }
    return [
      rows[0]?.visible === true
        ? { severity: 'ok', check: 'pg_stat_statements', message: "installed; this role sees every role's statements" }
        : {
            severity: 'warning',
            check: 'pg_stat_statements',
            message: "this role sees only its own statements' text (others show as <insufficient privilege>)",
            fix: 'GRANT pg_read_all_stats to the role the runbook connects as',
          },
    ];
  },
  effects: () => 'none',
  // Reads only: apply executes nothing, so nothing is planned; the judgements are in the table.
  planned: z.null(),
  before: z.null(),
  reversibility: () => ({ kind: 'nothing-to-undo' }),

  async plan(ctx, step) {
    if (step.connection !== undefined) throw new UsageError(`step "${step.id}": plan-check uses source and target, not connection`);
    const c = step.config;
    const limits: Thresholds = { costRatio: c.costRatio ?? 2, seqScanRows: c.seqScanRows ?? 10_000, rowsRatio: c.rowsRatio ?? 10 };
    const [source, target] = await Promise.all([ctx.session(c.source), ctx.session(c.target)]);
    const [sourceVersion, targetVersion] = await Promise.all([serverVersion(source), serverVersion(target)]);
    // Sessions of this step's plan only: closed with it.
    await Promise.all([source.query(GENERIC_PLANS), target.query(GENERIC_PLANS)]);
    const blockers: string[] = [];
    const notes: string[] = [];

    const fromFile: Query[] = [];
    if (c.queries.file !== undefined) {
      const file = ctx.resolvePath(c.queries.file);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (error) {
        throw new UsageError(`step "${step.id}": cannot read queries.file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      try {
        fromFile.push(...parseQueryFile(text, file));
      } catch (error) {
        throw new UsageError(`step "${step.id}": ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    // Read more than asked: statements that are not plain queries are skipped, and the busiest N queries are what is wanted.
    const wanted = c.queries.topStatements;
    const candidates = wanted === undefined ? [] : await topStatements(source, c.queries, wanted * 4 + 20);
    if (candidates === undefined) {
      blockers.push(
        `pg_stat_statements is not installed in the source database: CREATE EXTENSION pg_stat_statements there (it must also be in shared_preload_libraries)`,
      );
    }

    const [sourceIndexes, targetIndexes] = await Promise.all([readIndexes(source), readIndexes(target)]);
    const planned: { query: Query; source: PlanSummary; target?: PlanSummary; error?: string }[] = [];
    const skipped: { query: Query; reason: string }[] = [];
    let fromStats = 0;
    const consider = async (query: Query, counts: boolean) => {
      const reason = notAQuery(query.sql);
      if (reason !== undefined) return skipped.push({ query, reason });
      let sourcePlan: PlanSummary;
      try {
        sourcePlan = summarize(await explain(source, query.sql), sourceIndexes);
      } catch (error) {
        return skipped.push({ query, reason: `does not plan on the source: ${failure(error)}` });
      }
      if (sourcePlan.writes) return skipped.push({ query, reason: 'modifies data (a data-modifying WITH): never planned here' });
      if (sourcePlan.locks) return skipped.push({ query, reason: 'takes row locks (FOR UPDATE / FOR SHARE)' });
      if (sourcePlan.scans.length > 0 && sourcePlan.scans.every((s) => /^(pg_catalog|information_schema|pg_toast)\./.test(s.relation))) {
        return skipped.push({ query, reason: 'reads only the system catalogs' });
      }
      let targetPlan: PlanSummary;
      try {
        targetPlan = summarize(await explain(target, query.sql), targetIndexes);
      } catch (error) {
        if (counts) fromStats++;
        return planned.push({ query, source: sourcePlan, error: failure(error) });
      }
      // A query that scans no table (SELECT 1, a function call) matters only when the target cannot plan it.
      if (sourcePlan.scans.length === 0 && targetPlan.scans.length === 0) return skipped.push({ query, reason: 'reads no table, and plans on the target' });
      if (counts) fromStats++;
      return planned.push({ query, source: sourcePlan, target: targetPlan });
    };
    for (const query of fromFile) await consider(query, false);
    for (const query of candidates ?? []) {
      if (wanted !== undefined && fromStats >= wanted) break;
      await consider(query, true);
    }

    const relations = [...new Set(planned.flatMap((p) => (p.target?.scans ?? []).map((s) => s.relation)))];
    const facts = await relationFacts(target, relations, source);
    const judged: { query: Query; source: PlanSummary; target?: PlanSummary; judgement: Judgement }[] = planned.map((p) => ({
      ...p,
      judgement:
        p.target === undefined
          ? { verdict: 'error', costRatio: Number.NaN, reasons: [`does not plan on the target: ${p.error ?? ''}`] }
          : judge(p.source, p.target, facts, limits),
    }));

    const cost = (p: PlanSummary | undefined) => (p === undefined ? '-' : p.totalCost >= 100 ? String(Math.round(p.totalCost)) : p.totalCost.toFixed(2));
    const rows: Row[] = judged.map((j) => ({
      query: `${j.query.name}: ${short(j.query.sql)}`,
      calls: j.query.calls ?? null,
      sourceCost: cost(j.source),
      targetCost: cost(j.target),
      ratio: Number.isFinite(j.judgement.costRatio) ? `x${j.judgement.costRatio.toFixed(2)}` : '-',
      verdict: j.judgement.verdict,
      name: j.query.name,
      sql: j.query.sql,
      reasons: [...j.judgement.reasons],
      sourcePlan: describePlan(j.source),
      sourceShape: [...j.source.shape],
      targetPlan: j.target !== undefined ? describePlan(j.target) : null,
      targetShape: j.target !== undefined ? [...j.target.shape] : null,
    }));
    // Each plan that moved, with both sides and why: what a reviewer reads before the switch.
    for (const j of judged.filter((x) => x.judgement.verdict !== 'same')) {
      notes.push(`${j.query.name} ${j.judgement.verdict}: ${j.judgement.reasons.join('; ')}`);
      notes.push(`  source: ${describePlan(j.source)}`);
      if (j.target !== undefined) notes.push(`  target: ${describePlan(j.target)}`);
    }
    const count = (v: string) => judged.filter((j) => j.judgement.verdict === v).length;
    const tables: PlanTable[] = [
      {
        title: `plans on ${c.source} (PostgreSQL ${Math.floor(sourceVersion / 10000)}) and ${c.target} (PostgreSQL ${Math.floor(targetVersion / 10000)}), costRatio ${limits.costRatio}`,
        columns: [
          { key: 'query', title: 'query' },
          { key: 'calls', title: 'calls', align: 'right' },
          { key: 'sourceCost', title: 'source cost', align: 'right' },
          { key: 'targetCost', title: 'target cost', align: 'right' },
          { key: 'ratio', title: 'ratio', align: 'right' },
          { key: 'verdict', title: 'verdict' },
        ],
        rows,
        footer: `${judged.length} planned: ${count('same')} same, ${count('improved')} improved, ${count('changed')} changed, ${count('regressed')} regressed, ${count('error')} error; ${skipped.length} skipped`,
      },
    ];
    if (skipped.length > 0) {
      tables.push({
        title: 'not planned',
        columns: [
          { key: 'query', title: 'statement' },
          { key: 'reason', title: 'why' },
        ],
        rows: skipped.map((s) => ({ query: `${s.query.name}: ${short(s.query.sql)}`, reason: s.reason })),
      });
    }
    if (wanted !== undefined && c.queries.roles === undefined) {
      const { rows: me } = await source.query<{ role: string }>(`${TAG}SELECT current_user AS role`);
      notes.push(
        `statements run by ${me[0]?.role ?? 'this role'} (the role this runbook connects as) are left out; name queries.roles to choose whose statements count`,
      );
    }
    if (c.queries.roles !== undefined) {
      // A misspelt role selects no statement: the step would compare nothing and pass.
      const { rows: known } = await source.query<{ role: string }>(`${TAG}SELECT rolname AS role FROM pg_roles WHERE rolname = ANY ($1::text[])`, [
        c.queries.roles,
      ]);
      const exists = new Set(known.map((r) => r.role));
      for (const role of c.queries.roles) if (!exists.has(role)) blockers.push(`queries.roles: no role "${role}" on the source`);
    }
    if (wanted !== undefined && candidates !== undefined && fromStats < wanted) {
      notes.push(`pg_stat_statements held ${fromStats} plain queries of the ${wanted} asked for`);
    }
    const failOn = c.failOn ?? 'regressed';
    const failing = judged.filter((j) => j.judgement.verdict === 'error' || (failOn === 'regressed' && j.judgement.verdict === 'regressed'));
    if (failOn !== 'never') for (const j of failing) blockers.push(`${j.query.name} ${j.judgement.verdict}: ${j.judgement.reasons.join('; ')}`);
    return { actions: [], planned: null, tables, notes, ...(blockers.length > 0 ? { blockers } : {}) };
  },

  async apply() {
    // Everything was read and judged in the plan, which blocks the step when it should.
    return { before: null };
  },
});
