/**
 * `cutover fleet rollback`: rolls back each target's newest run, the last
 * wave first (and, within a wave, the inventory's last target first), so
 * the canary is undone last. Each rollback is an ordinary `rollbackRun` on
 * the target's own journal, with the target's variables. With a queue
 * store (`--queue`), each target's journals come from the queue database, its
 * lease is held here meanwhile (a target a live worker runs is left alone,
 * `in-progress`), and the rollback's journal lines go to the queue database
 * as a worker's do, so `audit verify --queue` checks them.
 */
import os from 'node:os';
import { errorMessage } from '../errors.js';
import { rollbackRun } from '../engine/executor.js';
import { standing, type RunResult, type StepResult } from '../engine/result.js';
import { isLive } from '../engine/run-selection.js';
import { hasSomethingToUndo } from '../engine/state.js';
import type { Inventory } from './inventory.js';
import { FileFleetStore, FleetBusyError, type FleetEvent, type TargetHold } from './store.js';
import { fleetStore, latestRun, loadTargets, type FleetOptions } from './runner.js';

export interface TargetRollback {
  readonly name: string;
  readonly wave: string;
  /** `nothing-to-undo`: no run, or its newest run holds nothing applied. */
  readonly status: 'rolled-back' | 'nothing-to-undo' | 'in-progress' | 'needs-attention' | 'failed' | 'stopped' | 'error';
  readonly runId?: string;
  readonly message?: string;
  /** Not rolled back as a whole, yet some of its steps were. */
  readonly partly?: true;
}

export interface FleetRollbackOptions extends FleetOptions {
  readonly signal?: AbortSignal;
  /** Each target as it is done, for a front end. */
  readonly onTarget?: (result: TargetRollback) => void;
}

export async function rollbackFleet(inventory: Inventory, runbookFile: string, options: FleetRollbackOptions): Promise<TargetRollback[]> {
  const loaded = loadTargets(inventory, runbookFile, options.registry);
  options.protect?.(loaded.flatMap((l) => [...Object.values(l.target.secrets), ...l.runbook.secrets]));
  const store = fleetStore(inventory, runbookFile, options);
  if (store instanceof FileFleetStore) store.claim(runbookFile);
  const release = store.lock();
  const started = Date.now();
  store.append({ type: 'rollback.started', operator: operatorOf(options), host: os.hostname(), pid: process.pid, jobs: options.jobs ?? 1 });
  const results: TargetRollback[] = [];
  const report = (result: TargetRollback) => {
    results.push(result);
    try {
      options.onTarget?.(result);
    } catch {
      // A subscriber never breaks a rollback.
    }
  };
  try {
    for (const wave of [...inventory.waves].reverse()) {
      const targets = loaded.filter((l) => l.target.wave === wave.name).reverse();
      let next = 0;
      const one = async () => {
        while (next < targets.length && options.signal?.aborted !== true) {
          const { target, env } = targets[next++] as (typeof targets)[number];
          const base = { name: target.name, wave: wave.name };
          let result: TargetRollback;
          let hold: TargetHold;
          try {
            hold = store.hold?.(target.name) ?? { stateDir: store.targetStateDir(target.name), release: () => {} };
          } catch (error) {
            if (!(error instanceof FleetBusyError)) throw error;
            report({ ...base, status: 'in-progress', message: error.message });
            continue;
          }
          const { stateDir, journalSink } = hold;
          try {
            const latest = latestRun(stateDir, options.journalKey);
            if (latest === undefined || !hasSomethingToUndo(latest))
              result = { ...base, status: 'nothing-to-undo', ...(latest !== undefined ? { runId: latest.runId } : {}) };
            else if (isLive(latest))
              result = { ...base, status: 'in-progress', runId: latest.runId, message: `run ${latest.runId} is in progress (pid ${latest.process.pid})` };
            else {
              try {
                const run = await rollbackRun(latest.runId, {
                  registry: options.registry,
                  stateDir,
                  env,
                  operator: operatorOf(options),
                  ...(options.signal !== undefined ? { signal: options.signal } : {}),
                  ...(options.journalKey !== undefined ? { journalKey: options.journalKey } : {}),
                  ...(journalSink !== undefined ? { journalSink } : {}),
                });
                const status =
                  run.status === 'rolled-back'
                    ? 'rolled-back'
                    : run.status === 'needs-attention'
                      ? 'needs-attention'
                      : run.status === 'stopped' || run.status === 'interrupted'
                        ? 'stopped'
                        : 'failed';
                const message =
                  status === 'rolled-back'
                    ? undefined
                    : [run.error !== undefined ? errorMessage(run.error) : undefined, whatIsLeft(run)].filter((m) => m !== undefined).join('\n');
                const partly = status !== 'rolled-back' && run.steps.some((st) => st.status === 'rolled-back');
                result = { ...base, status, runId: run.runId, ...(message ? { message } : {}), ...(partly ? { partly } : {}) };
              } catch (error) {
                result = { ...base, status: 'error', runId: latest.runId, message: errorMessage(error) };
              }
            }
            report(result);
          } finally {
            hold.release();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(options.jobs ?? 1, targets.length)) }, one));
      if (options.signal?.aborted === true) break;
    }
  } finally {
    try {
      store.append({ type: 'rollback.finished', ...rollbackOutcome(inventory, results, options.signal?.aborted === true), durationMs: Date.now() - started });
    } finally {
      release();
    }
  }
  return results;
}

