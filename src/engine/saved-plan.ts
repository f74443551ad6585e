/**
 * Saved plans: a change board reviews `cutover plan --out plan.json`, and
 * `cutover run --plan plan.json` executes exactly that. Before each step the
 * engine plans it again; if the step's planned payload (what its apply
 * executes) or its exact statements, commands or parameters differ from the
 * saved ones (the state drifted: a sequence moved, a slot appeared), the step
 * stops with the difference instead of doing something nobody reviewed.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { fsReason } from '../files.js';
import type { Runbook } from '../runbook/load.js';
import { jsonDifferences, jsonText, jsonValue, type Json, type StepPlan } from '../step/contract.js';
import type { RunResult } from './result.js';
import { resolveAll } from '../runbook/connections.js';
import { TOOL_VERSION } from '../version.js';

/**
 * 2: each step keeps its kind's full `planned` payload (1 kept the actions
 * only, so a kind that executes its payload could run what nobody reviewed).
 */
export const SAVED_PLAN_FORMAT = 'cutover-plan/2';

const tableSchema = z.object({
  title: z.string(),
  columns: z.array(z.object({ key: z.string(), title: z.string() })),
  rows: z.array(z.record(z.string(), jsonValue)),
});

/** What a saved plan keeps of a step's plan: what runs, and the tables that explain a difference. */
const savedStepPlan = z.object({
  actions: z.array(jsonValue),
  planned: jsonValue,
  tables: z.array(tableSchema).optional(),
});

const savedPlanSchema = z.object({
  format: z.literal(SAVED_PLAN_FORMAT),
  createdAt: z.string(),
  toolVersion: z.string(),
  runId: z.string(),
  runbook: z.object({ file: z.string(), sha256: z.string(), name: z.string(), ticket: z.string().optional() }),
  connections: z.array(z.object({ name: z.string(), kind: z.string(), target: z.string() })),
  steps: z.array(z.object({ id: z.string(), kind: z.string(), plan: savedStepPlan })),
});

export type SavedStepPlan = z.output<typeof savedStepPlan>;

export interface SavedPlan {
  readonly format: typeof SAVED_PLAN_FORMAT;
  readonly createdAt: string;
  readonly toolVersion: string;
  /** The dry run it was made by. */
  readonly runId: string;
  readonly runbook: { readonly file: string; readonly sha256: string; readonly name: string; readonly ticket?: string | undefined };
  readonly connections: readonly { readonly name: string; readonly kind: string; readonly target: string }[];
  readonly steps: readonly { readonly id: string; readonly kind: string; readonly plan: SavedStepPlan | StepPlan }[];
}

/** The plan of a dry run, to be reviewed and then executed as it is. */
export function makeSavedPlan(runbook: Runbook, result: RunResult, now = new Date()): SavedPlan {
  if (!result.dryRun || result.status !== 'planned') {
    throw new UsageError(`run ${result.runId} is not a complete plan (status ${result.status}); there is nothing to save`);
  }
  return {
    format: SAVED_PLAN_FORMAT,
    createdAt: now.toISOString(),
    toolVersion: TOOL_VERSION,
    runId: result.runId,
    runbook: {
      file: runbook.file,
      sha256: runbook.sha256,
      name: runbook.name,
      ...(runbook.ticket !== undefined ? { ticket: runbook.ticket } : {}),
    },
    connections: [...resolveAll(runbook).values()].map((c) => c.identity),
    steps: result.steps.map((s) => ({ id: s.id, kind: s.kind, plan: s.plan ?? { actions: [], planned: null } })),
  };
}

