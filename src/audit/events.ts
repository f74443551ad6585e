/**
 * Everything a run does is one of these events. They are appended to the
 * journal (before the next action starts) and handed to subscribers such as
 * the CLI's live list. The run's state is a fold over them (state.ts).
 */
import type { Json, StepPlan } from '../step/contract.js';
import type { ConnectionIdentity } from '../db/connections.js';

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly sqlstate?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly command?: string;
  readonly stderr?: string;
}

/**
 * How a run ended. `refused`: it never started a step (a lock held elsewhere,
 * an unfinished run of the same runbook, a target it could not reach); such a
 * run is never resumed nor rolled back. `interrupted`: SIGINT/SIGTERM stopped it
 * (resumable).
 */
export type RunStatus = 'succeeded' | 'failed' | 'rolled-back' | 'stopped' | 'needs-attention' | 'planned' | 'refused' | 'interrupted';

export type RunEvent =
  | {
      readonly type: 'run.started';
      readonly runId: string;
      readonly mode: 'run' | 'plan';
      readonly runbook: { readonly file: string; readonly sha256: string; readonly name: string; readonly ticket?: string };
      readonly operator: string;
      readonly host: string;
      readonly pid: number;
      readonly toolVersion: string;
      readonly connections: readonly ConnectionIdentity[];
      readonly steps: readonly string[];
      /** Absent: a sha256 chain. `hmac-sha256`: keyed with CUTOVER_JOURNAL_KEY. */
      readonly journal?: { readonly chain: 'hmac-sha256' };
      /** Steps marked `window: true`: the downtime-critical part. */
      readonly window?: readonly string[];
      readonly options: {
        readonly only?: readonly string[];
        readonly from?: string;
        readonly yes: boolean;
        readonly label?: string;
        readonly environment?: string;
        /** The saved plan this run executes. */
        readonly plan?: { readonly runId: string; readonly createdAt: string };
      };
    }
  | { readonly type: 'run.resumed'; readonly operator: string; readonly host: string; readonly pid: number; readonly command: 'resume' | 'rollback' }
  | {
      readonly type: 'target.locked';
      readonly connection: string;
      readonly serverVersion: string;
      /** System identifier + database oid: the lock's real scope. */
      readonly database?: string;
      /** Another connection name of this run already holds the lock on this database. */
      readonly sharedWith?: string;
    }
  | { readonly type: 'step.planned'; readonly stepId: string; readonly plan: StepPlan; readonly durationMs: number }
  /** by: --yes, a person at the prompt, or an approval recorded elsewhere (`cutover fleet approve`, which names who). */
  | { readonly type: 'step.confirmed'; readonly stepId: string; readonly by: 'yes-flag' | 'prompt' | 'approval'; readonly question: string }
  | { readonly type: 'step.started'; readonly stepId: string; readonly attempt: number }
  | { readonly type: 'step.progress'; readonly stepId: string; readonly message: string }
  /** Written before a step with non-transactional writes changes anything (ApplyContext.recordBefore). */
  | { readonly type: 'step.before'; readonly stepId: string; readonly before: Json }
  | {
      readonly type: 'step.applied';
      readonly stepId: string;
      /** Absent when the step journaled it already (step.before). */
      readonly before?: Json;
      readonly durationMs: number;
      readonly output?: string;
      readonly details?: Json;
    }
  /** `durationMs`: how long the failed attempt took (absent in journals from before it was recorded). */
  | { readonly type: 'step.retrying'; readonly stepId: string; readonly attempt: number; readonly error: SerializedError; readonly durationMs?: number }
  /** The step's forward work is done; `verified` says whether a post-condition was checked. */
  | { readonly type: 'step.completed'; readonly stepId: string; readonly verified: boolean; readonly durationMs: number }
  | {
      readonly type: 'step.failed';
      readonly stepId: string;
      readonly phase: 'plan' | 'apply' | 'verify';
      readonly error: SerializedError;
      readonly durationMs: number;
    }
  | {
      readonly type: 'step.reconciled';
      readonly stepId: string;
      readonly phase: 'apply' | 'rollback';
      readonly outcome: 'done' | 'not-done' | 'rerun';
      readonly reason: string;
      readonly before?: Json;
    }
  | { readonly type: 'rollback.started'; readonly reason: string; readonly steps: readonly string[] }
  | { readonly type: 'rollback.step.started'; readonly stepId: string }
  | { readonly type: 'rollback.step.done'; readonly stepId: string; readonly durationMs: number }
  | { readonly type: 'rollback.step.skipped'; readonly stepId: string; readonly reason: string; readonly irreversible: boolean }
  | { readonly type: 'rollback.step.failed'; readonly stepId: string; readonly error: SerializedError }
  | { readonly type: 'rollback.finished'; readonly status: 'rolled-back' | 'needs-attention' }
  | { readonly type: 'run.stopped'; readonly reason: string; readonly stepId?: string }
  /** Refused before any step started; never resumable. */
  | { readonly type: 'run.refused'; readonly reason: string }
  /** A person gave up on finishing this run (`cutover abandon`); it can still be rolled back. */
  | { readonly type: 'run.abandoned'; readonly reason: string; readonly operator: string; readonly host: string; readonly pid: number }
  /** SIGINT/SIGTERM: the statement in flight was cancelled; `applied` lists what stays in place. */
  | { readonly type: 'run.interrupted'; readonly signal: string; readonly stepId?: string; readonly applied: readonly string[] }
  /**
   * Journaled (fsync'ed) just before COMMIT of a step's transaction: after a
   * crash, the server's pg_xact_status(xid) says whether it committed.
   * `before` is what apply returned, so a committed step can still be undone.
   */
  | { readonly type: 'step.committing'; readonly stepId: string; readonly phase: 'apply' | 'rollback'; readonly xid: string; readonly before?: Json }
  /** The run's lock session on a target ended or lost its lock. */
  | { readonly type: 'lock.lost'; readonly connection: string; readonly reason: string }
  | { readonly type: 'run.finished'; readonly status: RunStatus; readonly durationMs: number }
  /** A notification hook failed or did not answer in time; the run went on. */
  | { readonly type: 'notify.failed'; readonly url: string; readonly event: string; readonly reason: string };

export type RunEventType = RunEvent['type'];
