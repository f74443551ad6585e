/**
 * Runs a runbook: plan each step, apply it, verify it; on failure roll back
 * what was applied (or stop); after a crash, resume or roll back from the
 * journal. Runs never throw for step failures: they return a RunResult with
 * every step's status. Only problems before a run can start (bad input, a
 * journal that cannot be written) are thrown.
 */
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Journal, readJournal } from '../audit/journal.js';
import { Redactor } from '../audit/redact.js';
import {
  CommandError,
  ConfirmationDeclinedError,
  ConfirmationRequiredError,
  DatabaseError,
  LockedError,
  TargetChangedError,
  PlanBlockedError,
  PlanDriftError,
  StepFailedError,
  InterruptedError,
  JournalUntrustedError,
  UnfinishedRunError,
  UnknownOutcomeError,
  UsageError,
  errorMessage,
} from '../errors.js';
import { journalKey, trustJournal } from './trust.js';
import { describeProgress, isLive, pickRun, unfinishedRuns, effectiveStatus } from './run-selection.js';
import { loadRunbook, type Runbook } from '../runbook/load.js';
import type { RunEvent, RunStatus, SerializedError } from '../audit/events.js';
import { RunLocks } from './lock.js';
import { currentXid, readLegacyMarker, xactStatus } from './marker.js';
import { RunContext, operatorName, phaseSessionOptions, redactorFor, type EngineOptions } from './run-context.js';
import { resolveAll } from '../runbook/connections.js';
import { TOOL_VERSION } from '../version.js';
import { DEFAULT_STATE_DIR, findRun, lockRunDir, newRunId, runsDir } from './runs.js';
import { appliedSteps, foldJournal, inFlight, type RunState, type StepState } from './state.js';
import type { ApplyOutcome, Json, Step, StepPlan } from '../step/contract.js';
import { planDrift } from './saved-plan.js';

export interface RunOptions extends EngineOptions {
  /** Plan every step and stop: read-only sessions, nothing applied. */
  readonly dryRun?: boolean;
  /** Run only these step ids (in runbook order). */
  readonly only?: readonly string[];
  /** Start at this step id. */
  readonly from?: string;
}

import type { RunResult } from './result.js';
export type { RunResult, StepResult } from './result.js';

type StepOutcome = { readonly ok: true } | { readonly ok: false; readonly stop: 'failed' | 'stopped' | 'refused' | 'interrupted'; readonly error: unknown };

const ok: StepOutcome = { ok: true };

// ---------------------------------------------------------------- public API

/** Plans every step without changing anything (a dry run). */
export function planRunbook(runbook: Runbook, options: Omit<RunOptions, 'dryRun'>): Promise<RunResult> {
  return runRunbook(runbook, { ...options, dryRun: true });
}

export async function runRunbook(runbook: Runbook, options: RunOptions): Promise<RunResult> {
  const steps = selectSteps(runbook, options);
  const unplanned = steps.filter((s) => options.savedPlan !== undefined && !options.savedPlan.steps.some((p) => p.id === s.id));
  if (unplanned.length > 0) throw new UsageError(`the saved plan has no plan for step(s) ${unplanned.map((s) => s.id).join(', ')}`);
  const connections = resolveAll(runbook);
  const runId = newRunId();
  const runDir = path.join(runsDir(options.stateDir ?? DEFAULT_STATE_DIR), runId);
  const dryRun = options.dryRun === true;
  const redactor = redactorFor(runbook, connections);
  const key = journalKey(options.journalKey);
  const rc = new RunContext({
    runbook,
    runId,
    runDir,
    journal: Journal.create(runDir, redactor, key, options.journalSink),
    redactor,
    connections,
    options,
    dryRun,
  });
  const unlock = lockRunDir(runDir);
  const started = Date.now();
  try {
    rc.emit({
      type: 'run.started',
      runId,
      mode: dryRun ? 'plan' : 'run',
      runbook: {
        file: path.resolve(runbook.file),
        sha256: runbook.sha256,
        name: runbook.name,
        ...(runbook.ticket !== undefined ? { ticket: runbook.ticket } : {}),
      },
      operator: operatorName(options),
      host: os.hostname(),
      pid: process.pid,
      toolVersion: TOOL_VERSION,
      connections: [...connections.values()].map((c) => c.identity),
      steps: steps.map((s) => s.id),
      ...(key !== undefined ? { journal: { chain: 'hmac-sha256' as const } } : {}),
      ...(steps.some((s) => s.window) ? { window: steps.filter((s) => s.window).map((s) => s.id) } : {}),
      options: {
        ...(options.only !== undefined ? { only: options.only } : {}),
        ...(options.from !== undefined ? { from: options.from } : {}),
        yes: options.yes === true,
        ...(options.label !== undefined ? { label: options.label } : {}),
        ...(options.environment !== undefined ? { environment: options.environment } : {}),
        ...(options.savedPlan !== undefined ? { plan: { runId: options.savedPlan.runId, createdAt: options.savedPlan.createdAt } } : {}),
      },
    });
    if (dryRun) return await finish(rc, await planAll(rc, steps), started);
    const unfinished = unfinishedRuns(options.stateDir ?? DEFAULT_STATE_DIR, path.resolve(runbook.file), rc.state.targets).filter(
      (other) => other.runId !== runId,
    );
    const blocking = unfinished.at(-1);
    if (blocking !== undefined) {
      const error = new UnfinishedRunError(blocking.runId, describeProgress(blocking), isLive(blocking), blocking.rollbackStarted === true);
      rc.emit({ type: 'run.refused', reason: error.message });
      return await finish(rc, { ok: false, stop: 'refused', error }, started);
    }
    return await withTargets(rc, steps, started, { fresh: true }, () => forward(rc, steps));
  } finally {
    await rc.closeIdleSessions();
    await rc.drainNotifications();
    rc.journal.close();
    unlock();
  }
}

