import type { CommandModule } from 'yargs';
import { abandonRun } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { withStateDir } from '../options.js';

interface AbandonArgs {
  runId: string;
  reason: string;
  'state-dir': string;
}

export const abandonCommand: CommandModule<object, AbandonArgs> = {
  command: 'abandon <runId>',
  describe: 'Give up on finishing a stopped run (journaled); it can still be rolled back',
  builder: (y) =>
    withStateDir(y)
      .positional('runId', { type: 'string', demandOption: true })
      .option('reason', { type: 'string', demandOption: true, describe: 'why, kept in the journal' }),
  handler: (args) => {
    const state = abandonRun(args.runId, { reason: args.reason, stateDir: args['state-dir'] });
    io.out(`run ${state.runId}: abandoned (${args.reason.trim()})`);
    io.out(`what it applied stays in place; undo it with: cutover rollback ${state.runId}`);
    process.exitCode = ExitCode.ok;
  },
};