export function readSavedPlan(file: string): SavedPlan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read saved plan ${file}: ${fsReason(error) ?? (error instanceof Error ? error.message : String(error))}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not a saved plan: it is not JSON (truncated or edited?); make one with cutover plan --out`);
  }
  const format = value !== null && typeof value === 'object' && 'format' in value ? value.format : undefined;
  if (typeof format === 'string' && format.startsWith('cutover-plan/') && format !== SAVED_PLAN_FORMAT) {
    throw new UsageError(
      `${file} is a saved plan of another cutover version (format ${format}; this version reads ${SAVED_PLAN_FORMAT}): plan again with cutover plan --out`,
    );
  }
  const parsed = savedPlanSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue !== undefined && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new UsageError(
      `${file} is not a saved plan (${issue?.message ?? 'invalid'}${where}; expected "format": "${SAVED_PLAN_FORMAT}"; make one with cutover plan --out)`,
    );
  }
  return parsed.data;
}

/**
 * Refuses a plan made for another version of the runbook, for other servers
 * (the same runbook with other addresses from the environment: a staging
 * plan is not run on production), or too long ago to still describe the
 * databases.
 */
export function checkSavedPlan(plan: SavedPlan, runbook: Runbook, maxAgeMs: number, now = Date.now()): void {
  if (plan.runbook.sha256 !== runbook.sha256) {
    throw new UsageError(
      `the saved plan was made for another version of ${runbook.file} (sha256 ${plan.runbook.sha256.slice(0, 12)}…, now ${runbook.sha256.slice(0, 12)}…); plan again`,
    );
  }
  const planned = new Map(plan.connections.map((c) => [c.name, c]));
  const moved = [...resolveAll(runbook).values()]
    .map((c) => c.identity)
    .filter((c) => planned.get(c.name)?.target !== c.target || planned.get(c.name)?.kind !== c.kind)
    .map((c) => `connection "${c.name}": planned for ${planned.get(c.name)?.target ?? '(none)'}, now ${c.target}`);
  if (moved.length > 0) throw new UsageError(`the saved plan was made for other servers; plan again against these:\n  ${moved.join('\n  ')}`);
  const age = now - Date.parse(plan.createdAt);
  if (!(age <= maxAgeMs)) {
    throw new UsageError(`the saved plan is from ${plan.createdAt}, older than the allowed ${allowedAge(maxAgeMs)}; plan again`);
  }
}

/** In the unit --max-plan-age is usually given in: `24h`, `90m`, `30s`. */
const allowedAge = (ms: number) =>
  ms >= 3_600_000 && ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms >= 60_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} seconds`;

const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );

const MAX_LINES = 20;

/**
 * How a fresh plan differs from the saved one: empty when the planned
 * payload and the actions (exact SQL, commands, parameters) are the same.
 * The payload's differing values come first (the actions' only when the
 * payload is the same), then differing table rows as context, keyed by their
 * first column, so a reader sees which object moved.
 */
export function planDrift(saved: SavedStepPlan | StepPlan, fresh: StepPlan): string[] {
  if (canonical(saved.planned) === canonical(fresh.planned) && canonical(saved.actions) === canonical(fresh.actions)) return [];
  const lines = jsonDifferences(saved.planned, fresh.planned, 'planned');
  if (lines.length === 0) lines.push(...jsonDifferences(saved.actions, fresh.actions, 'actions'));
  for (const table of fresh.tables ?? []) {
    const old = (saved.tables ?? []).find((t) => t.title === table.title);
    const keyOf = (row: { readonly [key: string]: Json }) => JSON.stringify(row[table.columns[0]?.key ?? ''] ?? null);
    const oldRows = new Map((old?.rows ?? []).map((r) => [keyOf(r), r]));
    for (const row of table.rows) {
      const was = oldRows.get(keyOf(row));
      const changed = table.columns.filter((c) => JSON.stringify(was?.[c.key] ?? null) !== JSON.stringify(row[c.key] ?? null));
      if (changed.length > 0) {
        lines.push(
          `${table.title.split(' (')[0]}: ${jsonText(row[table.columns[0]?.key ?? ''])}: ${changed.map((c) => `${c.title} ${JSON.stringify(was?.[c.key] ?? null)} -> ${JSON.stringify(row[c.key] ?? null)}`).join(', ')}`,
        );
      }
    }
  }
  return lines.length > MAX_LINES ? [...lines.slice(0, MAX_LINES), `… and ${lines.length - MAX_LINES} more`] : lines;
}