/** Continues a run that stopped or crashed, from its journal. */
export async function resumeRun(runId: string | undefined, options: EngineOptions): Promise<RunResult> {
  return reopen(runId, options, 'resume', async (rc, steps) => {
    const reconciled = await reconcileInFlight(rc, 'resume');
    if (!reconciled.ok) return reconciled;
    return forward(rc, steps);
  });
}

/** Rolls back every applied step of a run, newest first, from the journal. */
export async function rollbackRun(runId: string | undefined, options: EngineOptions): Promise<RunResult> {
  return reopen(runId, options, 'rollback', async (rc) => {
    const reconciled = await reconcileInFlight(rc, 'rollback');
    if (!reconciled.ok) return reconciled;
    const undone = await rollbackApplied(rc, 'requested by cutover rollback');
    if (undone === 'stopped' && rc.stopCause !== undefined) return { ok: false, stop: 'stopped', error: rc.stopCause };
    return { ok: false, stop: 'failed', error: undefined };
  });
}

/**
 * A run's state from its journal (default: the newest run). A run whose
 * process is gone without a run end reads `interrupted`.
 */
export function loadRunState(
  runId: string | undefined,
  stateDir = DEFAULT_STATE_DIR,
  options: { readonly journalKey?: Buffer } = {},
): { state: RunState; runDir: string } {
  const id = findRun(stateDir, runId);
  const runDir = path.join(runsDir(stateDir), id);
  trustJournal(runDir, id, journalKey(options.journalKey));
  const state = foldJournal(readJournal(runDir));
  state.status = effectiveStatus(state);
  return { state, runDir };
}

/**
 * Gives up on finishing a run: journals who, when and why. The run is never
 * resumed afterwards, and no longer keeps `cutover run` from starting the
 * runbook afresh; `cutover rollback <id>` can still undo what it applied.
 */
export function abandonRun(
  runId: string,
  options: { readonly reason: string; readonly stateDir?: string; readonly operator?: string; readonly journalKey?: Buffer },
): RunState {
  const reason = options.reason.trim();
  if (reason.length === 0) throw new UsageError('abandon needs --reason "...": it is kept in the journal');
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const id = findRun(stateDir, runId);
  const runDir = path.join(runsDir(stateDir), id);
  const unlock = lockRunDir(runDir);
  try {
    const key = journalKey(options.journalKey);
    trustJournal(runDir, id, key);
    const state = foldJournal(readJournal(runDir));
    if (state.mode === 'plan') throw new UsageError(`run ${id} was a plan (dry run); there is nothing to abandon`);
    if (isLive(state)) throw new UsageError(`run ${id} is still in progress (pid ${state.process.pid} on ${state.process.host})`);
    if (state.abandoned !== undefined) throw new UsageError(`run ${id} was already abandoned at ${state.abandoned.at}`);
    if (state.status === 'succeeded' || state.status === 'rolled-back' || state.status === 'refused') {
      throw new UsageError(`run ${id} is ${state.status}; there is nothing to abandon`);
    }
    const { journal, records } = Journal.open(runDir, new Redactor([]), key);
    try {
      const record = journal.append({ type: 'run.abandoned', reason, operator: operatorName(options), host: os.hostname(), pid: process.pid });
      const after = foldJournal([...records, record]);
      return after;
    } finally {
      journal.close();
    }
  } finally {
    unlock();
  }
}

// ------------------------------------------------------------- orchestration

/** The steps `run` would execute with these --only / --from options, in order. */
export function selectSteps(runbook: Runbook, options: Pick<RunOptions, 'only' | 'from'>): Step[] {
  const known = new Set(runbook.steps.map((s) => s.id));
  for (const id of [...(options.only ?? []), ...(options.from !== undefined ? [options.from] : [])]) {
    if (!known.has(id)) throw new UsageError(`no step "${id}" in ${runbook.file} (steps: ${[...known].join(', ')})`);
  }
  let steps = [...runbook.steps];
  if (options.from !== undefined) steps = steps.slice(steps.findIndex((s) => s.id === options.from));
  if (options.only !== undefined && options.only.length > 0) steps = steps.filter((s) => options.only?.includes(s.id));
  return steps;
}

