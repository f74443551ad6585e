/**
 * Which run a command means: `resume --last` and `rollback --last` take the
 * newest run that has something to resume or undo (never a refused run or a
 * dry run), and say why; `run` refuses while an unfinished run of the same
 * runbook against the same targets holds applied steps.
 */
import path from 'node:path';
import { readJournal, readJournalEdge } from '../audit/journal.js';
import { UsageError } from '../errors.js';
import { processLiveness } from './liveness.js';
import { listRunIds, runsDir } from './runs.js';
import { appliedSteps, foldJournal, hasSomethingToUndo, inFlight, isResumable, type RunState } from './state.js';

/** A run's status as a person should read it: a run whose process is gone is `interrupted`, not `running`. */
export function effectiveStatus(state: RunState): RunState['status'] {
  if (state.status !== 'running' && state.status !== 'rolling-back') return state.status;
  return processLiveness(state.process.host, state.process.pid) === 'dead' ? 'interrupted' : state.status;
}

/** Whether the process that owns the run is still at work on it. */
export function isLive(state: RunState): boolean {
  return (state.status === 'running' || state.status === 'rolling-back') && effectiveStatus(state) !== 'interrupted';
}

function readState(stateDir: string, id: string): RunState | undefined {
  try {
    return foldJournal(readJournal(path.join(runsDir(stateDir), id)));
  } catch {
    return undefined; // unreadable journals are reported when named explicitly
  }
}

export function describeProgress(state: RunState): string {
  const applied = appliedSteps(state);
  const flying = inFlight(state);
  return [
    `status ${effectiveStatus(state)}`,
    applied.length > 0 ? `applied: ${applied.join(', ')}` : 'nothing applied',
    ...(flying !== undefined ? [`in flight: ${flying.id} (${flying.phase})`] : []),
  ].join('; ');
}

export interface PickedRun {
  readonly runId: string;
  /** Why this run: printed before the command acts on it. */
  readonly reason: string;
}

/**
 * The run `resume` or `rollback` acts on: the given id, or the newest run
 * with something to resume (or to undo). Refused runs, dry runs and runs
 * still in progress are passed over, and named in the reason.
 */
export function pickRun(stateDir: string, runId: string | undefined, purpose: 'resume' | 'rollback'): PickedRun {
  const ids = listRunIds(stateDir);
  if (runId !== undefined) {
    if (!ids.includes(runId)) {
      throw new UsageError(`no run "${runId}" under ${runsDir(stateDir)}${ids.length ? ` (newest: ${ids.at(-1)})` : ''}`);
    }
    return { runId, reason: 'named on the command line' };
  }
  const skipped: string[] = [];
  for (const id of [...ids].reverse()) {
    const state = readState(stateDir, id);
    if (state === undefined) {
      skipped.push(`${id} (journal unreadable)`);
      continue;
    }
    const status = effectiveStatus(state);
    const fits = purpose === 'resume' ? isResumable(state) : hasSomethingToUndo(state);
    if (fits && !isLive(state)) {
      const what = purpose === 'resume' ? 'something to resume' : 'something to undo';
      const passed = skipped.length > 0 ? `; newer runs passed over: ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', …' : ''}` : '';
      return { runId: id, reason: `the newest run with ${what} (${describeProgress(state)})${passed}` };
    }
    skipped.push(`${id} (${state.mode === 'plan' ? 'dry run' : isLive(state) ? `in progress, pid ${state.process.pid}` : status})`);
  }
  throw new UsageError(`no run under ${runsDir(stateDir)} has anything to ${purpose}${skipped.length > 0 ? ` (runs: ${skipped.slice(0, 5).join(', ')})` : ''}`);
}

/**
 * Runs of this runbook against these targets that stopped short with steps
 * applied (or in flight): a new run must not start on top of them.
 */
export function unfinishedRuns(stateDir: string, runbookFile: string, targets: readonly string[]): RunState[] {
  const wanted = [...targets].sort().join('\n');
  return listRunIds(stateDir)
    .filter((id) => mayBeUnfinished(path.join(runsDir(stateDir), id), runbookFile, wanted))
    .map((id) => readState(stateDir, id))
    .filter((state): state is RunState => state !== undefined)
    .filter(
      (state) =>
        state.mode === 'run' &&
        state.runbookFile === runbookFile &&
        [...state.targets].sort().join('\n') === wanted &&
        state.abandoned === undefined &&
        !ENDED.some((s) => s === state.status) &&
        hasSomethingToUndo(state),
    );
}

/** Statuses after which a run has nothing left for `run` to wait on. */
const ENDED = ['succeeded', 'rolled-back', 'refused'] as const;

/**
 * False when a journal's first and last lines already rule the run out: a
 * dry run, another runbook or other targets (its run.started), or a run
 * whose last run.finished ended it for good, followed by nothing that
 * changes its state. Every `cutover run` asks this of every run in the state
 * directory; reading and folding each whole journal cost about 1 ms per run
 * (a plan of 500 relations journals 56 KB), so a state directory with a
 * few hundred rehearsals added a visible pause to every start. When in
 * doubt (a long line, an unreadable file) the whole journal decides.
 * `wanted`: the targets, sorted, one per line.
 */
export function mayBeUnfinished(runDir: string, runbookFile: string, wanted: string): boolean {
  try {
    const start = readJournalEdge(runDir, 'head')[0]?.event;
    if (start?.type === 'run.started') {
      const targets = start.connections
        .map((c) => c.target)
        .sort()
        .join('\n');
      if (start.mode !== 'run' || start.runbook.file !== runbookFile || targets !== wanted) return false;
    }
    const tail = readJournalEdge(runDir, 'tail');
    const at = tail.findLastIndex((r) => r.event.type === 'run.finished');
    const end = tail[at]?.event;
    const after = tail.slice(at + 1);
    return !(end?.type === 'run.finished' && ENDED.some((s) => s === end.status) && after.every((r) => r.event.type === 'notify.failed'));
  } catch {
    return true;
  }
}
