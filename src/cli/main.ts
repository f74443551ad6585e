#!/usr/bin/env node
/**
 * The CLI only registers commands; each lives in src/cli/commands/. Errors
 * from any command end here and become a message and an exit code.
 *
 * Start-up is paid by every call (a fleet of targets, a CI pipeline), so only
 * yargs and the command table are imported here. The module of the command
 * being run is imported on demand, and with it the library; `--version` and
 * `--help` load no command module at all. Where the command cannot be told
 * from the arguments (an option before it), every module is loaded, as before.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TOOL_VERSION } from '../version.js';
import { commandTable, type AnyCommand, type CommandEntry } from './command-table.js';

/** A yargs usage failure, turned into the library's UsageError once that is loaded. */
class YargsUsage extends Error {}

/** Lists a command in `--help` without loading its module; never the one that runs. */
function listed(entry: CommandEntry): AnyCommand {
  return {
    command: entry.command,
    describe: entry.describe,
    handler: () => {
      throw new YargsUsage(`cannot tell which command to run; put the command name first: cutover ${entry.name} ...`);
    },
  };
}

async function main(argv: string[]): Promise<void> {
  const first = argv.find((arg) => !arg.startsWith('-'));
  const named = commandTable.find((entry) => entry.name === first);
  // No word at all: --help, --version or nothing; no command can run.
  const loadAll = first !== undefined && named === undefined;
  if (first !== undefined) {
    (await import('./io.js')).installRedaction();
    // One process parses one runbook: zod's compiled fast path (built with
    // new Function on the first parse of each schema) costs more than it
    // saves here, about 30 ms of a validate.
    (await import('zod')).z.config({ jitless: true });
  }
  const commands = await Promise.all(commandTable.map((entry) => (entry === named || loadAll ? entry.load() : Promise.resolve(listed(entry)))));
  let cli = yargs(argv).scriptName('cutover').usage('$0 <command>\n\nDeclarative, audited, reversible runbooks for database cutovers.');
  // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- see AnyCommand: yargs takes each module's own argument type
  for (const command of commands) cli = cli.command(command);
  await cli
    .option('log-file', {
      type: 'string',
      global: true,
      describe: 'also append what is printed, and every run event, to this file: plain lines with timestamps, secrets redacted',
    })
    .option('timestamps', { type: 'boolean', global: true, default: false, describe: 'the live list as plain lines, each with the time' })
    .option('color', {
      type: 'boolean',
      global: true,
      default: true,
      describe: 'colour in the live list; --no-color (or NO_COLOR set) turns it off',
    })
    .middleware(async (args) => {
      const { io } = await import('./io.js');
      if (typeof args['log-file'] === 'string') io.logTo(args['log-file']);
      io.timestamps = args['timestamps'];
      // listr2's colours (colorette) already honour NO_COLOR and --no-color; this covers anything else that looks.
      if (!args['color']) process.env['NO_COLOR'] = '1';
    })
    .example('$0 validate runbook.yaml', 'check the file, connect to nothing')
    .example('$0 plan runbook.yaml --out plan.json', 'what each step would do, saved for review')
    .example('$0 run runbook.yaml --plan plan.json --label rehearsal-2', 'execute exactly the reviewed plan')
    .example('$0 rollback --dry-run --last', 'what undoing the newest run would do')
    .example('$0 report --format html --out report.html', 'the newest run for the change board')
    .demandCommand(1, 'name a command')
    .strict()
    .epilogue(
      'Exit codes: 0 ok, 1 step failed and rolled back, 2 invalid input or environment (nothing ran), 3 needs attention, 4 locked or blocked by an unfinished run, 5 stopped or interrupted (resumable), 130 a second Ctrl-C.',
    )
    .fail((message, error) => {
      // yargs passes no error for a usage mistake, whatever its types say.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      throw error ?? new YargsUsage(message);
    })
    .help()
    .version(TOOL_VERSION)
    .parseAsync();
}

async function fail(thrown: unknown): Promise<void> {
  const [{ RunbookValidationError, UsageError }, { fileProblem, formatError }, { ExitCode }, { installRedaction, io }] = await Promise.all([
    import('../index.js'),
    import('./format-error.js'),
    import('./exit-codes.js'),
    import('./io.js'),
  ]);
  installRedaction();
  const error = thrown instanceof YargsUsage ? new UsageError(thrown.message) : thrown;
  io.err(formatError(error));
  const invalid = error instanceof RunbookValidationError || error instanceof UsageError || fileProblem(error) !== undefined;
  process.exitCode = invalid ? ExitCode.invalidInput : ExitCode.needsAttention;
}

main(hideBin(process.argv)).catch(fail);
