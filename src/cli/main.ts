#!/usr/bin/env node
/**
 * The CLI only registers commands; each lives in src/cli/commands/. Errors
 * from any command end here and become a message and an exit code.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { RunbookValidationError, TOOL_VERSION, UsageError } from '../index.js';
import { abandonCommand } from './commands/abandon.js';
import { auditCommand } from './commands/audit.js';
import { reportCommand, runsCommand } from './commands/report.js';
import { resumeCommand, rollbackCommand } from './commands/resume.js';
import { initCommand } from './commands/init.js';
import { planCommand, runCommand } from './commands/run.js';
import { schemaCommand } from './commands/schema.js';
import { statusCommand } from './commands/status.js';
import { validateCommand } from './commands/validate.js';
import { checkCommand } from './commands/check.js';
import { fleetCommand } from './commands/fleet.js';
import { ExitCode } from './exit-codes.js';
import { formatError } from './format-error.js';
import { installRedaction, io } from './io.js';

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('cutover')
    .usage('$0 <command>\n\nDeclarative, audited, reversible runbooks for database cutovers.')
    .command(initCommand)
    .command(validateCommand)
    .command(checkCommand)
    .command(planCommand)
    .command(runCommand)
    .command(resumeCommand)
    .command(rollbackCommand)
    .command(abandonCommand)
    .command(statusCommand)
    .command(runsCommand)
    .command(reportCommand)
    .command(auditCommand)
    .command(schemaCommand)
    .command(fleetCommand)
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
    .middleware((args) => {
      if (typeof args['log-file'] === 'string') io.logTo(args['log-file']);
      io.timestamps = args['timestamps'] === true;
      // listr2's colours (colorette) already honour NO_COLOR and --no-color; this covers anything else that looks.
      if (args['color'] === false) process.env['NO_COLOR'] = '1';
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
      throw error ?? new UsageError(message);
    })
    .help()
    .version(TOOL_VERSION)
    .parseAsync();
}

installRedaction();
main(hideBin(process.argv)).catch((error: unknown) => {
  io.err(formatError(error));
  const invalid = error instanceof RunbookValidationError || error instanceof UsageError;
  process.exitCode = invalid ? ExitCode.invalidInput : ExitCode.needsAttention;
});
