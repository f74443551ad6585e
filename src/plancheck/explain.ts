/**
 * What `plan-check` reads from EXPLAIN, and how it judges a target plan
 * against the source's. Everything here works on the JSON EXPLAIN prints
 * (FORMAT JSON, VERBOSE for schema names) and on a few catalog facts; the
 * step opens the sessions.
 */
import type { Queryable } from '../db/session.js';

/** One node of EXPLAIN's JSON, the fields used here. */
interface ExplainNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly Schema?: string;
  readonly 'Index Name'?: string;
  readonly 'Total Cost': number;
  readonly 'Plan Rows': number;
  readonly Plans?: readonly ExplainNode[];
}

/** A scan of one relation in a plan. */
export interface Scan {
  readonly node: string;
  /** `schema.table`. */
  readonly relation: string;
  /** The index by what it covers, `table(columns)`, since its name may differ between sides. */
  readonly index?: string;
  readonly rows: number;
}

export interface PlanSummary {
  readonly rootNode: string;
  readonly totalCost: number;
  readonly rows: number;
  /** Node types and what they scan, in plan order: two plans of the same shape have the same list. */
  readonly shape: readonly string[];
  readonly scans: readonly Scan[];
  /** The most expensive node below the root, e.g. `Seq Scan public.orders (cost 1693)`. */
  readonly costliest?: string;
  /** Data-modifying (ModifyTable) or locking (LockRows) nodes: such a statement is never planned for comparison. */
  readonly writes: boolean;
  readonly locks: boolean;
}

/**
 * Leads every statement plan-check sends, so that pg_stat_statements on the
 * source (which keeps a statement's text with its comments) can tell them
 * from the application's and they are never planned as its queries.
 */
export const TAG = '/* cutover plan-check */ ';

/** Index name -> `table(columns)` for every index outside the system schemas, read once per side. */
export type IndexMap = ReadonlyMap<string, string>;

export async function readIndexes(session: Queryable): Promise<IndexMap> {
  const { rows } = await session.query<{ schema: string; index: string; table: string; columns: string }>(
    `${TAG}SELECT n.nspname AS schema, ci.relname AS index, ct.relname AS "table",
            (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true), ', ' ORDER BY k)
               FROM generate_series(1, i.indnkeyatts) AS k) AS columns
       FROM pg_index i
       JOIN pg_class ci ON ci.oid = i.indexrelid
       JOIN pg_class ct ON ct.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = ci.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`,
  );
  // EXPLAIN names an index without its schema: keyed by name, qualified by the table's schema in the value.
  return new Map(rows.map((r) => [r.index, `${r.schema}.${r.table}(${r.columns})`]));
}

/**
 * EXPLAIN's JSON for one query. A query with `$n` parameters is planned the
 * way a driver's prepared statement is, without values: PREPARE, then
 * EXPLAIN EXECUTE with NULLs, on a session where the caller has set
 * `plan_cache_mode = force_generic_plan` (see `GENERIC_PLANS`): the plan
 * EXPLAIN (GENERIC_PLAN) prints on 16+, and it works on 12+ and over the
 * extended protocol, where a bare `$1` would be a protocol parameter. The
 * session must be read-only: EXPLAIN runs nothing, and PREPARE takes one
 * statement only.
 */
export async function explain(session: Queryable, sql: string): Promise<unknown> {
  const params = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  const options = `${TAG}EXPLAIN (VERBOSE, COSTS, FORMAT JSON)`;
  if (params === 0) return (await session.query<{ 'QUERY PLAN': unknown }>(`${options} ${sql}`)).rows[0]?.['QUERY PLAN'];
  await session.query(`${TAG}PREPARE cutover_plan_check AS ${sql}`);
  try {
    const values = Array.from({ length: params }, () => 'NULL').join(', ');
    return (await session.query<{ 'QUERY PLAN': unknown }>(`${options} EXECUTE cutover_plan_check(${values})`)).rows[0]?.['QUERY PLAN'];
  } finally {
    await session.query(`${TAG}DEALLOCATE cutover_plan_check`).catch(() => {});
  }
}

/** Set once per session before `explain`: prepared statements are planned without their values. */
export const GENERIC_PLANS = `${TAG}SET plan_cache_mode = force_generic_plan`;

const SCANS = new Set(['Seq Scan', 'Index Scan', 'Index Only Scan', 'Bitmap Heap Scan', 'Bitmap Index Scan', 'Tid Scan', 'Tid Range Scan', 'Sample Scan']);
const INDEX_SCANS = new Set(['Index Scan', 'Index Only Scan', 'Bitmap Index Scan']);

