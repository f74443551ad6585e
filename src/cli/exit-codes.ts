/** Documented in README.md ("Exit codes"); scripts depend on these numbers. */
export const ExitCode = {
  /** Everything asked for was done (or planned). */
  ok: 0,
  /** A step failed and every applied step was rolled back. */
  rolledBack: 1,
  /** The runbook, the arguments or the run id were wrong; nothing ran. */
  invalidInput: 2,
  /** A rollback failed, a step could not be undone, or an outcome is unknown: a person must look. */
  needsAttention: 3,
  /** Another run holds the cutover lock on a target, or an unfinished run of this runbook must be resumed or abandoned first. */
  locked: 4,
  /**
   * The run stopped where it is and can be resumed or rolled back
   * (onFailure: stop, a confirmation not given, SIGINT/SIGTERM, a lost lock).
   */
  stopped: 5,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
