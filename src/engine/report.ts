/**
 * A run as a change board reads it, built from its journal alone: who ran
 * what, when, how long each step took, the exact SQL and commands, the
 * before/after tables and findings, errors with SQLSTATE, rollbacks, and
 * whether the journal's hash chain verifies. Secrets never reach the journal,
 * so they cannot reach a report.
 */
import path from 'node:path';
import type { RunEvent, SerializedError } from '../audit/events.js';
import { foldJournal, type StepPhases, type StepStatus } from './state.js';
import type { Action, PlanTable } from '../step/contract.js';
import { listRunIds, runsDir } from './runs.js';
import { readJournal, verifyJournal } from '../audit/journal.js';

/** One stretch of a step's time at its true position: planning, applying, verifying or undoing it. */
export interface PhaseSegment {
  readonly phase: 'plan' | 'apply' | 'verify' | 'rollback';
  /** ISO times. */
  readonly startedAt: string;
  readonly endedAt: string;
  readonly failed: boolean;
}

export interface StepReport {
  readonly id: string;
  readonly status: StepStatus;
  readonly attempts: number;
  /** First phase start (planning included) and last forward phase end (ISO), for the timeline. */
  readonly startedAt?: string;
  readonly endedAt?: string;
  /** plan + apply + verify. */
  readonly durationMs?: number;
  readonly phases: StepPhases;
  readonly segments: readonly PhaseSegment[];
  /** Its forward work finished (even if rolled back since). */
  readonly completed: boolean;
  /** A post-condition was checked. */
  readonly verified: boolean;
  readonly actions: readonly Action[];
  readonly tables: readonly PlanTable[];
  readonly notes: readonly string[];
  readonly output?: string;
  readonly errors: readonly SerializedError[];
  readonly rollback?: {
    readonly startedAt: string;
    readonly endedAt?: string;
    readonly outcome: 'done' | 'failed' | 'skipped';
    readonly reason?: string;
    readonly irreversible?: boolean;
    readonly durationMs?: number;
  };
  readonly window: boolean;
}

/**
 * The downtime window of a run: the steps from the first to the last marked
 * `window: true`. Projected only when every one of them completed; then it is
 * the sum of their phase times (what the same steps would take again),
 * and `elapsedMs` the wall-clock time from the first one's planning to the
 * last one's end.
 */
export interface WindowSize {
  /** Steps marked `window: true`, and how many of them completed. */
  readonly total: number;
  readonly completed: number;
  readonly projectedMs: number | null;
  readonly elapsedMs: number | null;
}

export function windowOf(steps: readonly StepReport[]): WindowSize | null {
  const marked = steps.map((s, i) => (s.window ? i : -1)).filter((i) => i >= 0);
  const first = marked[0];
  const last = marked.at(-1);
  if (first === undefined || last === undefined) return null;
  const range = steps.slice(first, last + 1);
  const completed = marked.filter((i) => steps[i]?.completed === true).length;
  if (completed < marked.length || range.some((s) => !s.completed)) return { total: marked.length, completed, projectedMs: null, elapsedMs: null };
  const start = range[0]?.startedAt;
  const end = range.at(-1)?.endedAt;
  return {
    total: marked.length,
    completed,
    projectedMs: range.reduce((sum, s) => sum + (s.durationMs ?? 0), 0),
    elapsedMs: start !== undefined && end !== undefined ? Date.parse(end) - Date.parse(start) : null,
  };
}

/** `4.2s`, or `incomplete: 3 of 7 window steps ran`, or null without window steps. */
export function describeWindow(w: WindowSize | null, format: (ms: number) => string): string | null {
  if (w === null) return null;
  if (w.projectedMs === null) return `incomplete: ${w.completed} of ${w.total} window steps ran`;
  return format(w.projectedMs);
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
  /** Null when the runbook marks no step `window: true`. */
  readonly window: WindowSize | null;
  /** The step whose failure ended the run, and why. */
  readonly failure?: { readonly stepId: string; readonly phase: 'plan' | 'apply' | 'verify'; readonly error: SerializedError };
  /** Why the run stopped, when it stopped rather than failed (run.stopped, run.refused, run.interrupted). */
  readonly stopReason?: string;
}

