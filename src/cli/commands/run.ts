import type { Argv, CommandModule } from 'yargs';
import {
  UsageError,
  checkSavedPlan,
  loadRunbook,
  makeSavedPlan,
  parseDuration,
  preflight,
  readSavedPlan,
  registry,
  runRunbook,
  selectSteps,
  type SavedPlan,
} from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { deprecationLines } from '../format-error.js';
import { formatPreflight } from './check.js';
import { withJson, withStateDir, withYes, type ArgsOf } from '../options.js';
import { runWithUi } from '../ui.js';

/** What `plan` and `run` both take. */
const planOrRunOptions = <T>(y: Argv<T>) =>
  withJson(withStateDir(y))
    .positional('runbook', { type: 'string', demandOption: true, describe: 'the runbook file (YAML)' })
    .option('only', { type: 'string', array: true, describe: 'only these step ids' })
    .option('from', { type: 'string', describe: 'start at this step id' });

const planBuilder = (y: Argv) =>
  planOrRunOptions(y)
    .option('out', { type: 'string', describe: 'save the plan to this file, for review and cutover run --plan' })
    .example('$0 plan runbook.yaml', 'what each step would do, read-only')
    .example('$0 plan runbook.yaml --out plan.json', 'save it for review; cutover run --plan executes exactly it');

const runBuilder = (y: Argv) =>
  withYes(planOrRunOptions(y))
    .option('dry-run', { type: 'boolean', default: false, describe: 'plan only (same as cutover plan)' })
    .option('plan', { type: 'string', describe: 'execute exactly this saved plan (cutover plan --out); stop where the state drifted' })
    .option('max-plan-age', { type: 'string', default: '24h', describe: 'refuse a saved plan older than this' })
    .option('ignore-check', {
      type: 'boolean',
      default: false,
      describe: 'start even though the preflight check found problems (a connection that cannot be opened still stops it)',
    })
    .option('label', { type: 'string', describe: 'a name for this run in reports, e.g. rehearsal-3' })
    .option('environment', { type: 'string', describe: 'where it runs, e.g. staging or production' })
    .option('notify', {
      type: 'string',
      array: true,
      describe: "webhook URL(s) to POST run events to, besides the runbook's notify: (run started, step failed, waiting for confirmation, finished)",
    })
    .example('$0 run runbook.yaml --label rehearsal-2 --environment staging', 'a rehearsal, named for reports and --compare')
    .example('$0 run runbook.yaml --plan plan.json', 'execute exactly a reviewed plan; stop where the state drifted')
    .example('$0 run runbook.yaml --yes --log-file cutover.log', 'no prompts (CI); a timestamped log besides the terminal');

type PlanArgs = ArgsOf<typeof planBuilder>;
type RunArgs = ArgsOf<typeof runBuilder>;
/** `plan` has no --yes or --plan; `run` has no --out. */
type RunOrPlanArgs = Omit<PlanArgs, 'out'> & Partial<Pick<PlanArgs, 'out'>> & Partial<RunArgs>;

/** `plan` and `run --dry-run` are the same code path. */
export async function runOrPlan(args: RunOrPlanArgs, dryRun: boolean): Promise<number> {
  const runbook = loadRunbook(args.runbook, { registry });
  io.protect(runbook.secrets);
  for (const line of deprecationLines(runbook)) io.err(line);
  const selection = { ...(args.only ? { only: args.only } : {}), ...(args.from ? { from: args.from } : {}) };
  const selected = selectSteps(runbook, selection);
  const ids = selected.map((s) => s.id);
  // Preflight first: a wrong password or a missing privilege shows up here, not inside the window.
  const check = await preflight(runbook, {
    registry,
    // Only a selection narrows which connections open: a whole run checks every connection, as `check` does.
    ...(args.only !== undefined || args.from !== undefined ? { steps: selected } : {}),
    protect: (secrets) => {
      io.protect(secrets);
    },
  });
  const checkFailed = !check.ok;
  if (!args.json && (dryRun || checkFailed)) io.err(`${formatPreflight(check)}\n`);
  // The table lists connection warnings (a readable password file); without it, say them anyway.
  else if (!args.json) for (const c of check.connections) for (const warning of c.warnings) io.err(`warning: ${warning}`);
  if (!check.connectionsOk) {
    // Nothing was started or journaled: the environment is wrong, not the run.
    if (args.json) io.out(JSON.stringify({ check }, null, 2));
    io.err(
      `${dryRun ? 'plan' : 'run'} not started: ${check.connections
        .filter((c) => c.status === 'failed')
        .map((c) => `connection "${c.name}" could not be opened`)
        .join('; ')}`,
    );
    return ExitCode.invalidInput;
  }
  // What check calls a problem (a rollback program missing, a privilege lacking) would hurt inside the window.
  if (!dryRun && checkFailed && args['ignore-check'] !== true) {
    if (args.json) io.out(JSON.stringify({ check }, null, 2));
    io.err('run not started: the check above found problems to fix; fix them, or start anyway with --ignore-check');
    return ExitCode.invalidInput;
  }
  let savedPlan: SavedPlan | undefined;
  if (args.plan !== undefined) {
    const maxAge = parseDuration(args['max-plan-age'] ?? '24h');
    if (maxAge === undefined) throw new UsageError(`--max-plan-age: expected a duration such as 30m or 24h, got ${args['max-plan-age']}`);
    savedPlan = readSavedPlan(args.plan);
    checkSavedPlan(savedPlan, runbook, maxAge);
  }
  const { result, code } = await runWithUi(
    dryRun ? 'plan' : 'run',
    ids,
    args.json,
    (hooks) =>
      runRunbook(runbook, {
        registry,
        stateDir: args['state-dir'],
        yes: args.yes ?? false,
        dryRun,
        ...selection,
        ...(savedPlan !== undefined ? { savedPlan } : {}),
        ...(args.label !== undefined ? { label: args.label } : {}),
        ...(args.environment !== undefined ? { environment: args.environment } : {}),
        ...(args.notify !== undefined ? { notify: args.notify } : {}),
        ...hooks,
      }),
    { check },
  );
  if (dryRun && args.out !== undefined) {
    if (result.status !== 'planned') {
      io.err(`plan not saved to ${args.out}: not every step could be planned`);
      return code;
    }
    io.writeFile(args.out, `${JSON.stringify(makeSavedPlan(runbook, result), null, 2)}\n`);
    io.err(`plan saved to ${args.out}; execute exactly it with: cutover run ${args.runbook} --plan ${args.out}`);
  }
  // A plan that is fine but a preflight that is not: the environment must be fixed before the run.
  if (dryRun && checkFailed && code === ExitCode.ok) return ExitCode.invalidInput;
  return code;
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: 'plan <runbook>',
  describe: 'Dry run: connect read-only and print exactly what each step would do; changes nothing',
  builder: planBuilder,
  handler: async (args) => {
    process.exitCode = await runOrPlan(args, true);
  },
};

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run <runbook>',
  describe: 'Execute a runbook: plan, apply and verify each step; roll back on failure',
  builder: runBuilder,
  handler: async (args) => {
    process.exitCode = await runOrPlan(args, args['dry-run']);
  },
};