async function reopen(
  runId: string | undefined,
  options: EngineOptions,
  command: 'resume' | 'rollback',
  body: (rc: RunContext, steps: Step[], state: RunState) => Promise<StepOutcome>,
): Promise<RunResult> {
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const id = pickRun(stateDir, runId, command).runId;
  const runDir = path.join(runsDir(stateDir), id);
  const unlock = lockRunDir(runDir);
  try {
    // Nothing is read from a journal before its chain verifies.
    const key = journalKey(options.journalKey);
    trustJournal(runDir, id, key);
    const recorded = foldJournal(readJournal(runDir));
    if (recorded.mode === 'plan') throw new UsageError(`run ${id} was a plan (dry run); there is nothing to ${command}`);
    if (recorded.status === 'refused') {
      throw new UsageError(`run ${id} was refused before it started a step; there is nothing to ${command}`);
    }
    // Refused before anything is appended: the head a change ticket recorded must stay the journal's end.
    if (command === 'resume' && recorded.status === 'succeeded') throw new UsageError(`run ${id} already succeeded; nothing to resume`);
    if (command === 'resume' && (recorded.rollbackStarted === true || recorded.status === 'rolled-back')) {
      throw new UsageError(`run ${id} started rolling back; it is never resumed forward again. Finish the rollback: cutover rollback ${id}`);
    }
    if (command === 'resume' && recorded.abandoned !== undefined) {
      throw new UsageError(
        `run ${id} was abandoned by ${recorded.abandoned.operator} at ${recorded.abandoned.at} ("${recorded.abandoned.reason}"); it cannot be resumed, only rolled back: cutover rollback ${id}`,
      );
    }
    const runbook = loadRunbook(recorded.runbookFile, { registry: options.registry, ...(options.env !== undefined ? { env: options.env } : {}) });
    if (runbook.sha256 !== recorded.runbookSha256) {
      throw new JournalUntrustedError(
        `runbook ${recorded.runbookFile} changed since run ${id} started (sha256 ${recorded.runbookSha256.slice(0, 12)}…, now ${runbook.sha256.slice(0, 12)}…); restore it to ${command} this run`,
      );
    }
    const connections = resolveAll(runbook);
    const redactor = redactorFor(runbook, connections);
    const { journal, records } = Journal.open(runDir, redactor, key, options.journalSink);
    const state = foldJournal(records);
    const rc = new RunContext({ runbook, runId: id, runDir, journal, redactor, connections, options, dryRun: false, state });
    const started = Date.now();
    try {
      rc.emit({ type: 'run.resumed', operator: operatorName(options), host: os.hostname(), pid: process.pid, command });
      const steps = state.order.map((stepId) => rc.step(stepId));
      return await withTargets(rc, steps, started, { fresh: false }, () => body(rc, steps, state));
    } finally {
      await rc.closeIdleSessions();
      await rc.drainNotifications();
      journal.close();
    }
  } finally {
    unlock();
  }
}

/** How often the lock sessions are checked while a step runs (the engine also checks before every write). */
const LOCK_KEEPALIVE_MS = 2_000;

/** Locks every target, watches the locks, runs `body`, releases the locks. */
async function withTargets(
  rc: RunContext,
  steps: readonly Step[],
  started: number,
  options: { readonly fresh: boolean },
  body: () => Promise<StepOutcome>,
): Promise<RunResult> {
  const locks = new RunLocks({ runId: rc.runId, operator: operatorName(rc.options), host: os.hostname(), pid: process.pid }, (error) => {
    rc.emit({ type: 'lock.lost', connection: error.connection, reason: error.reason });
    rc.halt(error);
  });
  try {
    try {
      const targets = rc.targets(steps).filter((name) => !rc.startedByRunbook(name));
      // A fresh run plans its first step right after locking: its session connects while the locks are taken.
      const first = steps[0];
      if (options.fresh && first?.connection !== undefined && targets.includes(first.connection)) {
        rc.prewarm(first.connection, phaseSessionOptions(first, 'plan', true));
      }
      // Resume and rollback act only where the run acted: each target must be the physical database an earlier process locked.
      await lockTargets(rc, locks, targets, (name) => (options.fresh ? undefined : recordedDatabase(rc, name)));
    } catch (error) {
      // Failing to lock or to prepare a target happens before any step ran:
      // a fresh run is refused (never resumable); a resume stays resumable.
      if (options.fresh) {
        rc.emit({ type: 'run.refused', reason: errorMessage(error) });
        return await finish(rc, { ok: false, stop: 'refused', error }, started);
      }
      rc.emit({ type: 'run.stopped', reason: errorMessage(error) });
      return await finish(rc, { ok: false, stop: error instanceof LockedError ? 'stopped' : 'failed', error }, started);
    }
    rc.locks = locks;
    locks.watch(LOCK_KEEPALIVE_MS);
    try {
      return await finish(rc, await body(), started);
    } catch (error) {
      rc.emit({ type: 'run.stopped', reason: errorMessage(error) });
      return await finish(rc, { ok: false, stop: 'failed', error }, started);
    }
  } finally {
    rc.locks = undefined;
    // Idle sessions hold nothing (DISCARD ALL ended their locks and transactions): they close alongside the lock, each backend's exit a few ms.
    await Promise.all([rc.closeIdleSessions(), locks.release()]);
  }
}

