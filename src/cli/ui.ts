/**
 * Runs an engine call with the live list subscribed (or silently for --json),
 * then prints the outcome. Returns the exit code.
 */
import {
  InterruptedError,
  PlanBlockedError,
  StepFailedError,
  TargetChangedError,
  formatDuration,
  standing,
  type EngineOptions,
  type RunEvent,
  type RunResult,
} from '../index.js';
import { formatError, formatSerialized } from './format-error.js';
import { formatFindings, formatRunResult } from './format-plan.js';
import { io } from './io.js';
import { LiveList, PHASE_WORDS } from './live-list.js';
import { exitCodeFor } from './options.js';
import { ExitCode } from './exit-codes.js';

type Hooks = Pick<EngineOptions, 'onEvent' | 'confirm' | 'protect' | 'signal'>;

/** Exit code of a second Ctrl-C: out at once, as shells expect of SIGINT. */
const EXIT_AT_ONCE = 130;

/**
 * First SIGINT/SIGTERM: the engine cancels the statement in flight, journals
 * run.interrupted and stops (exit 5). A second one exits at once; every
 * journal line is already written to the file (and each that precedes a
 * change fsync'ed), so the journal stays whole.
 */
async function withInterrupts<T>(body: (signal: AbortSignal, interrupt: (signal: NodeJS.Signals) => void) => Promise<T>): Promise<T> {
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
    return await body(controller.signal, onSignal);
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
  const protect = (secrets: readonly string[]) => {
    io.protect(secrets);
  };
  if (json) {
    result = await withInterrupts((signal) =>
      body({
        protect,
        signal,
        onEvent: (event) => {
          io.log(eventLine(event));
        },
      }),
    );
    io.out(JSON.stringify({ ...jsonExtra, ...toJson(result) }, null, 2));
    return { result, code: exitCodeFor(result) };
  }
  const list = new LiveList(stepIds, mode, { timestamps: io.timestamps });
  list.start();
  try {
    result = await withInterrupts((signal, interrupt) => {
      signal.addEventListener('abort', () => {
        list.interrupted(signal.reason instanceof InterruptedError ? signal.reason.signal : 'SIGINT');
      });
      /**
       * At the prompt the terminal is in raw mode: Ctrl-C arrives as a key
       * and cancels the prompt instead of raising SIGINT. It means what it
       * means everywhere else: stop here, resumable, nothing rolled back.
       */
      const confirm = async (question: string, stepId: string): Promise<boolean> => {
        try {
          return await list.ask(question, stepId, signal);
        } catch (error) {
          if (!signal.aborted) interrupt('SIGINT');
          throw signal.reason instanceof Error ? signal.reason : error;
        }
      };
      return body({
        protect,
        signal,
        onEvent: (event) => {
          io.log(eventLine(event));
          list.handle(event);
        },
        ...(io.interactive() ? { confirm } : {}),
      });
    });
  } finally {
    await list.done();
  }
  if (mode === 'plan') io.out(formatRunResult(result, `\nPlan (nothing was changed):`));
  // Not after a resume: the steps an earlier attempt completed would show what they found back then.
  else if (mode === 'run') {
    const findings = formatFindings(result);
    if (findings !== undefined) io.out(findings);
  }
  const screen = afterRun(result, mode);
  if (screen !== undefined) io.err(screen.explain);
  io.out(
    [
      '',
      `run ${result.runId}: ${statusLine(result)}`,
      `journal: ${result.journalFile}`,
      `journal head: ${result.journalHead}`,
      // The command on a line of its own: at 120 columns the sentence around it wrapped mid-hash.
      '  record it in the change ticket; this proves the journal still ends there:',
      `  cutover audit verify ${result.runId} --head ${result.journalHead}`,
    ].join('\n'),
  );
  if (screen !== undefined && screen.next.length > 0) io.err(screen.next);
  return { result, code: exitCodeFor(result) };
}

/** The status as the exit code means it: a real run that "failed" under onFailure: stop is stopped, and resumable. */
function statusLine(result: RunResult): string {
  const code = exitCodeFor(result);
  if (result.status === 'failed' && code === 5) return 'failed; stopped where it is (resumable: cutover resume, or cutover rollback)';
  if (result.status === 'failed' && code === 2) {
    const why =
      result.error instanceof TargetChangedError ? 'a connection reaches another database than the one the run changed' : 'a connection could not be opened';
    // A resume or rollback that could not start: what earlier attempts applied is still there.
    return result.steps.some((s) => s.applied === true)
      ? `not continued: ${why}; nothing was done in this attempt`
      : `failed before any step ran (${why}); nothing was changed`;
  }
  return result.status;
}

