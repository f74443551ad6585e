/**
 * A run's state is a fold over its journal: nothing else is trusted after a
 * crash. `resume`, `rollback` and `status` all start here.
 */
import type { RunEvent, RunStatus, SerializedError } from '../audit/events.js';
import type { Json, StepPlan } from '../step/contract.js';
import { formatDuration } from '../runbook/duration.js';

export type StepStatus =
  'pending' | 'planned' | 'applying' | 'applied' | 'completed' | 'failed' | 'rolling-back' | 'rolled-back' | 'rollback-failed' | 'rollback-skipped';

export interface StepState {
  readonly id: string;
  status: StepStatus;
  plan?: StepPlan;
  /** Set once the step's effects happened (apply completed or reconciled as done). */
  applied: boolean;
  /**
   * Recorded a before-state and may have written part of its effects (a
   * failed or crashed apply of a step with non-transactional writes).
   */
  touched: boolean;
  before?: Json;
  /** The journal line (record number) `before` comes from, for messages. */
  beforeLine?: number | undefined;
  /** The journal line of the step's last plan. */
  planLine?: number | undefined;
  attempts: number;
  /**
   * Time spent in each phase (summed over attempts and resumes); the step's
   * duration is their sum. Planning counts: a compare does its work there.
   */
  phases: StepPhases;
  /** plan + apply + verify, once any phase ran. */
  durationMs?: number;
  /** Time its rollback took, when it was rolled back. */
  rollbackMs?: number;
  /** Why a rollback left it alone (irreversible, or nothing to undo). */
  rollbackSkipped?: { readonly reason: string; readonly irreversible: boolean };
  /** Its forward work finished (step.completed) at some point, even if rolled back since. */
  completed: boolean;
  /** Its last verification actually ran a post-condition. */
  verified?: boolean;
  error?: SerializedError;
  output?: string;
  /** The transaction id journaled before the COMMIT of this step's last transaction (apply or rollback). */
  committing?: { readonly phase: 'apply' | 'rollback'; readonly xid: string; readonly before?: Json };
}

export interface StepPhases {
  plan?: number;
  apply?: number;
  verify?: number;
}

/** A step's duration: the sum of the phases that ran (undefined if none did). */
export function phaseTotal(phases: StepPhases): number | undefined {
  const values = [phases.plan, phases.apply, phases.verify].filter((v): v is number => v !== undefined);
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
}

/** The phases as a person reads them: `12.4s: plan 12.1s, apply 0.3s` (only the phases that ran). */
export function formatPhases(phases: StepPhases): string | undefined {
  const total = phaseTotal(phases);
  if (total === undefined) return undefined;
  const parts = (['plan', 'apply', 'verify'] as const).flatMap((p) => (phases[p] === undefined ? [] : [`${p} ${formatDuration(phases[p])}`]));
  return `${formatDuration(total)}: ${parts.join(', ')}`;
}

export interface RunState {
  readonly runId: string;
  readonly mode: 'run' | 'plan';
  readonly runbookFile: string;
  readonly runbookSha256: string;
  readonly runbookName: string;
  readonly ticket?: string;
  readonly startedAt: string;
  readonly operator: string;
  readonly label?: string;
  readonly environment?: string;
  readonly steps: Map<string, StepState>;
  /** Step ids in runbook order, as selected for this run. */
  readonly order: readonly string[];
  status: RunStatus | 'running' | 'rolling-back' | 'abandoned';
  finishedAt?: string;
  lastTs: string;
  /** The process that last started or reopened the run. */
  process: { readonly host: string; readonly pid: number };
  abandoned?: { readonly reason: string; readonly operator: string; readonly at: string };
  /** A rollback of this run started (and maybe stopped or failed): it is never resumed forward again. */
  rollbackStarted?: true;
  /** The connection targets (user@host:port/db) the run was started against. */
  readonly targets: readonly string[];
  /** Per connection, the physical database (system identifier + database oid) its lock was last taken on. */
  readonly databases: Map<string, string>;
  /** Per connection name, where it pointed when the run started (`user@host:port/database`). */
  readonly startTargets: ReadonlyMap<string, string>;
}