/**
 * The physical database the journal says `name` was last locked on, unless a
 * step of the run that stops that server (a major upgrade replaces it) has
 * started: then another identity is expected.
 */
function recordedDatabase(rc: RunContext, name: string): string | undefined {
  const replaced = rc.state.order.some((id) => {
    const step = rc.step(id);
    const state = rc.state.steps.get(id);
    return (state?.touched === true || state?.applied === true) && (rc.definition(step).stopsServerOf?.(step.config) ?? []).includes(name);
  });
  return replaced ? undefined : rc.state.databases.get(name);
}

/** Locks `names` at once; `expected`: the physical database each must be (resume, rollback). */
async function lockTargets(rc: RunContext, locks: RunLocks, names: readonly string[], expected: (name: string) => string | undefined): Promise<void> {
  const targets = names.map((name) => rc.postgres(name).identity.target);
  const held = await locks.acquireAll(
    names.map((name, i) => ({ connection: name, open: () => rc.openLockSession(name), fallbackAddress: targets[i] ?? name })),
  );
  for (const [i, name] of names.entries()) {
    const lock = held[i];
    if (lock === undefined) continue;
    const wanted = expected(name);
    if (wanted !== undefined && lock.physical !== wanted)
      throw new TargetChangedError(name, wanted, lock.physical, targets[i] ?? name, rc.state.startTargets.get(name));
    rc.emit({
      type: 'target.locked',
      connection: name,
      serverVersion: lock.serverVersion,
      database: lock.physical,
      ...(lock.sharedWith !== undefined ? { sharedWith: lock.sharedWith } : {}),
    });
  }
}

/** Before a step touches them: the targets the run could not lock at its start because a step of it starts their server. */
async function lockLate(rc: RunContext, step: Step): Promise<void> {
  const locks = rc.locks;
  if (locks === undefined) return;
  for (const name of rc.targets([step])) {
    if (!locks.covers(name)) await lockTargets(rc, locks, [name], () => undefined);
  }
}

/**
 * Before a write: the run still holds its locks and was not interrupted.
 * Otherwise the run stops here, journaled and resumable.
 */
async function mayWrite(rc: RunContext, stepId?: string): Promise<StepOutcome> {
  try {
    if (rc.stopCause === undefined) await rc.locks?.check();
  } catch {
    // check() set rc.stopCause through the lock's onLost callback.
  }
  const cause = rc.stopCause;
  if (cause === undefined) return ok;
  return stopped(rc, cause, stepId);
}

function stopped(rc: RunContext, cause: Error, stepId?: string): StepOutcome {
  if (cause instanceof InterruptedError) {
    rc.emit({ type: 'run.interrupted', signal: cause.signal, ...(stepId !== undefined ? { stepId } : {}), applied: appliedSteps(rc.state) });
    return { ok: false, stop: 'interrupted', error: cause };
  }
  rc.emit({ type: 'run.stopped', reason: cause.message, ...(stepId !== undefined ? { stepId } : {}) });
  return { ok: false, stop: 'stopped', error: cause };
}

async function finish(rc: RunContext, outcome: StepOutcome, started: number): Promise<RunResult> {
  const status = runStatus(rc, outcome);
  rc.emit({ type: 'run.finished', status, durationMs: Date.now() - started });
  return {
    runId: rc.runId,
    dryRun: rc.dryRun,
    runDir: rc.runDir,
    journalFile: rc.journal.file,
    runbookFile: rc.state.runbookFile,
    status,
    steps: rc.state.order.map((id) => {
      const s = rc.state.steps.get(id);
      const step = rc.step(id);
      return {
        id,
        kind: step.kind,
        connections: [...new Set([...(step.connection !== undefined ? [step.connection] : []), ...(rc.definition(step).connections?.(step.config) ?? [])])],
        ...(s?.rollbackSkipped !== undefined ? { rollbackSkipped: s.rollbackSkipped } : {}),
        ...(rc.definition(step).effects(step.config) === 'none' ? { readsOnly: true as const } : {}),
        status: s?.status ?? 'pending',
        ...(s?.applied === true ? { applied: true } : {}),
        ...(s?.plan !== undefined ? { plan: s.plan } : {}),
        ...(s?.error !== undefined ? { error: s.error } : {}),
        ...(s?.durationMs !== undefined ? { durationMs: s.durationMs, phases: { ...s.phases } } : {}),
        ...(s?.verified !== undefined ? { verified: s.verified } : {}),
      };
    }),
    ...(!outcome.ok && outcome.error !== undefined ? { error: outcome.error } : {}),
    journalHead: rc.journal.headHash,
  };
}

