import type { CommandModule } from 'yargs';
import { loadRunbook, registry, runRunbook, selectSteps } from '../../index.js';
import { withJson, withStateDir, withYes } from '../options.js';
import { runWithUi } from '../ui.js';

interface RunArgs {
  runbook: string;
  'dry-run': boolean;
  only: string[] | undefined;
  from: string | undefined;
  yes: boolean;
  json: boolean;
  'state-dir': string;
}

/** `plan` and `run --dry-run` are the same code path. */
export async function runOrPlan(args: RunArgs, dryRun: boolean): Promise<number> {
  const runbook = loadRunbook(args.runbook, { registry });
  const selection = { ...(args.only ? { only: args.only } : {}), ...(args.from ? { from: args.from } : {}) };
  const ids = selectSteps(runbook, selection).map((s) => s.id);
  const { code } = await runWithUi(dryRun ? 'plan' : 'run', ids, args.json, (hooks) =>
    runRunbook(runbook, { registry, stateDir: args['state-dir'], yes: args.yes, dryRun, ...selection, ...hooks }),
  );
  return code;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run <runbook>',
  describe: 'Execute a runbook: plan, apply and verify each step; roll back on failure',
  builder: (y) =>
    withJson(withYes(withStateDir(y)))
      .positional('runbook', { type: 'string', demandOption: true })
      .option('dry-run', { type: 'boolean', default: false, describe: 'plan only (same as cutover plan)' })
      .option('only', { type: 'string', array: true, describe: 'run only these step ids' })
      .option('from', { type: 'string', describe: 'start at this step id' }) as never,
  handler: async (args) => {
    process.exitCode = await runOrPlan(args, args['dry-run']);
  },
};

export const planCommand: CommandModule<object, RunArgs> = {
  command: 'plan <runbook>',
  describe: 'Dry run: connect read-only and print exactly what each step would do; changes nothing',
  builder: (y) =>
    withJson(withStateDir(y))
      .positional('runbook', { type: 'string', demandOption: true })
      .option('only', { type: 'string', array: true, describe: 'plan only these step ids' })
      .option('from', { type: 'string', describe: 'start at this step id' }) as never,
  handler: async (args) => {
    process.exitCode = await runOrPlan({ ...args, yes: false }, true);
  },
};
