/**
 * Runs an engine call with the live list subscribed (or silently for --json),
 * then prints the outcome. Returns the exit code.
 */
import { InterruptedError, type EngineOptions, type RunResult } from '../index.js';
import { formatError } from './format-error.js';
import { formatRunResult } from './format-plan.js';
import { io } from './io.js';
import { LiveList } from './live-list.js';
import { exitCodeFor } from './options.js';
import type { ExitCode } from './exit-codes.js';

type Hooks = Pick<EngineOptions, 'onEvent' | 'confirm' | 'protect' | 'signal'>;

/** Exit code of a second Ctrl-C: out at once, as shells expect of SIGINT. */
const EXIT_AT_ONCE = 130;

/**
 * First SIGINT/SIGTERM: the engine cancels the statement in flight, journals
 * run.interrupted and stops (exit 5). A second one exits at once; every
 * journal line is already fsync'ed, so the journal stays whole.
 */
async function withInterrupts<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received > 1) {
      io.err(`\n${signal} again: exiting now. The journal is consistent; cutover status shows where the run is.`);
      process.exit(EXIT_AT_ONCE);
    }
    io.err(`\n${signal}: cancelling the statement in flight and stopping; press Ctrl-C again to exit at once`);
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

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
    result = await withInterrupts((signal) => body({ protect, signal }));
    io.out(JSON.stringify({ ...jsonExtra, ...toJson(result) }, null, 2));
    return { result, code: exitCodeFor(result) };
  }
  const list = new LiveList(stepIds, mode);
  list.start();
  try {
    result = await withInterrupts((signal) =>
      body({
      protect,
      signal,
      onEvent: (event) => list.handle(event),
      ...(io.interactive() ? { confirm: (question: string, stepId: string) => list.ask(question, stepId) } : {}),
    }),
    );
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
      `  (record it in the change ticket: cutover audit verify ${result.runId} --head ${result.journalHead} proves the journal still ends there)`,
    ].join('\n'),
  );
  if (result.error !== undefined) io.err(`\n${formatError(result.error)}`);
  if (mode !== 'plan' && (result.status === 'interrupted' || result.status === 'stopped')) io.err(whereItStands(result));
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

/** What is in place after a run stopped short, and the two ways on. */
function whereItStands(result: RunResult): string {
  const applied = result.steps.filter((s) => s.status === 'applied' || s.status === 'completed').map((s) => `${s.id} (${s.kind})`);
  const unfinished = result.steps.filter((s) => s.status === 'failed' || s.status === 'applying').map((s) => s.id);
  return [
    '',
    applied.length > 0 ? `applied and still in place: ${applied.join(', ')}` : 'nothing applied is in place',
    ...(unfinished.length > 0 ? [`stopped in: ${unfinished.join(', ')} (its transaction, if any, was rolled back; what it recorded before writing is kept)`] : []),
    `continue: cutover resume ${result.runId}`,
    `undo:     cutover rollback ${result.runId}`,
  ].join('\n');
}