function runStatus(rc: RunContext, outcome: StepOutcome): RunStatus {
  if (rc.dryRun) return outcome.ok ? 'planned' : 'failed';
  if (outcome.ok) return 'succeeded';
  if (outcome.error instanceof UnknownOutcomeError) return 'needs-attention';
  if (outcome.stop === 'refused') return 'refused';
  if (outcome.error instanceof InterruptedError && rc.rollbackResult === undefined) return 'interrupted';
  return rc.rollbackResult ?? outcome.stop;
}

// -------------------------------------------------------------- forward pass

async function planAll(rc: RunContext, steps: readonly Step[]): Promise<StepOutcome> {
  let firstError: unknown;
  for (const step of steps) {
    // A dry run plans every step, so one bad step does not hide the others.
    const planned = await planStep(rc, step);
    if (!('plan' in planned)) firstError ??= planned.error;
  }
  return firstError === undefined ? ok : { ok: false, stop: 'failed', error: firstError };
}

async function forward(rc: RunContext, steps: readonly Step[]): Promise<StepOutcome> {
  for (const step of steps) {
    const state = rc.state.steps.get(step.id);
    if (state?.applied === true) {
      // Applied before a crash but never verified, or applied and its verification failed
      // (onFailure: stop; the cause may be fixed since): verify now, do not re-apply.
      if (state.status === 'applied' || state.status === 'failed') {
        let planned: Json;
        try {
          planned = rc.journaled(step, 'planned');
        } catch (error) {
          return afterFailure(rc, step, { ok: false, stop: 'stopped', error });
        }
        const verified = await verifyStep(rc, step, planned);
        if (!verified.ok) return afterFailure(rc, step, verified);
      }
      continue;
    }
    const allowed = await mayWrite(rc, step.id);
    if (!allowed.ok) return allowed;
    const outcome = await runStep(rc, step);
    if (!outcome.ok) return afterFailure(rc, step, outcome);
  }
  return ok;
}

async function afterFailure(rc: RunContext, step: Step, outcome: StepOutcome & { ok: false }): Promise<StepOutcome> {
  // A lost lock or an interrupt: no rollback either, it would write too.
  if (rc.stopCause !== undefined) return stopped(rc, rc.stopCause, step.id);
  if (outcome.stop === 'stopped') {
    rc.emit({ type: 'run.stopped', reason: errorMessage(outcome.error), stepId: step.id });
    return outcome;
  }
  if (rc.runbook.defaults.onFailure === 'rollback') {
    const undone = await rollbackApplied(rc, `step "${step.id}" failed`);
    // An interrupt sets stopCause while the rollback awaits: not the value narrowed above.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (undone === 'stopped' && rc.stopCause !== undefined) return { ok: false, stop: 'stopped', error: rc.stopCause };
    return outcome;
  }
  rc.emit({ type: 'run.stopped', reason: `step "${step.id}" failed; onFailure is stop`, stepId: step.id });
  return outcome;
}

async function planStep(rc: RunContext, step: Step): Promise<{ plan: StepPlan } | { error: unknown }> {
  const definition = rc.definition(step);
  const scope = rc.stepScope(step, { phase: 'plan', readOnly: true });
  const started = Date.now();
  try {
    await lockLate(rc, step);
    const plan = await definition.plan(scope.context(), step);
    rc.emit({ type: 'step.planned', stepId: step.id, plan, durationMs: Date.now() - started });
    if (plan.blockers !== undefined && plan.blockers.length > 0) {
      // Journaled with the plan above, so the reviewer sees what was blocked and why.
      const error = new PlanBlockedError(step.id, plan.blockers);
      rc.emit({ type: 'step.failed', stepId: step.id, phase: 'plan', error: serializeError(error), durationMs: Date.now() - started });
      return { error: new StepFailedError(step.id, 'plan', error) };
    }
    return { plan };
  } catch (thrown) {
    const error = scope.failure(thrown);
    rc.emit({ type: 'step.failed', stepId: step.id, phase: 'plan', error: serializeError(error), durationMs: Date.now() - started });
    return { error: new StepFailedError(step.id, 'plan', error) };
  } finally {
    await scope.close();
  }
}

