/**
 * A run as a change board reads it, built from its journal alone: who ran
 * what, when, how long each step took, the exact SQL and commands, the
 * before/after tables and findings, errors with SQLSTATE, rollbacks, and
 * whether the journal's hash chain verifies. Secrets never reach the journal,
 * so they cannot reach a report.
 */
import path from 'node:path';
import type { RunEvent, SerializedError } from '../engine/events.js';
import { foldJournal, type StepStatus } from '../engine/state.js';
import type { Action, PlanTable } from '../engine/step.js';
import { listRunIds, runsDir } from '../engine/runs.js';
import { readJournal, verifyJournal } from './journal.js';

export interface StepReport {
  readonly id: string;
  readonly status: StepStatus;
  readonly attempts: number;
  /** First apply start and last end (ISO), for the timeline. */
  readonly startedAt?: string;
  readonly endedAt?: string;
  readonly durationMs?: number;
  readonly actions: readonly Action[];
  readonly tables: readonly PlanTable[];
  readonly notes: readonly string[];
  readonly output?: string;
  readonly errors: readonly SerializedError[];
  readonly rollback?: { readonly startedAt: string; readonly endedAt?: string; readonly outcome: 'done' | 'failed' | 'skipped'; readonly reason?: string };
  readonly window: boolean;
}

export interface RunReport {
  readonly runId: string;
  readonly mode: 'run' | 'plan';
  readonly runbook: { readonly name: string; readonly file: string; readonly sha256: string; readonly ticket?: string };
  readonly operator: string;
  readonly host: string;
  readonly toolVersion: string;
  readonly label?: string;
  readonly environment?: string;
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly status: string;
  readonly chain: { readonly ok: boolean; readonly head: string; readonly problems: readonly string[] };
  readonly steps: readonly StepReport[];
}

export function buildReport(runDir: string, options: { readonly key?: Buffer | undefined } = {}): RunReport {
  const records = readJournal(runDir);
  const state = foldJournal(records);
  const verified = verifyJournal(runDir, { key: options.key, allowTornTail: true });
  const first = records[0]?.event;
  if (first?.type !== 'run.started') throw new Error(`${runDir}: journal does not start with run.started`);
  const window = new Set(first.window ?? []);
  const times = new Map<string, { start?: string; end?: string; errors: SerializedError[]; rollback?: StepReport['rollback'] }>();
  const at = (id: string) => {
    let t = times.get(id);
    if (t === undefined) times.set(id, (t = { errors: [] }));
    return t;
  };
  for (const { ts, event } of records) {
    const e: RunEvent = event;
    switch (e.type) {
      case 'step.started':
        at(e.stepId).start ??= ts;
        break;
      case 'step.completed':
      case 'step.applied':
        at(e.stepId).end = ts;
        break;
      case 'step.failed':
        at(e.stepId).end = ts;
        at(e.stepId).errors.push(e.error);
        break;
      case 'step.retrying':
        at(e.stepId).errors.push(e.error);
        break;
      case 'rollback.step.started':
        at(e.stepId).rollback = { startedAt: ts, outcome: 'done' };
        break;
      case 'rollback.step.done': {
        const r = at(e.stepId).rollback;
        at(e.stepId).rollback = { startedAt: r?.startedAt ?? ts, endedAt: ts, outcome: 'done' };
        break;
      }
      case 'rollback.step.failed': {
        const r = at(e.stepId).rollback;
        at(e.stepId).rollback = { startedAt: r?.startedAt ?? ts, endedAt: ts, outcome: 'failed' };
        at(e.stepId).errors.push(e.error);
        break;
      }
      case 'rollback.step.skipped':
        at(e.stepId).rollback = { startedAt: ts, endedAt: ts, outcome: 'skipped', reason: e.reason };
        break;
      default:
        break;
    }
  }
  return {
    runId: state.runId,
    mode: state.mode,
    runbook: {
      name: state.runbookName,
      file: state.runbookFile,
      sha256: state.runbookSha256,
      ...(state.ticket !== undefined ? { ticket: state.ticket } : {}),
    },
    operator: state.operator,
    host: first.host,
    toolVersion: first.toolVersion,
    ...(state.label !== undefined ? { label: state.label } : {}),
    ...(state.environment !== undefined ? { environment: state.environment } : {}),
    startedAt: state.startedAt,
    ...(state.finishedAt !== undefined ? { finishedAt: state.finishedAt } : {}),
    status: state.status,
    chain: { ok: verified.ok, head: verified.head, problems: verified.problems.map((p) => `line ${p.line}: ${p.problem}`) },
    steps: state.order.map((id) => {
      const s = state.steps.get(id);
      const t = times.get(id);
      return {
        id,
        status: s?.status ?? 'pending',
        attempts: s?.attempts ?? 0,
        ...(t?.start !== undefined ? { startedAt: t.start } : {}),
        ...(t?.end !== undefined ? { endedAt: t.end } : {}),
        ...(t?.start !== undefined && t.end !== undefined ? { durationMs: Date.parse(t.end) - Date.parse(t.start) } : {}),
        actions: s?.plan?.actions ?? [],
        tables: s?.plan?.tables ?? [],
        notes: [...(s?.plan?.notes ?? []), ...(s?.plan?.blockers ?? []).map((b) => `blocked: ${b}`)],
        ...(s?.output !== undefined ? { output: s.output } : {}),
        errors: t?.errors ?? [],
        ...(t?.rollback !== undefined ? { rollback: t.rollback } : {}),
        window: window.has(id),
      };
    }),
  };
}

