/**
 * The start-up floor the CLI is measured against (issue 23): a process that
 * imports yargs and parses the same argv the same way (the same command
 * shapes, strict, help and version), and does nothing else.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

await yargs(hideBin(process.argv))
  .scriptName('cutover')
  .command({ command: 'validate <runbook>', describe: 'validate', handler: () => {} })
  .command({ command: 'run <runbook>', describe: 'run', handler: () => {} })
  .demandCommand(1)
  .strict()
  .help()
  .version('0.1.0')
  .parseAsync();