async function runStep(rc: RunContext, step: Step): Promise<StepOutcome> {
  const planned = await planStep(rc, step);
  if (!('plan' in planned)) return { ok: false, stop: 'failed', error: planned.error };
  const { plan } = planned;
  let payload = plan.planned;
  const saved = rc.options.savedPlan?.steps.find((s) => s.id === step.id)?.plan;
  if (saved !== undefined) {
    // The saved plan was written redacted: compare it with this plan as it would be written.
    const redacted = JSON.parse(rc.redactor.redact(JSON.stringify(plan))) as StepPlan;
    const drift = planDrift(saved, redacted);
    const reviewed = rc.definition(step).planned.safeParse(saved.planned);
    const error =
      drift.length > 0
        ? new PlanDriftError(step.id, drift)
        : reviewed.success
          ? undefined
          : new UsageError(`step "${step.id}": the saved plan's payload is not what a ${step.kind} step plans; plan again`);
    if (error !== undefined) {
      rc.emit({ type: 'step.failed', stepId: step.id, phase: 'plan', error: serializeError(error), durationMs: 0 });
      return { ok: false, stop: 'failed', error: new StepFailedError(step.id, 'plan', error) };
    }
    // The same payload: execute the reviewed plan itself, unless secrets were
    // masked out of it; then this plan is the reviewed one with its secrets in.
    if (reviewed.success && JSON.stringify(redacted) === JSON.stringify(plan)) payload = reviewed.data;
  }

  if (step.confirm !== undefined) {
    const gate = await confirmGate(rc, step, step.confirm);
    if (!gate.ok) return gate;
  }

  for (let attempt = 1; ; attempt++) {
    rc.emit({ type: 'step.started', stepId: step.id, attempt });
    const started = Date.now();
    try {
      const { outcome, recorded } = await applyOnce(rc, step, payload);
      rc.emit({
        type: 'step.applied',
        stepId: step.id,
        // Already journaled by recordBefore: a second copy of a large before-state only costs time.
        ...(outcome.before === recorded ? {} : { before: outcome.before }),
        durationMs: Date.now() - started,
        ...(outcome.output !== undefined ? { output: outcome.output } : {}),
        ...(outcome.details !== undefined ? { details: outcome.details } : {}),
      });
      break;
    } catch (error) {
      if (error instanceof ConfirmationRequiredError || error instanceof ConfirmationDeclinedError) {
        return { ok: false, stop: 'stopped', error };
      }
      if (rc.stopCause !== undefined) {
        // The step's own error (57014 for a cancelled statement); the run's stop says why.
        rc.emit({ type: 'step.failed', stepId: step.id, phase: 'apply', error: serializeError(error), durationMs: Date.now() - started });
        return { ok: false, stop: 'stopped', error: rc.stopCause };
      }
      if (attempt <= step.retries && !rc.signal.aborted) {
        rc.emit({ type: 'step.retrying', stepId: step.id, attempt, error: serializeError(error), durationMs: Date.now() - started });
        // The backoff ends early on an interrupt or a lost lock; the check below then stops the run.
        await sleep(Math.min(30_000, 500 * 2 ** (attempt - 1)), undefined, { signal: rc.signal }).catch(() => {});
        const allowed = await mayWrite(rc, step.id);
        if (!allowed.ok) return allowed;
        continue;
      }
      rc.emit({ type: 'step.failed', stepId: step.id, phase: 'apply', error: serializeError(error), durationMs: Date.now() - started });
      return { ok: false, stop: 'failed', error: new StepFailedError(step.id, 'apply', error) };
    }
  }
  return verifyStep(rc, step, payload);
}

async function confirmGate(rc: RunContext, step: Step, question: string): Promise<StepOutcome> {
  try {
    // A person may read the journal while the question waits: everything written so far is durable first.
    rc.journal.sync();
    if (await rc.confirm(step.id, question)) return ok;
    return { ok: false, stop: 'stopped', error: new ConfirmationDeclinedError(step.id, question) };
  } catch (error) {
    return { ok: false, stop: 'stopped', error };
  }
}

/** Applies once; `recorded` is the before-state the step journaled itself, if it did. */
async function applyOnce(rc: RunContext, step: Step, planned: Json): Promise<{ outcome: ApplyOutcome; recorded: Json | undefined }> {
  const definition = rc.definition(step);
  const effects = definition.effects(step.config);
  // A step that declares it writes nothing gets read-only sessions: a bug in it cannot write.
  for (const name of definition.stopsServerOf?.(step.config) ?? []) await rc.locks?.releaseFor(name);
  const scope = rc.stepScope(step, { phase: 'apply', readOnly: effects === 'none' });
  try {
    if (effects !== 'transaction') {
      const outcome = await definition.apply(scope.context(), step, planned);
      return { outcome, recorded: scope.recordedBefore };
    }
    const session = await scope.session(requireConnection(step));
    const outcome = await session.transaction(async (tx) => {
      const applied = await definition.apply(scope.context(tx), step, planned);
      // No COMMIT without the lock: a lost lock rolls this transaction back.
      if (rc.stopCause !== undefined) throw rc.stopCause;
      await rc.locks?.check();
      // Journaled (fsync) before COMMIT: after a crash the server says whether this id committed.
      rc.emit({ type: 'step.committing', stepId: step.id, phase: 'apply', xid: await currentXid(tx), before: applied.before });
      return applied;
    });
    return { outcome, recorded: scope.recordedBefore };
  } catch (error) {
    throw scope.failure(error);
  } finally {
    await scope.close();
  }
}