export interface RunSummary {
  readonly runId: string;
  readonly mode: 'run' | 'plan';
  readonly label?: string;
  readonly environment?: string;
  readonly runbook: string;
  readonly startedAt: string;
  readonly status: string;
  readonly durationMs?: number;
}

/** Every run in the state directory, newest first. */
export function listRuns(stateDir: string): RunSummary[] {
  return listRunIds(stateDir)
    .reverse()
    .flatMap((id): RunSummary[] => {
      try {
        const state = foldJournal(readJournal(path.join(runsDir(stateDir), id)));
        return [
          {
            runId: id,
            mode: state.mode,
            ...(state.label !== undefined ? { label: state.label } : {}),
            ...(state.environment !== undefined ? { environment: state.environment } : {}),
            runbook: state.runbookName,
            startedAt: state.startedAt,
            status: state.status,
            ...(state.finishedAt !== undefined ? { durationMs: Date.parse(state.finishedAt) - Date.parse(state.startedAt) } : {}),
          },
        ];
      } catch {
        return []; // an unreadable journal is audit verify's business, not this list's
      }
    });
}

export interface Comparison {
  readonly runs: readonly RunReport[];
  /** Per step id (runbook order of the first run): its duration in each run. */
  readonly steps: readonly { readonly id: string; readonly durations: readonly (number | null)[]; readonly window: boolean }[];
  /** Sum of the window steps' durations per run (null when the runbook marks no window). */
  readonly windows: readonly (number | null)[];
}

export function compareRuns(reports: readonly RunReport[]): Comparison {
  const ids = [...new Set(reports.flatMap((r) => r.steps.map((s) => s.id)))];
  const steps = ids.map((id) => ({
    id,
    durations: reports.map((r) => r.steps.find((s) => s.id === id)?.durationMs ?? null),
    window: reports.some((r) => r.steps.find((s) => s.id === id)?.window === true),
  }));
  const windows = reports.map((r) => {
    const marked = r.steps.map((s, i) => (s.window ? i : -1)).filter((i) => i >= 0);
    const firstMarked = marked[0];
    const lastMarked = marked.at(-1);
    if (firstMarked === undefined || lastMarked === undefined) return null;
    return r.steps.slice(firstMarked, lastMarked + 1).reduce((sum, s) => sum + (s.durationMs ?? 0), 0);
  });
  return { runs: reports, steps, windows };
}
