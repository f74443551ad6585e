import type { CommandModule } from 'yargs';
import { loadRunbook, registry } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';

export const validateCommand: CommandModule<object, { runbook: string }> = {
  command: 'validate <runbook>',
  describe: 'Check a runbook file: YAML, schema, ids and connection references (connects to nothing)',
  builder: (y) => y.positional('runbook', { type: 'string', demandOption: true }),
  handler: (args) => {
    const runbook = loadRunbook(args.runbook, { registry });
    io.protect(runbook.secrets);
    for (const warning of runbook.warnings) io.err(`warning: ${warning}`);
    io.out(
      `${args.runbook}: valid: "${runbook.name}", ${runbook.steps.length} step(s): ${runbook.steps.map((s) => `${s.id} [${s.kind}]`).join(', ')}`,
    );
    process.exitCode = ExitCode.ok;
  },
};