export function foldJournal(records: readonly { readonly ts: string; readonly event: RunEvent; readonly seq?: number }[]): RunState {
  const first = records[0];
  if (first === undefined || first.event.type !== 'run.started') {
    throw new Error('journal does not start with run.started');
  }
  const start = first.event;
  const state: RunState = {
    runId: start.runId,
    mode: start.mode,
    runbookFile: start.runbook.file,
    runbookSha256: start.runbook.sha256,
    runbookName: start.runbook.name,
    ...(start.runbook.ticket !== undefined ? { ticket: start.runbook.ticket } : {}),
    startedAt: first.ts,
    operator: start.operator,
    ...(start.options.label !== undefined ? { label: start.options.label } : {}),
    ...(start.options.environment !== undefined ? { environment: start.options.environment } : {}),
    steps: new Map(start.steps.map((id) => [id, { id, status: 'pending', applied: false, touched: false, attempts: 0, phases: {}, completed: false }])),
    order: start.steps,
    status: 'running',
    lastTs: first.ts,
    process: { host: start.host, pid: start.pid },
    targets: start.connections.map((c) => c.target),
    databases: new Map(),
    startTargets: new Map(start.connections.map((c) => [c.name, c.target])),
  };
  for (const { ts, event, seq } of records.slice(1)) applyEvent(state, event, ts, seq);
  return state;
}

export function applyEvent(state: RunState, event: RunEvent, ts: string, seq?: number): void {
  state.lastTs = ts;
  const step = 'stepId' in event ? state.steps.get(event.stepId) : undefined;
  if (step !== undefined && event.type !== 'step.planned' && event.type !== 'step.failed') planJustEnded.delete(step);
  switch (event.type) {
    case 'run.resumed':
      state.status = event.command === 'rollback' ? 'rolling-back' : 'running';
      state.process = { host: event.host, pid: event.pid };
      delete state.finishedAt;
      return;
    case 'run.abandoned':
      state.status = 'abandoned';
      state.abandoned = { reason: event.reason, operator: event.operator, at: ts };
      return;
    case 'step.committing':
      if (step) step.committing = { phase: event.phase, xid: event.xid, ...(event.before !== undefined ? { before: event.before } : {}) };
      return;
    case 'step.planned':
      if (step) {
        [step.status, step.plan, step.planLine] = ['planned', event.plan, seq];
        addPhase(step, 'plan', event.durationMs);
        planJustEnded.set(step, event.durationMs);
      }
      return;
    case 'step.started':
      if (step) {
        [step.status, step.attempts] = ['applying', event.attempt];
        delete step.committing;
      }
      return;
    case 'step.before':
      if (step) Object.assign(step, { before: event.before, beforeLine: seq, touched: true });
      return;
    case 'step.applied':
      if (step) {
        Object.assign(step, { status: 'applied', applied: true });
        addPhase(step, 'apply', event.durationMs);
        if (event.before !== undefined) [step.before, step.beforeLine] = [event.before, seq];
        step.before ??= null;
        if (event.output !== undefined) step.output = event.output;
      }
      return;
    case 'step.completed':
      if (step) {
        Object.assign(step, { status: 'completed', completed: true, verified: event.verified });
        if (event.verified) addPhase(step, 'verify', event.durationMs);
      }
      return;
    case 'step.failed':
      if (step) {
        [step.status, step.error] = ['failed', event.error];
        // A plan refused for its blockers was timed from the same start as step.planned: count that time once.
        const planned = event.phase === 'plan' ? (planJustEnded.get(step) ?? 0) : 0;
        planJustEnded.delete(step);
        addPhase(step, event.phase, Math.max(0, event.durationMs - planned));
      }
      return;
    case 'step.reconciled':
      if (!step) return;
      if (event.phase === 'apply' && event.outcome === 'done') {
        Object.assign(step, { status: 'applied', applied: true, before: event.before ?? null, beforeLine: seq });
      } else if (event.phase === 'apply' && event.outcome === 'not-done') {
        step.status = 'pending';
      } else if (event.phase === 'rollback' && event.outcome === 'done') {
        Object.assign(step, { status: 'rolled-back', applied: false, touched: false });
      } else if (event.phase === 'rollback' && event.outcome === 'not-done') {
        step.status = 'applied';
      }
      return;
    case 'rollback.started':
      state.status = 'rolling-back';
      state.rollbackStarted = true;
      return;
    case 'rollback.step.started':
      if (step) {
        step.status = 'rolling-back';
        delete step.committing;
      }
      return;
    case 'rollback.step.done':
      if (step) Object.assign(step, { status: 'rolled-back', applied: false, touched: false, rollbackMs: (step.rollbackMs ?? 0) + event.durationMs });
      return;
    case 'rollback.step.skipped':
      // Nothing to undo means the step no longer holds anything to roll back;
      // an irreversible one stays applied, for the record.
      if (step) {
        Object.assign(step, { status: 'rollback-skipped', applied: event.irreversible && step.applied, touched: false });
        step.rollbackSkipped = { reason: event.reason, irreversible: event.irreversible };
      }
      return;
    case 'rollback.step.failed':
      if (step) [step.status, step.error] = ['rollback-failed', event.error];
      return;
    case 'run.finished':
      [state.status, state.finishedAt] = [event.status, state.lastTs];
      return;
    case 'run.started':
    case 'run.stopped':
    case 'run.refused':
    case 'run.interrupted':
    case 'lock.lost':
      return;
    case 'target.locked':
      if (event.database !== undefined) state.databases.set(event.connection, event.database);
      return;
    case 'step.confirmed':
    case 'step.progress':
    case 'rollback.finished':
    case 'notify.failed':
      return;
    case 'step.retrying':
      if (step && event.durationMs !== undefined) addPhase(step, 'apply', event.durationMs);
      return;
  }
}

