/** What a run returns: every step's status, and what ended it early. Runs never throw for step failures. */
import type { RunStatus, SerializedError } from '../audit/events.js';
import type { StepPlan } from '../step/contract.js';
import type { StepPhases, StepState } from './state.js';

export interface StepResult {
  readonly id: string;
  readonly kind: string;
  readonly status: StepState['status'];
  /** Its effects are in place (also when its verification failed afterwards). */
  readonly applied?: true;
  readonly plan?: StepPlan;
  readonly error?: SerializedError;
  /** plan + apply + verify. */
  readonly durationMs?: number;
  readonly phases?: StepPhases;
  /** A post-condition was checked (false: the kind has no verify, or it did not get that far). */
  readonly verified?: boolean;
  /** The connections the step uses (its own first), for messages about it. */
  readonly connections: readonly string[];
  /** Why a rollback left it alone. */
  readonly rollbackSkipped?: { readonly reason: string; readonly irreversible: boolean };
  /** Its kind writes nothing here (effects none): its plan is its report (a precheck's findings, a comparison). */
  readonly readsOnly?: true;
}

export interface RunResult {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly runDir: string;
  readonly journalFile: string;
  /** The runbook the run executes (absolute path). */
  readonly runbookFile?: string;
  readonly status: RunStatus;
  readonly steps: readonly StepResult[];
  /** What ended the run early: a step failure, a lock held elsewhere, a missing confirmation. */
  readonly error?: unknown;
  readonly journalHead: string;
}

/** Where a run's steps stand when it ended: what is undone, and what is still in place and why. */
export interface Standing {
  readonly rolledBack: readonly StepResult[];
  /** Still in place: their kind cannot undo them. */
  readonly irreversible: readonly StepResult[];
  /** Their undo failed: they may be partly undone. */
  readonly rollbackFailed: readonly StepResult[];
  /** Applied and still in place (steps that write; a step that writes nothing leaves nothing). */
  readonly inPlace: readonly StepResult[];
  /** Applied and still in place, but their verification failed. */
  readonly unverified: readonly StepResult[];
  /** The run stopped while applying or undoing these: writers, then readers. */
  readonly stoppedWriting: readonly StepResult[];
  readonly stoppedReading: readonly StepResult[];
}

/** One classification for every summary of a run's end (the CLI's, a fleet rollback's). */
export function standing(result: Pick<RunResult, 'steps'>): Standing {
  const by = (...statuses: string[]) => result.steps.filter((s) => statuses.includes(s.status));
  const midway = by('applying', 'rolling-back');
  return {
    rolledBack: by('rolled-back'),
    irreversible: result.steps.filter((s) => s.rollbackSkipped?.irreversible === true),
    rollbackFailed: by('rollback-failed'),
    inPlace: by('applied', 'completed').filter((s) => s.readsOnly !== true),
    unverified: result.steps.filter((s) => s.status === 'failed' && s.applied === true),
    stoppedWriting: midway.filter((s) => s.readsOnly !== true),
    stoppedReading: midway.filter((s) => s.readsOnly === true),
  };
}