export function buildReport(runDir: string, options: { readonly key?: Buffer | undefined } = {}): RunReport {
  const records = readJournal(runDir);
  const state = foldJournal(records);
  const verified = verifyJournal(runDir, { key: options.key, allowTornTail: true });
  const first = records[0]?.event;
  if (first?.type !== 'run.started') throw new Error(`${runDir}: journal does not start with run.started`);
  const window = new Set(first.window ?? []);
  const times = new Map<string, { start?: string; end?: string; errors: SerializedError[]; rollback?: StepReport['rollback']; segments: PhaseSegment[] }>();
  const back = (ts: string, ms: number) => new Date(Date.parse(ts) - ms).toISOString();
  const segment = (id: string, phase: PhaseSegment['phase'], startedAt: string, endedAt: string, failed = false) => {
    const t = at(id);
    t.segments.push({ phase, startedAt, endedAt, failed });
    if (phase !== 'rollback') {
      if (t.start === undefined || startedAt < t.start) t.start = startedAt;
      if (t.end === undefined || endedAt > t.end) t.end = endedAt;
    }
  };
  const applying = new Map<string, string>();
  let failure: RunReport['failure'];
  let stopReason: string | undefined;
  const at = (id: string) => {
    let t = times.get(id);
    if (t === undefined) times.set(id, (t = { errors: [], segments: [] }));
    return t;
  };
  for (const { ts, event } of records) {
    const e: RunEvent = event;
    switch (e.type) {
      case 'step.planned':
        segment(e.stepId, 'plan', back(ts, e.durationMs), ts);
        break;
      case 'step.started':
        applying.set(e.stepId, ts);
        break;
      case 'step.applied':
        segment(e.stepId, 'apply', applying.get(e.stepId) ?? back(ts, e.durationMs), ts);
        applying.delete(e.stepId);
        break;
      case 'step.completed': {
        if (e.verified) segment(e.stepId, 'verify', back(ts, e.durationMs), ts);
        const t = at(e.stepId);
        if (t.end === undefined || ts > t.end) t.end = ts;
        break;
      }
      case 'step.failed':
        // A blocked plan's failure covers the same time as its step.planned: its segment is marked failed, not drawn twice.
        if (e.phase === 'plan') {
          const segments = at(e.stepId).segments;
          const last = segments.at(-1);
          if (last?.phase === 'plan' && last.endedAt >= back(ts, e.durationMs)) segments[segments.length - 1] = { ...last, endedAt: ts, failed: true };
          else segment(e.stepId, 'plan', back(ts, e.durationMs), ts, true);
        } else segment(e.stepId, e.phase, e.phase === 'apply' ? (applying.get(e.stepId) ?? back(ts, e.durationMs)) : back(ts, e.durationMs), ts, true);
        applying.delete(e.stepId);
        at(e.stepId).errors.push(e.error);
        failure = { stepId: e.stepId, phase: e.phase, error: e.error };
        break;
      case 'step.retrying':
        if (e.durationMs !== undefined) segment(e.stepId, 'apply', applying.get(e.stepId) ?? back(ts, e.durationMs), ts, true);
        applying.delete(e.stepId);
        at(e.stepId).errors.push(e.error);
        break;
      case 'rollback.step.started':
        at(e.stepId).rollback = { startedAt: ts, outcome: 'done' };
        break;
      case 'rollback.step.done': {
        const r = at(e.stepId).rollback;
        at(e.stepId).rollback = { startedAt: r?.startedAt ?? ts, endedAt: ts, outcome: 'done', durationMs: e.durationMs };
        segment(e.stepId, 'rollback', r?.startedAt ?? back(ts, e.durationMs), ts);
        break;
      }
      case 'rollback.step.failed': {
        const r = at(e.stepId).rollback;
        at(e.stepId).rollback = { startedAt: r?.startedAt ?? ts, endedAt: ts, outcome: 'failed' };
        segment(e.stepId, 'rollback', r?.startedAt ?? ts, ts, true);
        at(e.stepId).errors.push(e.error);
        break;
      }
      case 'rollback.step.skipped':
        at(e.stepId).rollback = { startedAt: ts, endedAt: ts, outcome: 'skipped', reason: e.reason, irreversible: e.irreversible };
        break;
      case 'run.stopped':
      case 'run.refused':
        stopReason = e.reason;
        break;
      case 'run.interrupted':
        stopReason = `interrupted by ${e.signal}${e.stepId !== undefined ? ` during ${e.stepId}` : ''}${e.applied.length > 0 ? `; still applied: ${e.applied.join(', ')}` : ''}`;
        // The step in flight "failed" only because the operator stopped it (57014, an aborted wait): the run's reason is the interrupt.
        if (failure !== undefined && failure.stepId === e.stepId) failure = undefined;
        break;
      default:
        break;
    }
  }
  const steps: StepReport[] = state.order.map((id) => {
    const s = state.steps.get(id);
    const t = times.get(id);
    return {
      id,
      status: s?.status ?? 'pending',
      attempts: s?.attempts ?? 0,
      ...(t?.start !== undefined ? { startedAt: t.start } : {}),
      ...(t?.end !== undefined ? { endedAt: t.end } : {}),
      ...(s?.durationMs !== undefined ? { durationMs: s.durationMs } : {}),
      phases: { ...(s?.phases ?? {}) },
      segments: t?.segments ?? [],
      completed: s?.completed ?? false,
      verified: s?.verified ?? false,
      actions: s?.plan?.actions ?? [],
      tables: s?.plan?.tables ?? [],
      notes: [...(s?.plan?.notes ?? []), ...(s?.plan?.blockers ?? []).map((b) => `blocked: ${b}`)],
      ...(s?.output !== undefined ? { output: s.output } : {}),
      errors: t?.errors ?? [],
      ...(t?.rollback !== undefined ? { rollback: t.rollback } : {}),
      window: window.has(id),
    };
  });
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
    steps,
    window: windowOf(steps),
    ...(failure !== undefined ? { failure } : {}),
    ...(stopReason !== undefined ? { stopReason } : {}),
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
  /** Each run's window (null when the runbook marks no window). */
  readonly windows: readonly (WindowSize | null)[];
}

export function compareRuns(reports: readonly RunReport[]): Comparison {
  const ids = [...new Set(reports.flatMap((r) => r.steps.map((s) => s.id)))];
  const steps = ids.map((id) => ({
    id,
    durations: reports.map((r) => r.steps.find((s) => s.id === id)?.durationMs ?? null),
    window: reports.some((r) => r.steps.find((s) => s.id === id)?.window === true),
  }));
  const windows = reports.map((r) => r.window);
  return { runs: reports, steps, windows };
}
