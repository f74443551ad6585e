import type { CommandModule } from 'yargs';
import { listRunIds, loadRunState } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { formatState } from '../format-plan.js';
import { io } from '../io.js';
import { withJson, withRunId, withStateDir } from '../options.js';

interface StatusArgs {
  runId: string | undefined;
  last: boolean;
  json: boolean;
  'state-dir': string;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status [runId]',
  describe: "Show a run's state from its journal (default: the newest run) and list recent runs",
  builder: (y) => withJson(withStateDir(withRunId(y))),
  handler: (args) => {
    const { state } = loadRunState(args.runId, args['state-dir']);
    if (args.json) {
      io.out(JSON.stringify({ ...state, steps: state.order.map((id) => state.steps.get(id)) }, null, 2));
    } else {
      io.out(formatState(state));
      const recent = listRunIds(args['state-dir']).slice(-5).reverse();
      io.out(`\nrecent runs: ${recent.join(', ')}`);
    }
    process.exitCode = ExitCode.ok;
  },
};