/**
 * A rollback that did not undo everything: what it undid and what is left,
 * the CLI's "Where things stand" on one line (the same classification:
 * engine/result.ts standing).
 */
function whatIsLeft(run: RunResult): string | undefined {
  const { rolledBack, irreversible, rollbackFailed, inPlace, unverified, stoppedWriting } = standing(run);
  const ids = (steps: readonly StepResult[]) => steps.map((s) => s.id).join(', ');
  const parts = [
    ...(rolledBack.length > 0 ? [`rolled back: ${ids(rolledBack)}`] : []),
    ...irreversible.map((s) => `still in place, cannot be rolled back: ${s.id}: ${s.rollbackSkipped?.reason ?? ''}`),
    ...rollbackFailed.map(
      (s) =>
        `rollback failed: ${s.id}${s.error !== undefined ? ` (${s.error.sqlstate !== undefined ? `${s.error.sqlstate}: ` : ''}${s.error.message.split('\n')[0] ?? ''})` : ''}`,
    ),
    ...(inPlace.length + unverified.length > 0 ? [`not rolled back yet: ${ids([...inPlace, ...unverified])}`] : []),
    ...(stoppedWriting.length > 0 ? [`stopped in the middle of: ${ids(stoppedWriting)}`] : []),
  ];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

const operatorOf = (options: FleetRollbackOptions) => options.operator ?? process.env['CUTOVER_OPERATOR'] ?? os.userInfo().username;
const undone = (r: TargetRollback) => r.status === 'rolled-back' || r.status === 'nothing-to-undo';
const someUndone = (r: TargetRollback) => r.status === 'rolled-back' || r.partly === true;

/** For the fleet's log, so `fleet status` does not show a rolled-back wave as done. */
function rollbackOutcome(
  inventory: Inventory,
  results: readonly TargetRollback[],
  aborted: boolean,
): Pick<Extract<FleetEvent, { type: 'rollback.finished' }>, 'outcome' | 'waves'> {
  const waves: Record<string, 'rolled-back' | 'partly-rolled-back' | 'not-rolled-back'> = {};
  for (const wave of inventory.waves) {
    const reached = results.filter((r) => r.wave === wave.name);
    if (reached.length === 0) continue;
    const all = inventory.targets.filter((t) => t.wave === wave.name).length;
    const done = reached.filter(undone).length;
    waves[wave.name] = done === all ? 'rolled-back' : reached.some(someUndone) ? 'partly-rolled-back' : 'not-rolled-back';
  }
  const outcome = aborted
    ? 'stopped'
    : results.length === inventory.targets.length && results.every(undone)
      ? 'rolled-back'
      : results.some(someUndone)
        ? 'partly-rolled-back'
        : 'not-rolled-back';
  return { outcome, waves };
}
