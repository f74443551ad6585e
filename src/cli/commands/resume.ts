import type { Argv, CommandModule } from 'yargs';
import { loadRunState, pickRun, registry, resumeRun, rollbackRun, type RunResult } from '../../index.js';
import { io } from '../io.js';
import { ExitCode } from '../exit-codes.js';
import { withJson, withRunId, withStateDir, withYes } from '../options.js';
import { runWithUi } from '../ui.js';

interface ReopenArgs {
  runId: string | undefined;
  last: boolean;
  yes: boolean;
  json: boolean;
  force: boolean;
  'state-dir': string;
}

const builder = (y: Argv) => withJson(withYes(withStateDir(withRunId(y)))) as unknown as Argv<ReopenArgs>;

async function reopen(args: ReopenArgs, command: 'resume' | 'rollback'): Promise<{ result: RunResult; code: number }> {
  const picked = pickRun(args['state-dir'], args.runId, command);
  if (args.runId === undefined) io.err(`${command}: run ${picked.runId}: ${picked.reason}`);
  const { state } = loadRunState(picked.runId, args['state-dir']);
  const call = command === 'resume' ? resumeRun : rollbackRun;
  // Reopen the run loadRunState found, so --last means the same run for both.
  // Steps already done stay off the live list; it shows what this command will do.
  const remaining = state.order.filter((id) => state.steps.get(id)?.status !== 'completed');
  return runWithUi(command, remaining, args.json, (hooks) =>
    call(state.runId, { registry, stateDir: args['state-dir'], yes: args.yes, force: args.force, ...hooks }),
  );
}

export const resumeCommand: CommandModule<object, ReopenArgs> = {
  command: 'resume [runId]',
  describe: 'Continue a stopped or crashed run from its journal; no completed step runs twice',
  builder,
  handler: async (args) => {
    process.exitCode = (await reopen(args, 'resume')).code;
  },
};

export const rollbackCommand: CommandModule<object, ReopenArgs> = {
  command: 'rollback [runId]',
  describe: "Undo a run's applied steps, newest first, from their recorded before-state",
  builder: (y: Argv) =>
    builder(y).option('force', {
      type: 'boolean',
      default: false,
      describe: 'restore even where a step refuses (e.g. sequence values consumed since the run); read why first',
    }) as unknown as Argv<ReopenArgs>,
  handler: async (args) => {
    const { result, code } = await reopen(args, 'rollback');
    process.exitCode = result.status === 'rolled-back' ? ExitCode.ok : code;
  },
};
