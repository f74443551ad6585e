/** Options several commands share, and how a run's outcome becomes an exit code. */
import type { Argv } from 'yargs';
import { ConnectionFailedError, DEFAULT_STATE_DIR, LockedError, TargetChangedError, UnfinishedRunError, type RunResult } from '../index.js';
import { ExitCode } from './exit-codes.js';

/** The arguments a builder declares, as yargs parses them: the command's types come from its options, not a hand-written copy. */
export type ArgsOf<Builder extends (y: Argv) => Argv<unknown>> = ReturnType<Builder> extends Argv<infer Args> ? Args : never;

export function withStateDir<T>(y: Argv<T>) {
  return y.option('state-dir', {
    type: 'string',
    default: process.env['CUTOVER_STATE_DIR'] ?? DEFAULT_STATE_DIR,
    describe: 'where run journals are kept (env CUTOVER_STATE_DIR)',
  });
}

export function withYes<T>(y: Argv<T>) {
  return y.option('yes', {
    alias: 'y',
    type: 'boolean',
    default: false,
    describe: 'answer yes to every confirmation (needed without a terminal)',
  });
}

export { withJson } from './json-option.js';

export function withRunId<T>(y: Argv<T>) {
  return y
    .positional('runId', { type: 'string', describe: 'run id (see cutover status); default: the newest run' })
    .option('last', { type: 'boolean', default: false, describe: 'the newest run (the default when no id is given)' });
}

export function exitCodeFor(result: RunResult): ExitCode {
  switch (result.status) {
    case 'succeeded':
    case 'planned':
      return ExitCode.ok;
    case 'rolled-back':
      return ExitCode.rolledBack;
    case 'needs-attention':
      return ExitCode.needsAttention;
    case 'stopped':
    case 'interrupted':
      return result.error instanceof LockedError ? ExitCode.locked : ExitCode.stopped;
    case 'refused':
      // Nothing ran. Another run is in the way (exit 4); a target that cannot be reached is the environment (exit 2).
      if (result.error instanceof LockedError || result.error instanceof UnfinishedRunError) return ExitCode.locked;
      return result.error instanceof ConnectionFailedError ? ExitCode.invalidInput : ExitCode.needsAttention;
    case 'failed':
      // A connection that could not be opened before any step ran: the environment is wrong, nothing changed.
      if (result.error instanceof ConnectionFailedError || result.error instanceof TargetChangedError) return ExitCode.invalidInput;
      // A dry run whose plan failed changed nothing; a real run stopped under onFailure: stop.
      return result.dryRun ? ExitCode.rolledBack : ExitCode.stopped;
  }
}
