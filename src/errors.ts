/**
 * Errors that carry data. Each class is something a person can act on; the
 * CLI's formatter (src/cli/format-error.ts) is the one place that turns them
 * into text. Library code never prints.
 */

/** A position in a runbook file, 1-based, as editors count. */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export interface ValidationIssue {
  readonly position: SourcePosition;
  /** Dotted path of the offending key, e.g. `steps[2].sql`. */
  readonly path: string;
  readonly message: string;
}

/** A PostgreSQL SQLSTATE (five digits or capitals), not a Node error code such as ECONNREFUSED that drivers put in the same field. */
export const isSqlstate = (code: unknown): code is string => typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);

/** The runbook could not be read, parsed or validated; every issue is listed. */
export class RunbookValidationError extends Error {
  override readonly name = 'RunbookValidationError';
  constructor(
    readonly file: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super(`${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'} found`);
  }
}

/** Bad input that is not a runbook problem: an unknown run id, a flag that does not fit. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A PostgreSQL error with everything the server said about it. */
export class DatabaseError extends Error {
  override readonly name: string = 'DatabaseError';
  constructor(
    message: string,
    readonly details: {
      readonly connection: string;
      readonly sqlstate?: string;
      readonly detail?: string;
      readonly hint?: string;
      /** 1-based character offset into `sql`, as the server reports it. */
      readonly position?: number;
      readonly sql?: string;
    },
  ) {
    super(message);
  }
}

/** A session could not be opened: authentication, TLS, an unreachable host. Nothing ran on it. */
export class ConnectionFailedError extends DatabaseError {
  override readonly name = 'ConnectionFailedError';
}

/**
 * On resume or rollback, a connection reaches another physical database
 * than the one the run locked and changed (its URL or environment changed):
 * nothing runs there.
 */
export class TargetChangedError extends Error {
  override readonly name = 'TargetChangedError';
  constructor(
    readonly connection: string,
    readonly recorded: string,
    readonly now: string,
    target: string,
    /** Where the connection pointed when the run started, if the journal says. */
    startedAt?: string,
  ) {
    super(
      `connection "${connection}" (${target}) now reaches ${now}, not ${recorded}: the database this run locked and changed` +
        `${startedAt !== undefined && startedAt !== target ? ` (${startedAt} when the run started)` : ''}. ` +
        'Nothing was done there. Point the connection back at that database (its URL, or the environment variables the runbook reads), then try again',
    );
  }
}

/** An external command that failed; argv is already shell-escaped for display. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    /** Some commands (pg_upgrade --check) report on stdout why they failed. */
    readonly stdout = '',
  ) {
    super(message);
  }
}

/** Another run holds the cutover lock on a target database. */
export class LockedError extends Error {
  override readonly name = 'LockedError';
  constructor(
    readonly connection: string,
    readonly holder: string,
    /** The holding run's id, when its lock session shows its tag. */
    readonly holderRunId?: string,
  ) {
    super(`connection "${connection}" is locked by another cutover run (${holder})`);
  }
}

/**
 * The run's lock on a target ended (session terminated, server restarted,
 * connection lost): another run may now get in, so this one stops before its
 * next write. Resumable.
 */
export class LockLostError extends Error {
  override readonly name = 'LockLostError';
  constructor(
    readonly connection: string,
    readonly reason: string,
  ) {
    super(`lost the cutover lock on connection "${connection}": ${reason}; the run stopped before its next write`);
  }
}

/** A confirmation is needed and nobody can answer it (no TTY, no --yes). */
export class ConfirmationRequiredError extends Error {
  override readonly name = 'ConfirmationRequiredError';
  constructor(
    readonly stepId: string,
    readonly question: string,
  ) {
    super(`step "${stepId}" needs confirmation: ${question}`);
  }
}

/** Somebody answered no to a confirmation; the run stops where it is, resumable. */
export class ConfirmationDeclinedError extends Error {
  override readonly name = 'ConfirmationDeclinedError';
  constructor(
    readonly stepId: string,
    readonly question: string,
  ) {
    super(`step "${stepId}": confirmation declined: ${question}`);
  }
}