function toJson(result: RunResult): Record<string, unknown> {
  const { error, ...rest } = result;
  return { ...rest, ...(error !== undefined ? { error: formatError(error) } : {}) };
}

/** One engine event as a line of the log file: `step.failed compare (plan, 1.2s): ...`. */
export function eventLine(event: RunEvent): string {
  const parts: string[] = [];
  if ('stepId' in event) parts.push(event.stepId);
  if ('connection' in event) parts.push(event.connection);
  if ('phase' in event) parts.push(`(${event.phase})`);
  if (event.type === 'step.completed') parts.push(event.verified ? `verified in ${formatDuration(event.durationMs)}` : 'nothing to verify');
  else if ('durationMs' in event && typeof event.durationMs === 'number') parts.push(formatDuration(event.durationMs));
  if ('status' in event) parts.push(event.status);
  if ('runId' in event) parts.push(event.runId);
  if ('reason' in event) parts.push(`: ${event.reason}`);
  if ('error' in event) parts.push(`: ${event.error.sqlstate ? `${event.error.sqlstate} ` : ''}${event.error.message}`);
  if (event.type === 'step.progress') parts.push(`: ${event.message}`);
  return `${event.type} ${parts.join(' ')}`.replaceAll(' :', ':').trimEnd();
}

/** The failing step by id, kind and connection(s), then its cause (blockers once, SQLSTATE, hint). */
function cause(result: RunResult, mode: 'plan' | 'run' | 'resume' | 'rollback'): string[] {
  const error = result.error;
  if (error === undefined) return [];
  if (!(error instanceof StepFailedError)) return ['', formatError(error)];
  const whereOf = (step: RunResult['steps'][number] | undefined) =>
    step === undefined
      ? ''
      : ` (${step.kind}${step.connections.length > 0 ? `, ${step.connections.length === 1 ? 'connection' : 'connections'} ${step.connections.join(', ')}` : ''})`;
  const where = whereOf(result.steps.find((s) => s.id === error.stepId));
  const blockers = (n: number) => `${n} blocker${n === 1 ? '' : 's'}`;
  if (mode === 'plan' && error.cause instanceof PlanBlockedError) {
    // The plan above lists its blockers (`! blocked:`): name the steps, do not repeat them.
    const blocked = result.steps.filter((s) => (s.plan?.blockers?.length ?? 0) > 0);
    if (blocked.length > 1)
      return [
        '',
        `✖ ${blocked.length} steps cannot be applied, each marked "! blocked" in its plan above:`,
        ...blocked.map((s) => `  ${s.id}${whereOf(s)}: ${blockers(s.plan?.blockers?.length ?? 0)}`),
      ];
    return ['', `✖ step "${error.stepId}"${where} cannot be applied: ${blockers(error.cause.blockers.length)}, marked "! blocked" in its plan above`];
  }
  const body = error.cause instanceof PlanBlockedError ? ['blocked:', ...error.cause.blockers.map((b) => `  - ${b}`)] : formatError(error.cause).split('\n');
  return ['', `✖ step "${error.stepId}"${where} failed while ${PHASE_WORDS[error.phase]}:`, ...body.map((l) => `  ${l}`)];
}

