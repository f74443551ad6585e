/**
 * Runs an engine call with the live list subscribed (or silently for --json),
 * then prints the outcome. Returns the exit code.
 */
import type { EngineOptions, RunResult } from '../index.js';
import { formatError } from './format-error.js';
import { formatRunResult } from './format-plan.js';
import { io } from './io.js';
import { LiveList } from './live-list.js';
import { exitCodeFor } from './options.js';
import type { ExitCode } from './exit-codes.js';

type Hooks = Pick<EngineOptions, 'onEvent' | 'confirm'>;

export async function runWithUi(
  mode: 'plan' | 'run' | 'resume' | 'rollback',
  stepIds: readonly string[],
  json: boolean,
  body: (hooks: Hooks) => Promise<RunResult>,
): Promise<{ result: RunResult; code: ExitCode }> {
  let result: RunResult;
  if (json) {
    result = await body({});
    io.out(JSON.stringify(toJson(result), null, 2));
    return { result, code: exitCodeFor(result) };
  }
  const list = new LiveList(stepIds, mode);
  list.start();
  try {
    result = await body({
      onEvent: (event) => list.handle(event),
      ...(io.interactive() ? { confirm: (question: string, stepId: string) => list.ask(question, stepId) } : {}),
    });
  } finally {
    await list.done();
  }
  if (mode === 'plan') io.out(formatRunResult(result, `\nPlan (nothing was changed):`));
  io.out(
    [
      '',
      `run ${result.runId}: ${result.status}`,
      `journal: ${result.journalFile}`,
      `journal head: ${result.journalHead}`,
      `  (record it in the change ticket: cutover audit verify ${result.runId} --head ${result.journalHead} proves the journal still ends there)`,
    ].join('\n'),
  );
  if (result.error !== undefined) io.err(`\n${formatError(result.error)}`);
  return { result, code: exitCodeFor(result) };
}

function toJson(result: RunResult): unknown {
  const { error, ...rest } = result;
  return { ...rest, ...(error !== undefined ? { error: formatError(error) } : {}) };
}