async function verifyStep(rc: RunContext, step: Step, planned: Json): Promise<StepOutcome> {
  const definition = rc.definition(step);
  const started = Date.now();
  if (definition.verify === undefined || definition.verifies?.(step.config) === false) {
    rc.emit({ type: 'step.completed', stepId: step.id, verified: false, durationMs: 0 });
    return ok;
  }
  const scope = rc.stepScope(step, { phase: 'verify', readOnly: true });
  try {
    await definition.verify(scope.context(), step, planned, rc.journaled(step, 'before'));
    rc.emit({ type: 'step.completed', stepId: step.id, verified: true, durationMs: Date.now() - started });
    return ok;
  } catch (thrown) {
    const error = scope.failure(thrown);
    rc.emit({ type: 'step.failed', stepId: step.id, phase: 'verify', error: serializeError(error), durationMs: Date.now() - started });
    return { ok: false, stop: 'failed', error: new StepFailedError(step.id, 'verify', error) };
  } finally {
    await scope.close();
  }
}

function requireConnection(step: Step): string {
  if (step.connection === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but has no connection`);
  return step.connection;
}

// ----------------------------------------------------------------- rollback

async function rollbackApplied(rc: RunContext, reason: string): Promise<'rolled-back' | 'needs-attention' | 'stopped'> {
  const ids = appliedSteps(rc.state).reverse();
  rc.emit({ type: 'rollback.started', reason, steps: ids });
  let attention = false;
  for (const id of ids) {
    const step = rc.step(id);
    const definition = rc.definition(step);
    const reversibility = definition.reversibility(step.config);
    if (reversibility.kind !== 'reversible' || definition.rollback === undefined) {
      const irreversible = reversibility.kind === 'irreversible';
      attention ||= irreversible;
      rc.emit({
        type: 'rollback.step.skipped',
        stepId: id,
        irreversible,
        reason: reversibility.kind === 'irreversible' ? reversibility.reason : 'nothing to undo',
      });
      continue;
    }
    const allowed = await mayWrite(rc, id);
    if (!allowed.ok) return 'stopped';
    rc.emit({ type: 'rollback.step.started', stepId: id });
    const started = Date.now();
    try {
      await rollbackOnce(rc, step, rc.journaled(step, 'before'));
      rc.emit({ type: 'rollback.step.done', stepId: id, durationMs: Date.now() - started });
    } catch (error) {
      // Interrupted (or the lock lost) mid-undo: not a failed rollback. The step stays in flight, as after a
      // crash, and cutover rollback reconciles it and goes on.
      if (rc.stopCause !== undefined) {
        stopped(rc, rc.stopCause, id);
        return 'stopped';
      }
      // Stop at the first failure: earlier steps may depend on this one being undone first.
      rc.emit({ type: 'rollback.step.failed', stepId: id, error: serializeError(error) });
      rc.emit({ type: 'rollback.finished', status: 'needs-attention' });
      rc.rollbackResult = 'needs-attention';
      return 'needs-attention';
    }
  }
  const status = attention ? 'needs-attention' : 'rolled-back';
  rc.emit({ type: 'rollback.finished', status });
  rc.rollbackResult = status;
  return status;
}

async function rollbackOnce(rc: RunContext, step: Step, before: Json): Promise<void> {
  const definition = rc.definition(step);
  if (definition.rollback === undefined) return;
  // Undoing a step that stops or moves a server (a switchover) stops or moves it again.
  for (const name of definition.stopsServerOf?.(step.config) ?? []) await rc.locks?.releaseFor(name);
  const scope = rc.stepScope(step, { phase: 'rollback', readOnly: false });
  const rollback = (context: ReturnType<typeof scope.context>) => definition.rollback?.(context, step, before);
  try {
    await lockLate(rc, step);
    if (definition.effects(step.config) !== 'transaction') return await rollback(scope.context());
    const session = await scope.session(requireConnection(step));
    await session.transaction(async (tx) => {
      await rollback(scope.context(tx));
      if (rc.stopCause !== undefined) throw rc.stopCause;
      await rc.locks?.check();
      rc.emit({ type: 'step.committing', stepId: step.id, phase: 'rollback', xid: await currentXid(tx) });
    });
  } catch (error) {
    throw scope.failure(error);
  } finally {
    await scope.close();
  }
}

// ------------------------------------------------------------ crash recovery

/**
 * Decides what happened to the step that was in flight when the previous
 * process died: the database's marker answers for transactional steps;
 * read-only steps are run again; anything else is asked, or stops.
 */
async function reconcileInFlight(rc: RunContext, command: 'resume' | 'rollback'): Promise<StepOutcome> {
  const flying = inFlight(rc.state);
  if (flying === undefined) return ok;
  const step = rc.step(flying.id);
  await lockLate(rc, step);
  const definition = rc.definition(step);
  const effects = definition.effects(step.config);
  const phase = flying.phase;
  const reconciled = (outcome: 'done' | 'not-done' | 'rerun', reason: string, before?: StepState['before']) => {
    rc.emit({
      type: 'step.reconciled',
      stepId: step.id,
      phase,
      outcome,
      reason,
      ...(before !== undefined ? { before } : {}),
    });
  };

  if (effects === 'none') {
    reconciled(phase === 'apply' ? 'not-done' : 'done', 'the step writes nothing; it is safe to run again');
    return ok;
  }
  if (command === 'rollback' && phase === 'apply' && rc.state.steps.get(step.id)?.touched === true) {
    reconciled('not-done', 'it recorded its before-state before writing; rollback restores that, whatever part was applied');
    return ok;
  }
  if (effects === 'transaction') {
    const scope = rc.stepScope(step, { phase: 'reconcile', readOnly: true });
    try {
      const session = await scope.session(requireConnection(step));
      const committing = rc.state.steps.get(step.id)?.committing;
      if (committing === undefined || committing.phase !== phase) {
        // No id journaled: the process died before it sent COMMIT. A run
        // journaled by cutover 0.1 has its answer in the marker table instead.
        const legacy = await readLegacyMarker(session, rc.runId, step.id);
        if (legacy !== undefined && phase === 'apply' && !legacy.rolledBack) {
          reconciled('done', 'its transaction committed (cutover 0.1 marker row found)', legacy.before);
        } else if (legacy?.rolledBack === true && phase === 'rollback') {
          reconciled('done', 'its rollback transaction committed (cutover 0.1 marker row says rolled back)');
        } else {
          reconciled('not-done', `its ${phase} never reached COMMIT (no transaction id journaled)`);
        }
        return ok;
      }
      const status = await xactStatus(session, committing.xid, { waitMs: 10_000, signal: rc.signal });
      if (status === 'committed') {
        reconciled('done', `its ${phase} transaction ${committing.xid} committed (pg_xact_status)`, phase === 'apply' ? committing.before : undefined);
        return ok;
      }
      if (status === 'aborted') {
        reconciled('not-done', `its ${phase} transaction ${committing.xid} did not commit (pg_xact_status: aborted)`);
        return ok;
      }
      const why =
        status === 'unknown'
          ? `; the server no longer knows transaction ${committing.xid} (pg_xact_status is NULL: too old, or another server)`
          : `; transaction ${committing.xid} is still in progress on the server`;
      const error = new UnknownOutcomeError(step.id, phase, why.slice(2));
      rc.emit({ type: 'run.stopped', reason: error.message, stepId: step.id });
      return { ok: false, stop: 'stopped', error };
    } finally {
      await scope.close();
    }
  }
  // External side effects: nobody can know. Re-run only what says it is safe.
  const rerun = async (reason: string): Promise<StepOutcome> => {
    // An apply is re-run by the forward pass. A rollback is re-run here, and
    // journaled as done only after it succeeded.
    if (phase === 'rollback') await rollbackOnce(rc, step, rc.journaled(step, 'before'));
    reconciled(phase === 'apply' ? 'not-done' : 'done', reason);
    return ok;
  };
  const stop = (why = ''): StepOutcome => {
    const error = new UnknownOutcomeError(step.id, phase);
    rc.emit({ type: 'run.stopped', reason: `${error.message}${why}`, stepId: step.id });
    return { ok: false, stop: 'stopped', error };
  };
  if (rc.options.yes === true) {
    return step.idempotent || definition.idempotent === true
      ? rerun('outcome unknown; re-running because the step is idempotent')
      : stop('; it is not marked idempotent, so --yes does not re-run it');
  }
  if (rc.options.confirm !== undefined) {
    const question = `step "${step.id}" (${step.kind}) was in flight when the previous run stopped; its outcome is unknown. Run its ${phase} again?`;
    if (await rc.options.confirm(question, step.id)) {
      rc.emit({ type: 'step.confirmed', stepId: step.id, by: rc.options.confirmedBy ?? 'prompt', question });
      return rerun('outcome unknown; operator chose to run it again');
    }
  }
  return stop();
}

// -------------------------------------------------------------------- misc

export function serializeError(error: unknown): SerializedError {
  const cause = error instanceof StepFailedError ? error.cause : error;
  if (cause instanceof DatabaseError) {
    return {
      name: cause.name,
      message: cause.message,
      ...(cause.details.sqlstate !== undefined ? { sqlstate: cause.details.sqlstate } : {}),
      ...(cause.details.detail !== undefined ? { detail: cause.details.detail } : {}),
      ...(cause.details.hint !== undefined ? { hint: cause.details.hint } : {}),
    };
  }
  if (cause instanceof CommandError) {
    return { name: cause.name, message: cause.message, command: cause.command, stderr: cause.stderr.slice(-4096) };
  }
  if (cause instanceof Error) return { name: cause.name, message: cause.message };
  return { name: 'Error', message: String(cause) };
}

export type { RunEvent };
