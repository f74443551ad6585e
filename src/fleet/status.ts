/**
 * Where every target of a fleet stands, read from the fleet's log and each
 * target's own journal (verified before it is read), and approvals.
 * Reading needs no secret and no database.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { RunbookValidationError, UsageError, errorMessage } from '../errors.js';
import { effectiveStatus } from '../engine/run-selection.js';
import type { RunState } from '../engine/state.js';
import { sha256 } from '../runbook/load.js';
import type { StepRegistry } from '../step/contract.js';
import type { Inventory } from './inventory.js';
import { fleetStore, latestRun, loadTargets, type CellStatus } from './runner.js';
import { FileFleetStore, type Approval, type FleetEvent, type FleetStore } from './store.js';

/** `error`: the fleet could not run the target at all (its job failed in the queue, a worker refused it); it has no run. */
export type TargetStatus = 'pending' | 'running' | 'waiting-approval' | RunState['status'] | 'unreadable' | 'error';

export interface FleetTargetStatus {
  readonly name: string;
  readonly wave: string;
  readonly status: TargetStatus;
  readonly runId?: string;
  /** `cutover status <runId> --state-dir <this>` shows the run itself. */
  readonly stateDir: string;
  readonly steps: Readonly<Record<string, CellStatus>>;
  readonly waiting?: { readonly stepId: string; readonly question: string };
  readonly message?: string;
}

/** The last three: after `cutover fleet rollback` reached the wave. */
export type WaveStatus = 'pending' | 'waiting-approval' | 'running' | 'done' | 'halted' | 'stopped' | 'rolled-back' | 'partly-rolled-back' | 'not-rolled-back';

export interface FleetStatus {
  readonly name: string;
  readonly location: string;
  readonly runbook: string;
  /** The process running the fleet right now, if one is. */
  readonly runningPid?: number;
  readonly steps: readonly string[];
  readonly waves: readonly { readonly name: string; readonly status: WaveStatus; readonly targets: readonly string[] }[];
  readonly targets: readonly FleetTargetStatus[];
  readonly summary: Readonly<Record<string, number>>;
  readonly approvals: readonly Approval[];
  /** What last ran over the fleet (fleet run, resume or rollback), and how it ended, if it did. */
  readonly lastCommand?: 'run' | 'resume' | 'rollback';
  readonly lastOutcome?: string;
}

export interface FleetStatusOptions {
  readonly registry: StepRegistry;
  readonly stateDir?: string;
  readonly store?: FleetStore;
  readonly journalKey?: Buffer;
}

/** The runbook's step ids, from the runbook as the first target loads it, else from any journal. */
function stepIds(inventory: Inventory, runbookFile: string, registry: StepRegistry, states: readonly (RunState | undefined)[]): string[] {
  try {
    const first = inventory.targets[0];
    if (first !== undefined) return loadTargets({ ...inventory, targets: [first] }, runbookFile, registry)[0]?.runbook.steps.map((s) => s.id) ?? [];
  } catch (error) {
    if (!(error instanceof RunbookValidationError)) throw error;
  }
  return [...(states.find((s) => s !== undefined)?.order ?? [])];
}