/** What is in place now, step by step, after anything but success. */
function whereItStands(result: RunResult): string[] {
  const named = (s: RunResult['steps'][number]) => `${s.id} (${s.kind})`;
  const { rolledBack, irreversible, rollbackFailed, inPlace, unverified, stoppedWriting, stoppedReading } = standing(result);
  const lines: string[] = [];
  if (rolledBack.length > 0) lines.push(`  rolled back: ${rolledBack.map(named).join(', ')}`);
  for (const s of irreversible) lines.push(`  still in place, cannot be rolled back: ${named(s)}: ${s.rollbackSkipped?.reason ?? ''}`);
  for (const s of rollbackFailed) {
    lines.push(`  rollback failed, may be partly undone: ${named(s)}`);
    if (s.error !== undefined)
      lines.push(
        ...formatSerialized(s.error)
          .split('\n')
          .map((l) => `    ${l}`),
      );
  }
  if (inPlace.length > 0) lines.push(`  applied and still in place: ${inPlace.map(named).join(', ')}`);
  if (unverified.length > 0) lines.push(`  applied and still in place, but its verification failed: ${unverified.map(named).join(', ')}`);
  if (stoppedWriting.length > 0)
    lines.push(
      `  stopped in the middle of: ${stoppedWriting.map(named).join(', ')} (its transaction, if any, was rolled back; what it recorded before writing is kept)`,
    );
  if (stoppedReading.length > 0) lines.push(`  stopped at: ${stoppedReading.map(named).join(', ')} (it writes nothing)`);
  if (lines.length === 0) lines.push('  nothing of this run is in place');
  return ['', 'Where things stand:', ...lines];
}

/** The next command, as the outcome allows. */
function next(result: RunResult, mode: 'run' | 'resume' | 'rollback'): string[] {
  const id = result.runId;
  const code = exitCodeFor(result);
  const rerun = result.runbookFile !== undefined ? `cutover run ${result.runbookFile}` : 'cutover run <runbook>';
  switch (result.status) {
    case 'rolled-back':
      if (mode === 'rollback') return [];
      // A saved plan that no longer matches: the next run needs a new plan, reviewed again, not the same file.
      if (result.steps.some((s) => s.error?.name === 'PlanDriftError')) {
        const file = result.runbookFile ?? '<runbook>';
        return ['', 'Next: plan again, review the new plan, then run it:', `  cutover plan ${file} --out plan.json`, `  cutover run ${file} --plan plan.json`];
      }
      return ['', 'Next: fix the cause, then run the runbook again:', `  ${rerun}`];
    case 'needs-attention': {
      const failed = result.steps.filter((s) => s.status === 'rollback-failed');
      const irreversible = result.steps.filter((s) => s.rollbackSkipped?.irreversible === true);
      return [
        '',
        'Next:',
        ...(failed.length > 0 ? [`  fix why the rollback of ${failed.map((s) => s.id).join(', ')} failed, then continue it: cutover rollback ${id}`] : []),
        ...(irreversible.length > 0 ? [`  undo ${irreversible.map((s) => s.id).join(', ')} by hand if it must be undone: cutover cannot`] : []),
        ...(failed.length === 0 && irreversible.length === 0 ? [`  check by hand what is in place: cutover status ${id} shows each step`] : []),
      ];
    }
    case 'stopped':
    case 'interrupted':
    case 'failed':
      if (result.error instanceof TargetChangedError && mode !== 'run')
        return ['', `Next: point connection "${result.error.connection}" back at the database the run changed, then: cutover ${mode} ${id}`];
      if (code !== ExitCode.stopped) return [];
      // With nothing applied, nothing to undo: rollback would only say so.
      if (!result.steps.some((s) => s.readsOnly !== true && (s.applied === true || s.status === 'applying')))
        return [
          '',
          'Next, one of (nothing is applied yet):',
          `  cutover resume ${id}      continue from where it stopped`,
          `  cutover abandon ${id} --reason "..."   give up on it`,
        ];
      return [
        '',
        'Next, one of:',
        `  cutover resume ${id}      continue from where it stopped`,
        `  cutover rollback ${id}    undo what is applied`,
        `  cutover abandon ${id} --reason "..."   give up on it (it can still be rolled back)`,
      ];
    default:
      return [];
  }
}

/** What a person needs after the list: the cause once and where things stand, then (after the journal lines) the next command. */
function afterRun(result: RunResult, mode: 'plan' | 'run' | 'resume' | 'rollback'): { readonly explain: string; readonly next: string } | undefined {
  if (result.status === 'succeeded' || result.status === 'planned') return undefined;
  if (mode === 'plan') return { explain: [...cause(result, mode), '', 'Nothing was applied (a plan runs read-only).'].join('\n'), next: '' };
  // Refused before any step ran: the cause says why; nothing is in place.
  if (result.status === 'refused') return { explain: [...cause(result, mode), '', 'Nothing was changed: the run did not start a step.'].join('\n'), next: '' };
  return { explain: [...cause(result, mode), ...whereItStands(result)].join('\n'), next: next(result, mode).join('\n') };
}
