/**
 * Saved plans: a change board reviews `cutover plan --out plan.json`, and
 * `cutover run --plan plan.json` executes exactly that. Before each step the
 * engine plans it again; if the exact statements, commands or parameters
 * differ from the saved ones (the state drifted: a sequence moved, a slot
 * appeared), the step stops with the difference instead of doing something
 * nobody reviewed.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { ConnectionIdentity } from '../db/connections.js';
import type { Runbook } from '../runbook/load.js';
import type { Json, StepPlan } from './step.js';
import type { RunResult } from './executor.js';
import { TOOL_VERSION, resolveAll } from './run-context.js';

export const SAVED_PLAN_FORMAT = 'cutover-plan/1';

export interface SavedPlan {
  readonly format: typeof SAVED_PLAN_FORMAT;
  readonly createdAt: string;
  readonly toolVersion: string;
  /** The dry run it was made by. */
  readonly runId: string;
  readonly runbook: { readonly file: string; readonly sha256: string; readonly name: string; readonly ticket?: string };
  readonly connections: readonly ConnectionIdentity[];
  readonly steps: readonly { readonly id: string; readonly kind: string; readonly plan: StepPlan }[];
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
    steps: result.steps.map((s) => ({ id: s.id, kind: s.kind, plan: s.plan ?? { actions: [] } })),
  };
}

export function readSavedPlan(file: string): SavedPlan {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read saved plan ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const plan = value as Partial<SavedPlan> | null;
  if (plan?.format !== SAVED_PLAN_FORMAT || !Array.isArray(plan.steps) || typeof plan.createdAt !== 'string' || plan.runbook === undefined) {
    throw new UsageError(`${file} is not a saved plan (expected "format": "${SAVED_PLAN_FORMAT}"; make one with cutover plan --out)`);
  }
  return plan as SavedPlan;
}

/** Refuses a plan made for another version of the runbook, or too long ago to still describe the databases. */
export function checkSavedPlan(plan: SavedPlan, runbook: Runbook, maxAgeMs: number, now = Date.now()): void {
  if (plan.runbook.sha256 !== runbook.sha256) {
    throw new UsageError(
      `the saved plan was made for another version of ${runbook.file} (sha256 ${plan.runbook.sha256.slice(0, 12)}…, now ${runbook.sha256.slice(0, 12)}…); plan again`,
    );
  }
  const age = now - Date.parse(plan.createdAt);
  if (!(age <= maxAgeMs)) {
    throw new UsageError(`the saved plan is from ${plan.createdAt}, older than the allowed ${Math.round(maxAgeMs / 60_000)} minutes; plan again`);
  }
}

const canonical = (value: unknown): string => JSON.stringify(value, (_key, v: unknown) =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
    : v,
);

/** Every leaf under `value` as `path = value`, for a readable difference. */
function leaves(value: unknown, at: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) leaves(v, Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`, out);
  } else out.set(at, JSON.stringify(value));
  return out;
}

const MAX_LINES = 20;

/**
 * How a fresh plan differs from the saved one: empty when the actions (exact
 * SQL, commands, parameters) are the same. Differing table rows are added
 * as context, keyed by their first column, so a reader sees which object moved.
 */
export function planDrift(saved: StepPlan, fresh: StepPlan): string[] {
  if (canonical(saved.actions) === canonical(fresh.actions)) return [];
  const lines: string[] = [];
  const before = leaves(saved.actions, 'actions', new Map());
  const after = leaves(fresh.actions, 'actions', new Map());
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(key) !== after.get(key)) lines.push(`${key}: ${before.get(key) ?? '(none)'} -> ${after.get(key) ?? '(none)'}`);
  }
  for (const table of fresh.tables ?? []) {
    const old = (saved.tables ?? []).find((t) => t.title === table.title);
    const keyOf = (row: { readonly [key: string]: Json }) => JSON.stringify(row[table.columns[0]?.key ?? ''] ?? null);
    const oldRows = new Map((old?.rows ?? []).map((r) => [keyOf(r), r]));
    for (const row of table.rows) {
      const was = oldRows.get(keyOf(row));
      const changed = table.columns.filter((c) => JSON.stringify(was?.[c.key] ?? null) !== JSON.stringify(row[c.key] ?? null));
      if (changed.length > 0) {
        lines.push(`${table.title.split(' (')[0]}: ${String(row[table.columns[0]?.key ?? ''])}: ${changed.map((c) => `${c.title} ${JSON.stringify(was?.[c.key] ?? null)} -> ${JSON.stringify(row[c.key] ?? null)}`).join(', ')}`);
      }
    }
  }
  return lines.length > MAX_LINES ? [...lines.slice(0, MAX_LINES), `… and ${lines.length - MAX_LINES} more`] : lines;
}
