/**
 * `cutover rollback --dry-run`: what a rollback of a run would do, read from
 * its journal and the live databases through read-only sessions, in the plan
 * format. Nothing is written: not the run's journal (the preview's context
 * refuses every append), not the databases.
 */
import path from 'node:path';
import { readJournal } from '../audit/journal.js';
import { JournalUntrustedError, UsageError } from '../errors.js';
import { loadRunbook } from '../runbook/load.js';
import type { SerializedError } from '../audit/events.js';
import { serializeError } from './executor.js';
import { RunContext, redactorFor, type EngineOptions, type JournalWriter } from './run-context.js';
import { resolveAll } from '../runbook/connections.js';
import { pickRun } from './run-selection.js';
import { DEFAULT_STATE_DIR, runsDir } from './runs.js';
import { appliedSteps, foldJournal, inFlight } from './state.js';
import type { RollbackPlan } from '../step/contract.js';
import { journalKey, trustJournal } from './trust.js';

export interface RollbackPreviewStep {
  readonly id: string;
  readonly kind: string;
  /**
   * `undo`: its rollback would run (`plan` says how, when the kind can say);
   * `irreversible`: left in place, the rollback ends needs-attention;
   * `nothing-to-undo`: skipped.
   */
  readonly action: 'undo' | 'irreversible' | 'nothing-to-undo';
  readonly reason?: string;
  readonly plan?: RollbackPlan;
  /** Was in flight when its process died: the rollback first finds out whether it took effect. */
  readonly inFlight?: boolean;
  /** The preview of this step failed (e.g. a database could not be reached). */
  readonly error?: SerializedError;
}

export interface RollbackPreview {
  readonly runId: string;
  readonly runbookFile: string;
  /** In the order the rollback would take them: newest first. */
  readonly steps: readonly RollbackPreviewStep[];
  /** How the rollback would end, if every undo succeeds. */
  readonly outcome: 'rolled-back' | 'needs-attention' | 'nothing-to-undo';
}

const refuseWrites: JournalWriter = {
  append: () => {
    throw new Error('a rollback preview writes nothing');
  },
  sync: () => undefined,
  file: '',
  headHash: '',
  close: () => undefined,
};

export async function previewRollback(runId: string | undefined, options: EngineOptions): Promise<RollbackPreview> {
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const id = pickRun(stateDir, runId, 'rollback').runId;
  const runDir = path.join(runsDir(stateDir), id);
  trustJournal(runDir, id, journalKey(options.journalKey));
  const state = foldJournal(readJournal(runDir));
  if (state.mode === 'plan') throw new UsageError(`run ${id} was a plan (dry run); there is nothing to roll back`);
  if (state.status === 'refused') throw new UsageError(`run ${id} was refused before it started a step; there is nothing to roll back`);
  const runbook = loadRunbook(state.runbookFile, { registry: options.registry });
  if (runbook.sha256 !== state.runbookSha256) {
    throw new JournalUntrustedError(
      `runbook ${state.runbookFile} changed since run ${id} started (sha256 ${state.runbookSha256.slice(0, 12)}…, now ${runbook.sha256.slice(0, 12)}…); restore it to preview this run's rollback`,
    );
  }
  const connections = resolveAll(runbook);
  const rc = new RunContext({
    runbook,
    runId: id,
    runDir,
    journal: refuseWrites,
    redactor: redactorFor(runbook, connections),
    connections,
    options,
    dryRun: true,
    state,
  });
  const flying = inFlight(state);
  const ids = appliedSteps(state);
  if (flying !== undefined && !ids.includes(flying.id)) ids.push(flying.id);
  ids.sort((a, b) => state.order.indexOf(b) - state.order.indexOf(a));
  try {
    return await previewSteps(rc, ids, flying?.id);
  } finally {
    // The sessions the previews read through: left open, they would keep the process alive.
    await rc.closeIdleSessions();
  }
}

async function previewSteps(rc: RunContext, ids: readonly string[], flying: string | undefined): Promise<RollbackPreview> {
  const state = rc.state;
  const steps: RollbackPreviewStep[] = [];
  for (const stepId of ids) {
    const step = rc.step(stepId);
    const definition = rc.definition(step);
    const reversibility = definition.reversibility(step.config);
    const base = { id: stepId, kind: step.kind, ...(flying === stepId ? { inFlight: true } : {}) };
    if (reversibility.kind === 'irreversible') {
      steps.push({ ...base, action: 'irreversible', reason: reversibility.reason });
      continue;
    }
    if (reversibility.kind === 'nothing-to-undo' || definition.rollback === undefined) {
      steps.push({ ...base, action: 'nothing-to-undo', reason: 'nothing to undo' });
      continue;
    }
    if (definition.planRollback === undefined) {
      steps.push({ ...base, action: 'undo', reason: `its rollback restores the recorded before-state (no statement preview for ${step.kind} steps)` });
      continue;
    }
    const scope = rc.stepScope(step, { phase: 'rollback-preview', readOnly: true });
    try {
      const plan = await definition.planRollback(scope.context(), step, rc.journaled(step, 'before'), { force: rc.options.force === true });
      // Shown as a saved plan would be: secrets masked.
      steps.push({ ...base, action: 'undo', plan: JSON.parse(rc.redactor.redact(JSON.stringify(plan))) as RollbackPlan });
    } catch (error) {
      steps.push({ ...base, action: 'undo', error: JSON.parse(rc.redactor.redact(JSON.stringify(serializeError(scope.failure(error))))) as SerializedError });
    } finally {
      await scope.close();
    }
  }
  const outcome =
    steps.length === 0 || steps.every((s) => s.action === 'nothing-to-undo')
      ? 'nothing-to-undo'
      : steps.some((s) => s.action === 'irreversible' || (s.plan?.blockers?.length ?? 0) > 0)
        ? 'needs-attention'
        : 'rolled-back';
  return { runId: rc.runId, runbookFile: state.runbookFile, steps, outcome };
}