export function fleetStatus(inventory: Inventory, runbookFile: string, options: FleetStatusOptions): FleetStatus {
  const store = fleetStore(inventory, runbookFile, options);
  if (store instanceof FileFleetStore) store.checkOwner(runbookFile);
  const pid = store.holder();
  const live = pid !== undefined;
  const events = store.events();
  // A mistyped runbook path would read as a fleet that never ran.
  if (events.length === 0 && !existsSync(runbookFile)) throw new UsageError(`runbook ${runbookFile}: no such file, and no fleet of ${inventory.file} ran it`);
  const lastStart = events.map((e) => e.type).lastIndexOf('fleet.started');
  const current = lastStart < 0 ? [] : events.slice(lastStart);
  const finished = current.find((e): e is Extract<FleetEvent, { type: 'fleet.finished' }> => e.type === 'fleet.finished');
  // A rollback after the last run: its outcome, and its word on each wave it reached.
  const rollbackStart = events.map((e) => e.type).lastIndexOf('rollback.started');
  const rollback =
    rollbackStart > lastStart
      ? { finished: events.slice(rollbackStart).find((e): e is Extract<FleetEvent, { type: 'rollback.finished' }> => e.type === 'rollback.finished') }
      : undefined;

  const states = new Map<string, RunState | undefined | Error>();
  const dirs = store.targetStateDirs(inventory.targets.map((t) => t.name));
  const dirOf = (name: string) => dirs.get(name) ?? store.targetStateDir(name);
  for (const t of inventory.targets) {
    try {
      states.set(t.name, latestRun(dirOf(t.name), options.journalKey));
    } catch (error) {
      states.set(t.name, error instanceof Error ? error : new Error(String(error)));
    }
  }
  const readable = [...states.values()].map((s) => (s instanceof Error ? undefined : s));
  const steps = stepIds(inventory, runbookFile, options.registry, readable);

  const targets = inventory.targets.map((t): FleetTargetStatus => {
    const state = states.get(t.name);
    const stateDir = dirOf(t.name);
    if (state instanceof Error) {
      return { name: t.name, wave: t.wave, status: 'unreadable', stateDir, steps: {}, message: errorMessage(state) };
    }
    // Waiting for an approval: the last word about this target in the live fleet's log.
    const last = [...current].reverse().find((e) => 'target' in e && e.target === t.name);
    const waiting = live && last?.type === 'target.waiting' ? { stepId: last.stepId, question: last.question } : undefined;
    const cells: Record<string, CellStatus> = {};
    for (const id of steps) {
      const step = state?.steps.get(id);
      cells[id] = waiting?.stepId === id ? 'waiting' : (step?.status ?? 'pending');
    }
    if (state === undefined) {
      // No run: pending, unless this fleet run tried the target and could not run it.
      const ended = last?.type === 'target.finished' && last.runId === undefined && last.status === 'error' ? last : undefined;
      return {
        name: t.name,
        wave: t.wave,
        status: ended !== undefined ? 'error' : 'pending',
        stateDir,
        steps: cells,
        ...(ended?.message !== undefined ? { message: ended.message } : {}),
      };
    }
    const status = waiting !== undefined ? 'waiting-approval' : effectiveStatus(state);
    const failed = [...state.steps.values()].find((s) => s.error !== undefined);
    return {
      name: t.name,
      wave: t.wave,
      status,
      runId: state.runId,
      stateDir,
      steps: cells,
      ...(waiting !== undefined ? { waiting } : {}),
      ...(failed?.error !== undefined ? { message: `${failed.id}: ${failed.error.message}` } : {}),
    };
  });

  const waves = inventory.waves.map((w) => {
    const said = [...current].reverse().find((e) => 'wave' in e && e.wave === w.name && e.type.startsWith('wave.'));
    let status: WaveStatus = 'pending';
    const undone = rollback?.finished?.waves[w.name];
    if (undone !== undefined) status = undone;
    else if (said?.type === 'wave.finished') status = said.outcome;
    else if (said?.type === 'wave.waiting') status = live ? 'waiting-approval' : 'stopped';
    else if (said?.type === 'wave.started' || said?.type === 'wave.approved') status = live ? 'running' : 'stopped';
    else if (targets.filter((t) => t.wave === w.name).every((t) => t.status === 'succeeded')) status = 'done';
    return { name: w.name, status, targets: w.targets };
  });

  const summary: Record<string, number> = {};
  for (const t of targets) summary[t.status] = (summary[t.status] ?? 0) + 1;
  return {
    name: inventory.name,
    location: store.location,
    runbook: runbookFile,
    ...(pid !== undefined ? { runningPid: pid } : {}),
    steps,
    waves,
    targets,
    summary,
    approvals: store.approvals(),
    ...(rollback !== undefined
      ? { lastCommand: 'rollback' as const, ...(rollback.finished !== undefined ? { lastOutcome: rollback.finished.outcome } : {}) }
      : lastStart >= 0
        ? {
            lastCommand: (events[lastStart] as Extract<FleetEvent, { type: 'fleet.started' }>).command,
            ...(finished !== undefined ? { lastOutcome: finished.outcome } : {}),
          }
        : {}),
  };
}

/**
 * Records an approval for a wave (its gate, and its targets' confirm steps)
 * or a target (its confirm steps); `step` narrows it to one confirm step.
 * The running fleet picks it up within its poll interval.
 */
export function approveFleet(
  inventory: Inventory,
  runbookFile: string,
  name: string,
  options: FleetStatusOptions & { readonly step?: string; readonly operator?: string },
): Approval {
  const isWave = inventory.waves.some((w) => w.name === name);
  const isTarget = inventory.targets.some((t) => t.name === name);
  if (!isWave && !isTarget) {
    throw new UsageError(`"${name}" is neither a wave nor a target of ${inventory.file} (waves: ${inventory.waves.map((w) => w.name).join(', ')})`);
  }
  if (options.step !== undefined) {
    const steps = stepIds(inventory, runbookFile, options.registry, []);
    if (steps.length > 0 && !steps.includes(options.step)) throw new UsageError(`no step "${options.step}" in ${runbookFile} (steps: ${steps.join(', ')})`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(runbookFile);
  } catch (error) {
    throw new UsageError(`cannot read runbook ${runbookFile}: ${errorMessage(error)}`);
  }
  const store = fleetStore(inventory, runbookFile, options);
  return store.approve({
    name,
    ...(options.step !== undefined ? { step: options.step } : {}),
    operator: options.operator ?? process.env['CUTOVER_OPERATOR'] ?? os.userInfo().username,
    // What was reviewed: a runbook changed since must be approved again.
    runbookSha256: sha256(bytes),
  });
}

/** The fleet's own log, every run and resume of it, oldest first (for reports). */
export function fleetLog(inventory: Inventory, runbookFile: string, options: Pick<FleetStatusOptions, 'stateDir' | 'store'>): FleetEvent[] {
  return fleetStore(inventory, runbookFile, options).events();
}