export function summarize(explained: unknown, indexes: IndexMap): PlanSummary {
  const root = rootOf(explained);
  const shape: string[] = [];
  const scans: Scan[] = [];
  let writes = false;
  let locks = false;
  let costliest: ExplainNode | undefined;
  const visit = (node: ExplainNode, depth: number) => {
    const type = node['Node Type'];
    if (type === 'ModifyTable') writes = true;
    if (type === 'LockRows') locks = true;
    const relation = node['Relation Name'] !== undefined ? `${node.Schema ?? 'public'}.${node['Relation Name']}` : undefined;
    const indexName = node['Index Name'];
    const index = indexName !== undefined ? (indexes.get(indexName) ?? `index ${indexName}`) : undefined;
    shape.push([type, relation, index !== undefined ? `using ${index}` : undefined].filter((p) => p !== undefined).join(' '));
    if (relation !== undefined && SCANS.has(type)) scans.push({ node: type, relation, ...(index !== undefined ? { index } : {}), rows: node['Plan Rows'] });
    // A bitmap index scan names the index, its heap scan parent the relation: record the index against the relation.
    if (type === 'Bitmap Heap Scan' && relation !== undefined) {
      for (const child of node.Plans ?? []) {
        const name = child['Index Name'];
        if (child['Node Type'] === 'Bitmap Index Scan' && name !== undefined) {
          scans.push({ node: 'Bitmap Index Scan', relation, index: indexes.get(name) ?? `index ${name}`, rows: child['Plan Rows'] });
        }
      }
    }
    if (depth > 0 && (costliest === undefined || node['Total Cost'] > costliest['Total Cost'])) costliest = node;
    for (const child of node.Plans ?? []) visit(child, depth + 1);
  };
  visit(root, 0);
  const label = (n: ExplainNode) =>
    `${n['Node Type']}${n['Relation Name'] !== undefined ? ` ${n.Schema ?? 'public'}.${n['Relation Name']}` : ''} (cost ${Math.round(n['Total Cost'])})`;
  return {
    rootNode: root['Node Type'],
    totalCost: root['Total Cost'],
    rows: root['Plan Rows'],
    shape,
    scans,
    ...(costliest !== undefined ? { costliest: label(costliest) } : {}),
    writes,
    locks,
  };
}

function rootOf(explained: unknown): ExplainNode {
  // EXPLAIN (FORMAT JSON) returns one row, one column: [ { "Plan": {...} } ] (a string on some drivers).
  const value: unknown = typeof explained === 'string' ? JSON.parse(explained) : explained;
  const first: unknown = Array.isArray(value) ? value[0] : undefined;
  const plan = typeof first === 'object' && first !== null && 'Plan' in first ? first.Plan : undefined;
  if (!isNode(plan)) throw new Error('EXPLAIN did not return a plan');
  return plan;
}

function isNode(value: unknown): value is ExplainNode {
  return typeof value === 'object' && value !== null && typeof (value as { 'Node Type'?: unknown })['Node Type'] === 'string';
}

/** A short, readable line for a plan: the root and what it scans, in order. */
export function describePlan(plan: PlanSummary): string {
  const scans = [...new Set(plan.scans.map((s) => `${s.node} ${s.index ?? s.relation}`))];
  const body = SCANS.has(plan.rootNode) ? scans.join(', ') : `${plan.rootNode}${scans.length > 0 ? `: ${scans.join(', ')}` : ''}`;
  return `${body} (cost ${fmt(plan.totalCost)}, ${fmt(plan.rows)} rows)`;
}

export type Verdict = 'same' | 'changed' | 'regressed' | 'improved' | 'error';

export interface Thresholds {
  /** Target cost beyond source cost x this is a regression; below source / this an improvement. */
  readonly costRatio: number;
  /** A sequential scan on a relation with more rows than this, where the source used an index, is a regression. */
  readonly seqScanRows: number;
  /** Root row estimates that differ by more than this factor are a misestimate. */
  readonly rowsRatio: number;
}

/** Facts about a relation on the target that explain a bad estimate. */
export interface RelationFacts {
  /** reltuples, or the source's when the target has none. */
  readonly rows: number;
  /** The target holds no statistics for it (never analyzed). */
  readonly noStatistics: boolean;
}

export interface Judgement {
  readonly verdict: Verdict;
  readonly costRatio: number;
  readonly reasons: readonly string[];
}