/** The plan time of a step.planned just folded, until the step's next event. */
const planJustEnded = new WeakMap<StepState, number>();

function addPhase(step: StepState, phase: keyof StepPhases, ms: number): void {
  step.phases[phase] = (step.phases[phase] ?? 0) + ms;
  const total = phaseTotal(step.phases);
  if (total !== undefined) step.durationMs = total;
}

/** Steps whose effects are (or may partly be) in place, in runbook order. */
export function appliedSteps(state: RunState): string[] {
  return state.order.filter((id) => {
    const step = state.steps.get(id);
    return step?.applied === true || step?.touched === true;
  });
}

/** The step (if any) that was in flight when the journal ends: started but never finished. */
export function inFlight(state: RunState): { readonly id: string; readonly phase: 'apply' | 'rollback' } | undefined {
  for (const id of state.order) {
    const status = state.steps.get(id)?.status;
    if (status === 'applying') return { id, phase: 'apply' };
    if (status === 'rolling-back') return { id, phase: 'rollback' };
  }
  return undefined;
}

/** The step (if any) whose effects are in place or may be: something a rollback would undo. */
export function hasSomethingToUndo(state: RunState): boolean {
  return state.mode === 'run' && state.status !== 'refused' && (appliedSteps(state).length > 0 || inFlight(state) !== undefined);
}

/** A run that stopped short of its end and can be continued (what `resume` accepts). */
export function isResumable(state: RunState): boolean {
  if (state.mode !== 'run' || state.abandoned !== undefined || state.rollbackStarted === true) return false;
  if (state.steps.size > 0 && [...state.steps.values()].some((s) => s.status === 'rolling-back')) return false;
  return !(['succeeded', 'rolled-back', 'refused', 'planned', 'rolling-back', 'abandoned'] as const).some((s) => s === state.status);
}
