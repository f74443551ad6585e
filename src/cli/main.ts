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
  const commands = await Promise.all(
    commandTable.map((entry) => (entry === named || loadAll ? entry.load() : Promise.resolve(listed(entry)))),
  );
  let cli = yargs(argv)
    .scriptName('cutover')
    .usage('$0 <command>\n\nDeclarative, audited, reversible runbooks for database cutovers.');
  for (const command of commands) cli = cli.command(command);
  await cli
    .demandCommand(1, 'name a command')
    .strict()
    .epilogue(
      'Exit codes: 0 ok, 1 step failed and rolled back, 2 invalid input or environment (nothing ran), 3 needs attention, 4 locked or blocked by an unfinished run, 5 stopped or interrupted (resumable), 130 a second Ctrl-C.',
    )
    .fail((message, error) => {
      throw error ?? new YargsUsage(message);
    })
    .help()
    .version(TOOL_VERSION)
    .parseAsync();
}

async function fail(thrown: unknown): Promise<void> {
  const [{ RunbookValidationError, UsageError }, { formatError }, { ExitCode }, { installRedaction, io }] = await Promise.all([
    import('../index.js'),
    import('./format-error.js'),
    import('./exit-codes.js'),
    import('./io.js'),
  ]);
  installRedaction();
  const error = thrown instanceof YargsUsage ? new UsageError(thrown.message) : thrown;
  io.err(formatError(error));
  const invalid = error instanceof RunbookValidationError || error instanceof UsageError;
  process.exitCode = invalid ? ExitCode.invalidInput : ExitCode.needsAttention;
}

main(hideBin(process.argv)).catch(fail);
