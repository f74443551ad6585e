import type { CommandModule } from 'yargs';
// runbooks.js, not index.js: validating loads neither the engine nor the fleet.
import { RunbookValidationError, loadRunbook, registry } from '../../runbooks.js';
import { withJson } from '../json-option.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { deprecationLines, formatIssue } from '../format-error.js';

export const validateCommand: CommandModule<object, { runbook: string; json: boolean }> = {
  command: 'validate <runbook>',
  describe: 'Check a runbook file: YAML, schema, ids and connection references (connects to nothing)',
  builder: (y) =>
    withJson(y)
      .positional('runbook', { type: 'string', demandOption: true, describe: 'the runbook file (YAML)' })
      .example('$0 validate runbook.yaml', 'file:line:column for every problem'),
  handler: (args) => {
    if (args.json) {
      process.exitCode = validateJson(args.runbook);
      return;
    }
    const runbook = loadRunbook(args.runbook, { registry });
    io.protect(runbook.secrets);
    for (const warning of runbook.warnings) io.err(`warning: ${warning}`);
    for (const line of deprecationLines(runbook)) io.err(line);
    io.out(`${args.runbook}: valid: "${runbook.name}", ${runbook.steps.length} step(s): ${runbook.steps.map((s) => `${s.id} [${s.kind}]`).join(', ')}`);
    process.exitCode = ExitCode.ok;
  },
};

/** `validate --json`: {valid, name, steps, warnings, deprecations} or {valid: false, issues with file, line, column, path, message}. */
function validateJson(file: string): number {
  try {
    const runbook = loadRunbook(file, { registry });
    io.protect(runbook.secrets);
    io.out(
      JSON.stringify(
        {
          valid: true,
          file,
          name: runbook.name,
          steps: runbook.steps.map((s) => ({ id: s.id, kind: s.kind, line: s.line })),
          warnings: runbook.warnings,
          deprecations: runbook.deprecations.map((d) => ({
            file: d.position.file,
            line: d.position.line,
            column: d.position.column,
            path: d.path,
            message: d.message,
            text: formatIssue(d),
          })),
        },
        null,
        2,
      ),
    );
    return ExitCode.ok;
  } catch (error) {
    if (!(error instanceof RunbookValidationError)) throw error;
    const issues = error.issues.map((i) => ({ file: i.position.file, line: i.position.line, column: i.position.column, path: i.path, message: i.message }));
    io.out(JSON.stringify({ valid: false, file, issues }, null, 2));
    return ExitCode.invalidInput;
  }
}