export function judge(source: PlanSummary, target: PlanSummary, facts: ReadonlyMap<string, RelationFacts>, limits: Thresholds): Judgement {
  const ratio = Math.max(target.totalCost, 0.01) / Math.max(source.totalCost, 0.01);
  const reasons: string[] = [];
  if (ratio > limits.costRatio) reasons.push(`cost ${fmt(source.totalCost)} -> ${fmt(target.totalCost)} (x${ratio.toFixed(1)})`);
  const sourceIndexed = new Map<string, string>();
  for (const s of source.scans) if (INDEX_SCANS.has(s.node) && s.index !== undefined) sourceIndexed.set(s.relation, s.index);
  const targetIndexed = new Set(target.scans.filter((s) => INDEX_SCANS.has(s.node)).map((s) => s.relation));
  for (const scan of target.scans) {
    if (scan.node !== 'Seq Scan') continue;
    const index = sourceIndexed.get(scan.relation);
    const rows = facts.get(scan.relation)?.rows ?? 0;
    if (index !== undefined && !targetIndexed.has(scan.relation) && rows > limits.seqScanRows) {
      reasons.push(`Seq Scan on ${scan.relation} (${fmt(rows)} rows) where the source used index ${index}`);
    }
  }
  for (const relation of new Set(target.scans.map((s) => s.relation))) {
    if (facts.get(relation)?.noStatistics === true) reasons.push(`${relation} has no statistics on the target: its estimates are guesses (analyze it)`);
  }
  const rowsRatio = Math.max(source.rows, target.rows, 1) / Math.max(Math.min(source.rows, target.rows), 1);
  if (rowsRatio > limits.rowsRatio) reasons.push(`estimates ${fmt(target.rows)} rows where the source estimates ${fmt(source.rows)}`);
  if (reasons.length > 0) return { verdict: 'regressed', costRatio: ratio, reasons };
  if (ratio < 1 / limits.costRatio) return { verdict: 'improved', costRatio: ratio, reasons: [`cost ${fmt(source.totalCost)} -> ${fmt(target.totalCost)}`] };
  const sameShape = source.shape.length === target.shape.length && source.shape.every((s, i) => s === target.shape[i]);
  return sameShape
    ? { verdict: 'same', costRatio: ratio, reasons: [] }
    : { verdict: 'changed', costRatio: ratio, reasons: ['plan shape differs, cost within costRatio'] };
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 100) / 100));

/**
 * Why a statement is not planned for comparison, before any EXPLAIN: only
 * plain queries are (SELECT, WITH ... SELECT, VALUES, TABLE). The plan itself
 * then rules out data-modifying CTEs and locking clauses (ModifyTable,
 * LockRows nodes): the server's parser decides, not a pattern.
 */
export function notAQuery(sql: string): string | undefined {
  const head = stripLeadingComments(sql).trimStart();
  const word = /^[A-Za-z]+/.exec(head)?.[0]?.toUpperCase();
  if (word === undefined) return 'does not start with a keyword';
  if (!['SELECT', 'WITH', 'VALUES', 'TABLE'].includes(word)) return `${word} statement: only queries are planned`;
  if (/^SELECT\b[\s\S]*\bINTO\b\s+(?:TEMP|TEMPORARY|UNLOGGED|TABLE)\b/i.test(head)) return 'SELECT INTO creates a table';
  return undefined;
}

function stripLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.trimStart();
    if (trimmed.startsWith('--')) rest = trimmed.slice(trimmed.indexOf('\n') === -1 ? trimmed.length : trimmed.indexOf('\n'));
    else if (trimmed.startsWith('/*')) rest = trimmed.slice(trimmed.indexOf('*/') === -1 ? trimmed.length : trimmed.indexOf('*/') + 2);
    else return trimmed;
  }
}

/** Named queries from a file: each `-- name: x` line starts one; `$n` parameters allowed. */
export function parseQueryFile(text: string, file: string): { readonly name: string; readonly sql: string; readonly line: number }[] {
  const queries: { name: string; sql: string; line: number }[] = [];
  let current: { name: string; lines: string[]; line: number } | undefined;
  const flush = () => {
    if (current === undefined) return;
    const sql = current.lines.join('\n').trim().replace(/;\s*$/, '').trim();
    if (sql.length === 0) throw new Error(`${file}:${current.line}: query "${current.name}" is empty`);
    queries.push({ name: current.name, sql, line: current.line });
  };
  text.split('\n').forEach((raw, i) => {
    const name = /^\s*--\s*name:\s*(\S.*?)\s*$/.exec(raw)?.[1];
    if (name !== undefined) {
      flush();
      if (queries.some((q) => q.name === name)) throw new Error(`${file}:${i + 1}: a second query named "${name}"`);
      current = { name, lines: [], line: i + 1 };
    } else if (current !== undefined) current.lines.push(raw);
    else if (raw.trim().length > 0 && !raw.trim().startsWith('--')) throw new Error(`${file}:${i + 1}: a query needs a "-- name: ..." line before it`);
  });
  flush();
  if (queries.length === 0) throw new Error(`${file}: no "-- name: ..." query in the file`);
  return queries;
}