/** A step's post-condition does not hold after apply. */
export class VerificationError extends Error {
  override readonly name = 'VerificationError';
}

/** A step failed; `cause` is the underlying error. */
export class StepFailedError extends Error {
  override readonly name = 'StepFailedError';
  constructor(
    readonly stepId: string,
    readonly phase: 'plan' | 'apply' | 'verify' | 'rollback',
    override readonly cause: unknown,
  ) {
    super(`step "${stepId}" failed during ${phase}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * A step was in flight when the previous process died and its outcome cannot be
 * known from the journal or the database; a person has to decide.
 */
export class UnknownOutcomeError extends Error {
  override readonly name = 'UnknownOutcomeError';
  constructor(
    readonly stepId: string,
    readonly phase: 'apply' | 'rollback',
    readonly why?: string,
  ) {
    super(`step "${stepId}" was in flight (${phase}) when the previous run stopped and its outcome is unknown${why !== undefined ? ` (${why})` : ''}`);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A step's plan says it must not be applied; every reason is listed. */
export class PlanBlockedError extends Error {
  override readonly name = 'PlanBlockedError';
  constructor(
    readonly stepId: string,
    readonly blockers: readonly string[],
  ) {
    super(`plan blocked:\n${blockers.map((b) => `  - ${b}`).join('\n')}`);
  }
}

/** A step refused something unsafe; the message says why and how to override it. */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
}

/**
 * A step's state drifted from its plan: what was reviewed is not what would
 * run. `since: 'saved'` for a saved plan (`run --plan`); `'planned'` when a
 * kind planned again at apply time and found the state moved.
 */
export class PlanDriftError extends Error {
  override readonly name = 'PlanDriftError';
  constructor(
    readonly stepId: string,
    readonly differences: readonly string[],
    readonly since: 'saved' | 'planned' = 'saved',
  ) {
    super(
      `${since === 'saved' ? 'this step planned now differs from the saved plan (the state moved, or the plan file was edited)' : 'the state changed since the plan of this step'}; nothing was done:\n${differences.map((d) => `  ${d}`).join('\n')}`,
    );
  }
}

/**
 * A step ran past its `timeout` and the grace after it without its own
 * deadline (statement_timeout, the command's timeout, a poll deadline) ending it.
 */
export class StepTimeoutError extends Error {
  override readonly name = 'StepTimeoutError';
  constructor(
    readonly stepId: string,
    readonly timeoutMs: number,
    readonly ceilingMs: number,
  ) {
    super(`step "${stepId}" was still running ${ceilingMs - timeoutMs}ms after its timeout of ${timeoutMs}ms: stopped by the engine`);
  }
}

/**
 * An earlier run of the same runbook against the same targets stopped with
 * steps applied; starting afresh would apply them a second time.
 */
export class UnfinishedRunError extends Error {
  override readonly name = 'UnfinishedRunError';
  constructor(
    readonly runId: string,
    readonly progress: string,
    readonly live: boolean,
    /** Its rollback started: it is finished by rollback, never resumed. */
    rollingBack = false,
  ) {
    super(
      live
        ? `run ${runId} of this runbook is still in progress (${progress}); wait for it to finish`
        : rollingBack
          ? `run ${runId} of this runbook against the same targets did not finish rolling back (${progress}). ` +
            `Finish its rollback with: cutover rollback ${runId}\n` +
            `or give it up with: cutover abandon ${runId} --reason "..."`
          : `run ${runId} of this runbook against the same targets did not finish (${progress}). ` +
            `Continue it with: cutover resume ${runId}\n` +
            `or give it up with: cutover abandon ${runId} --reason "..." (cutover rollback ${runId} can still undo it)`,
    );
  }
}

/** SIGINT or SIGTERM: the run stops where it is, resumable. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

/** A journal that does not verify (or a runbook that changed) is never used to act. */
export class JournalUntrustedError extends Error {
  override readonly name = 'JournalUntrustedError';
}
