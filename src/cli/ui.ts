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

type Hooks = Pick<EngineOptions, 'onEvent' | 'confirm' | 'protect'>;

export async function runWithUi(
  mode: 'plan' | 'run' | 'resume' | 'rollback',
  stepIds: readonly string[],
  json: boolean,
  body: (hooks: Hooks) => Promise<RunResult>,
  jsonExtra: Readonly<Record<string, unknown>> = {},
): Promise<{ result: RunResult; code: ExitCode }> {
  let result: RunResult;
  const protect = (secrets: readonly string[]) => io.protect(secrets);
  if (json) {
    result = await body({ protect });
    io.out(JSON.stringify({ ...jsonExtra, ...toJson(result) }, null, 2));
    return { result, code: exitCodeFor(result) };
  }
  const list = new LiveList(stepIds, mode);
  list.start();
  try {
    result = await body({
      protect,
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
      `run ${result.runId}: ${statusLine(result)}`,
      `journal: ${result.journalFile}`,
      `journal head: ${result.journalHead}`,
    ].join('\n'),
  );
  if (result.error !== undefined) io.err(`\n${formatError(result.error)}`);
  return { result, code: exitCodeFor(result) };
}

/** The status as the exit code means it: a real run that "failed" under onFailure: stop is stopped, and resumable. */
function statusLine(result: RunResult): string {
  const code = exitCodeFor(result);
  if (result.status === 'failed' && code === 5) return 'failed; stopped where it is (resumable: cutover resume, or cutover rollback)';
  if (result.status === 'failed' && code === 2) return 'failed before any step ran (a connection could not be opened); nothing was changed';
  return result.status;
}

function toJson(result: RunResult): Record<string, unknown> {
  const { error, ...rest } = result;
  return { ...rest, ...(error !== undefined ? { error: formatError(error) } : {}) };
}
