/**
 * One runbook across many databases. Each target's run is an ordinary run
 * (its own journal, lock and resume) made through the library API; the
 * fleet decides only which target starts when: waves in order, `--jobs` and
 * each wave's `parallel`, concurrency groups, `maxFailures`, and approvals.
 *
 * The library reports, the CLI talks: everything here returns data and sends
 * typed events to `onEvent`; nothing prints.
 */
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, JournalUntrustedError, RunbookValidationError, errorMessage, type ValidationIssue } from '../errors.js';
import { loadRunbook, type Runbook } from '../runbook/load.js';
import type { StepRegistry } from '../step/contract.js';
import { planRunbook, resumeRun, runRunbook, loadRunState, type RunOptions, type RunResult } from '../engine/executor.js';
import type { EngineOptions } from '../engine/run-context.js';
import { effectiveStatus } from '../engine/run-selection.js';
import { listRunIds } from '../engine/runs.js';
import type { RunState, StepStatus } from '../engine/state.js';
import { readRegularFile, valueFileLimit } from '../files.js';
import { inParallel } from '../parallel.js';
import { Redactor } from '../audit/redact.js';
import { allowedFailures, type Inventory, type Target, type Wave } from './inventory.js';
import { FileFleetStore, forRunbook, type Approval, type FleetEvent, type FleetStore } from './store.js';

/** What the fleet reads from a target's run, wherever it ran. */
export type TargetRunResult = Pick<RunResult, 'runId' | 'status' | 'steps' | 'error'>;

/**
 * How a target's run is carried out: in this process by default, or as a
 * job on the queue (src/fleet/queue.ts) without the scheduler changing.
 */
export interface TargetExecutor {
  plan(runbook: Runbook, options: Omit<RunOptions, 'dryRun'>): Promise<RunResult>;
  run(runbook: Runbook, options: RunOptions, target: Target): Promise<TargetRunResult>;
  resume(runId: string, options: EngineOptions, target: Target): Promise<TargetRunResult>;
  /**
   * The fleet halts or stops: a target handed over whose run has not started
   * yet (a job still queued) is taken back, and its run() or resume() then
   * rejects with TargetWithdrawnError; one that started runs on. Absent: every
   * target handed over has started (in-process).
   */
  withdraw?(target: string): Promise<void>;
}

export const inProcessExecutor: TargetExecutor = { plan: planRunbook, run: runRunbook, resume: resumeRun };

export interface FleetOptions {
  readonly registry: StepRegistry;
  /** Default `.cutover`; the fleet lives under `<stateDir>/fleets/<inventory>/<runbook>/`. */
  readonly stateDir?: string;
  /** Targets planned or run at once in this process (default 1). */
  readonly jobs?: number;
  readonly operator?: string;
  /** Told every secret of every target before anything runs, so a front end can redact. */
  readonly protect?: (secrets: readonly string[]) => void;
  readonly executor?: TargetExecutor;
  readonly store?: FleetStore;
  readonly journalKey?: Buffer;
  /** How often waits for approvals look again (default 250 ms). */
  readonly pollMs?: number;
}

export interface FleetRunOptions extends FleetOptions {
  /**
   * Aborted: start no new target; a running target stops at its next safe
   * point (after the step in flight completes, or at once while it waits
   * for an approval), journaled and resumable.
   */
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: FleetEvent) => void;
}

/** The runbook loaded for one target, with that target's variables and secrets. */
export interface LoadedTarget {
  readonly target: Target;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly runbook: Runbook;
}

/**
 * Loads the runbook once per target with the target's variables. Every
 * target's problems are reported together, each issue prefixed with its
 * target, so an unset `${NAME}` names the target that lacks it.
 */
export function loadTargets(inventory: Inventory, runbookFile: string, registry: StepRegistry): LoadedTarget[] {
  const issues: ValidationIssue[] = [];
  const secretNames = new Set(inventory.targets.flatMap((t) => Object.keys(t.secrets)));
  let text = '';
  try {
    text = readRegularFile(runbookFile, valueFileLimit()).toString('utf8');
  } catch {
    // loadRunbook below reports an unreadable (or irregular) file with its position.
  }
  // Where the runbook names each variable, first: what a target lacks is reported there.
  const referenced = new Map<string, ValidationIssue['position']>();
  for (const [i, line] of text.split('\n').entries()) {
    for (const match of line.matchAll(/\$\{(secret:)?([A-Za-z_][A-Za-z0-9_]*)(:literal)?\}/g)) {
      const name = match[2] ?? '';
      if (line[match.index - 1] === '$') continue;
      const position = { file: runbookFile, line: i + 1, column: match.index + 1 };
      if (!referenced.has(name)) referenced.set(name, position);
      // A secret read as plain ${NAME} would be journaled in clear: it must be ${secret:NAME}.
      if (secretNames.has(name) && match[1] === undefined && match[3] === undefined) {
        issues.push({
          position,
          path: '(reference)',
          message: `\${${name}} is a secret in inventory ${inventory.file}: write \${secret:${name}} so it is redacted everywhere`,
        });
      }
    }
  }
  // How many targets set each name the runbook reads: counted once, not per target.
  const setBy = new Map(
    [...referenced.keys()].map((name) => [name, inventory.targets.filter((t) => Object.hasOwn(t.variables, name) || Object.hasOwn(t.secrets, name)).length]),
  );
  const loaded: LoadedTarget[] = [];
  const base = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined));
  for (const target of inventory.targets) {
    // A name other targets set and this one does not (a typo in its key, say) would come from this shell's
    // environment: the run would go wherever the operator's own DB_URL points.
    for (const [name, position] of referenced) {
      const others = setBy.get(name) ?? 0;
      if (others > 0 && !Object.hasOwn(target.variables, name) && !Object.hasOwn(target.secrets, name))
        issues.push({
          position,
          path: '(reference)',
          message: `target "${target.name}": ${name} is set for ${others} other target(s) in ${inventory.file} but not for this one, so it would come from this shell's environment; set it for this target`,
        });
    }
    const env = { ...base, ...target.variables, ...target.secrets };
    try {
      loaded.push({ target, env, runbook: loadRunbook(runbookFile, { registry, env }) });
    } catch (error) {
      if (!(error instanceof RunbookValidationError)) throw error;
      issues.push(...error.issues.map((i) => ({ ...i, message: `target "${target.name}": ${i.message}` })));
    }
  }
  if (issues.length > 0) throw new RunbookValidationError(runbookFile, issues);
  return loaded;
}

export function fleetStore(inventory: Inventory, runbookFile: string, options: Pick<FleetOptions, 'store' | 'stateDir'>): FleetStore {
  return options.store ?? new FileFleetStore(options.stateDir ?? '.cutover', inventory.name, runbookFile);
}

// ---------------------------------------------------------------------- plan

export type CellStatus = 'ok' | 'blocked' | 'failed' | 'not-planned' | StepStatus | 'waiting';

export interface TargetPlan {
  readonly name: string;
  readonly wave: string;
  readonly status: 'planned' | 'blocked' | 'failed';
  readonly runId?: string;
  readonly steps: readonly { readonly id: string; readonly status: 'ok' | 'blocked' | 'failed' | 'not-planned'; readonly reasons: readonly string[] }[];
  readonly error?: string;
}

export interface FleetPlan {
  readonly inventory: string;
  readonly runbook: string;
  readonly steps: readonly string[];
  readonly waves: readonly Wave[];
  readonly targets: readonly TargetPlan[];
  readonly summary: { readonly targets: number; readonly planned: number; readonly blocked: number; readonly failed: number };
}

/** Plans every target (read-only sessions, nothing applied), `jobs` at a time. */
export async function planFleet(inventory: Inventory, runbookFile: string, options: FleetOptions): Promise<FleetPlan> {
  const loaded = loadTargets(inventory, runbookFile, options.registry);
  options.protect?.(loaded.flatMap((l) => [...Object.values(l.target.secrets), ...l.runbook.secrets]));
  const store = fleetStore(inventory, runbookFile, options);
  const plans = new Map<string, TargetPlan>();
  const executor = options.executor ?? inProcessExecutor;
  await inParallel(loaded, options.jobs ?? 1, async ({ target, runbook }) => {
    try {
      const result = await executor.plan(runbook, {
        registry: options.registry,
        stateDir: store.targetStateDir(target.name),
        ...(options.operator !== undefined ? { operator: options.operator } : {}),
        ...(options.journalKey !== undefined ? { journalKey: options.journalKey } : {}),
      });
      // A connection that could not be opened: a step on it that planned without a session (sql) is not "ok" either.
      const unreachable = result.steps.filter((s) => s.status === 'failed' && s.error?.name === 'ConnectionFailedError');
      const cutOff = (connections: readonly string[]) => unreachable.find((u) => u.connections.some((c) => connections.includes(c)));
      const steps = runbook.steps.map((step) => {
        const planned = result.steps.find((s) => s.id === step.id);
        const blockers = planned?.plan?.blockers ?? [];
        if (blockers.length > 0) return { id: step.id, status: 'blocked' as const, reasons: blockers };
        if (planned?.status === 'failed') return { id: step.id, status: 'failed' as const, reasons: [planned.error?.message ?? 'failed'] };
        const cut = planned !== undefined ? cutOff(planned.connections) : undefined;
        if (cut !== undefined)
          return { id: step.id, status: 'not-planned' as const, reasons: [`not checked: a connection it uses could not be opened (see ${cut.id})`] };
        if (planned?.plan !== undefined) return { id: step.id, status: 'ok' as const, reasons: [] };
        return { id: step.id, status: 'not-planned' as const, reasons: [] };
      });
      const status = steps.some((s) => s.status === 'blocked') ? 'blocked' : steps.some((s) => s.status === 'failed') ? 'failed' : 'planned';
      plans.set(target.name, { name: target.name, wave: target.wave, status, runId: result.runId, steps });
    } catch (error) {
      plans.set(target.name, {
        name: target.name,
        wave: target.wave,
        status: 'failed',
        steps: runbook.steps.map((s) => ({ id: s.id, status: 'not-planned' as const, reasons: [] })),
        error: errorMessage(error),
      });
    }
  });
  const targets = inventory.targets.map((t) => plans.get(t.name) as TargetPlan);
  return {
    inventory: inventory.file,
    runbook: runbookFile,
    steps: loaded[0]?.runbook.steps.map((s) => s.id) ?? [],
    waves: inventory.waves,
    targets,
    summary: {
      targets: targets.length,
      planned: targets.filter((t) => t.status === 'planned').length,
      blocked: targets.filter((t) => t.status === 'blocked').length,
      failed: targets.filter((t) => t.status === 'failed').length,
    },
  };
}

// ----------------------------------------------------------------------- run

/** How a fleet run ended. */
export type FleetOutcome =
  /** Every target succeeded. */
  | 'succeeded'
  /** Every wave ran; some targets failed, within maxFailures. */
  | 'completed-with-failures'
  /** A wave went beyond maxFailures: no target started after that. Resumable. */
  | 'halted'
  /** Stopped on request (Ctrl-C): running targets reached a safe point. Resumable. */
  | 'stopped'
  /** A target needs a person (a rollback failed, an outcome is unknown). */
  | 'needs-attention';

export interface TargetOutcome {
  readonly name: string;
  readonly wave: string;
  readonly status: RunResult['status'] | 'skipped' | 'error';
  readonly runId?: string;
  readonly message?: string;
}

export interface FleetRunResult {
  readonly outcome: FleetOutcome;
  readonly location: string;
  readonly targets: readonly TargetOutcome[];
  /** The wave that went beyond maxFailures, if one did. */
  readonly haltedWave?: string;
}

const FAILED: readonly string[] = ['failed', 'rolled-back', 'needs-attention', 'refused', 'error'];

/** What to do with a target, from its newest run. */
export function decide(latest: RunState | undefined): { action: 'run' | 'resume' | 'skip' | 'attention'; why?: string } {
  if (latest === undefined) return { action: 'run' };
  const status = effectiveStatus(latest);
  if (status === 'succeeded') return { action: 'skip', why: `run ${latest.runId} succeeded` };
  if (status === 'needs-attention') return { action: 'attention', why: `run ${latest.runId} needs attention` };
  if (status === 'running' || status === 'rolling-back') return { action: 'attention', why: `run ${latest.runId} is in progress (pid ${latest.process.pid})` };
  if (latest.abandoned !== undefined || status === 'rolled-back' || status === 'refused' || status === 'abandoned') return { action: 'run' };
  return { action: 'resume' };
}

/** The newest real (not dry) run of a target, read from its verified journal. */
export function latestRun(stateDir: string, journalKey?: Buffer): RunState | undefined {
  for (const id of listRunIds(stateDir).reverse()) {
    const { state } = loadRunState(id, stateDir, journalKey !== undefined ? { journalKey } : {});
    if (state.mode === 'run') return state;
  }
  return undefined;
}

/** A target taken back before its run started (TargetExecutor.withdraw): it has not started, it has no outcome. */
export class TargetWithdrawnError extends Error {
  override readonly name = 'TargetWithdrawnError';
  constructor(readonly target: string) {
    super(`target ${target} was withdrawn before a worker started it`);
  }
}

/** Thrown into a target's confirm step when the fleet stops while it waits: the run stops there, resumable. */
export class FleetStoppedError extends Error {
  override readonly name = 'FleetStoppedError';
}

/**
 * Runs the fleet wave by wave. `command: 'run'` refuses a fleet whose
 * targets already have runs (continue it with `resume`); `resume` skips
 * targets that succeeded, resumes the ones that stopped, and runs again the
 * ones that were rolled back or refused.
 */
export async function runFleet(inventory: Inventory, runbookFile: string, command: 'run' | 'resume', options: FleetRunOptions): Promise<FleetRunResult> {
  const loaded = loadTargets(inventory, runbookFile, options.registry);
  options.protect?.(loaded.flatMap((l) => [...Object.values(l.target.secrets), ...l.runbook.secrets]));
  const store = fleetStore(inventory, runbookFile, options);
  if (store instanceof FileFleetStore) store.claim(runbookFile);
  const release = store.lock();
  try {
    return await new FleetRun(inventory, runbookFile, loaded, store, options).execute(command);
  } finally {
    release();
  }
}

class FleetRun {
  private readonly executor: TargetExecutor;
  private readonly jobs: number;
  private readonly operator: string;
  private readonly pollMs: number;
  private readonly outcomes = new Map<string, TargetOutcome>();
  /** Running targets' stop hooks: called once when the fleet stops. */
  private readonly running = new Map<string, () => void>();
  private readonly groupCounts = new Map<string, number>();
  private readonly redactor: Redactor;

  constructor(
    private readonly inventory: Inventory,
    private readonly runbookFile: string,
    private readonly loaded: readonly LoadedTarget[],
    private readonly store: FleetStore,
    private readonly options: FleetRunOptions,
  ) {
    this.executor = options.executor ?? inProcessExecutor;
    this.jobs = Math.max(1, options.jobs ?? 1);
    this.operator = options.operator ?? process.env['CUTOVER_OPERATOR'] ?? os.userInfo().username;
    this.pollMs = options.pollMs ?? 250;
    this.redactor = new Redactor(loaded.flatMap((l) => [...Object.values(l.target.secrets), ...l.runbook.secrets]));
    options.signal?.addEventListener('abort', () => {
      for (const stop of this.running.values()) stop();
      this.withdrawWaiting();
    });
  }

  /** Each target's state directory, as read when the fleet started. */
  private stateDirs = new Map<string, string>();

  private stateDirOf(target: string): string {
    return this.stateDirs.get(target) ?? this.store.targetStateDir(target);
  }

  /** Takes back every target handed over whose run has not started (see TargetExecutor.withdraw). */
  private withdrawWaiting(): void {
    for (const name of this.running.keys()) void this.executor.withdraw?.(name).catch(() => {});
  }

  private get stopping(): boolean {
    return this.options.signal?.aborted === true;
  }

  private emit(event: Parameters<FleetStore['append']>[0]): void {
    // Messages come from errors in memory (not from the redacted journals): redact before they are written.
    const redacted = Object.fromEntries(Object.entries(event).map(([k, v]) => [k, typeof v === 'string' ? this.redactor.redact(v) : v])) as typeof event;
    const record = this.store.append(redacted);
    try {
      this.options.onEvent?.(record);
    } catch {
      // A subscriber never breaks a fleet.
    }
  }

  async execute(command: 'run' | 'resume'): Promise<FleetRunResult> {
    // Every target's journals in one read (one round trip on a queue's database, not one per target).
    this.stateDirs = this.store.targetStateDirs(this.loaded.map((l) => l.target.name));
    const latest = new Map(this.loaded.map((l) => [l.target.name, latestRun(this.stateDirOf(l.target.name), this.options.journalKey)]));
    if (command === 'run') {
      const started = [...latest.entries()].filter(([, state]) => state !== undefined).map(([name]) => name);
      if (started.length > 0) {
        throw new FleetAlreadyStartedError(
          `fleet ${this.inventory.name} has already run ${started.length} target(s) (${started.slice(0, 5).join(', ')}${started.length > 5 ? ', …' : ''}); continue it with: cutover fleet resume ${this.inventory.file} ${this.runbookFile}`,
        );
      }
    }
    const startedAt = Date.now();
    this.emit({
      type: 'fleet.started',
      command,
      runbook: { file: this.runbookFile, sha256: this.loaded[0]?.runbook.sha256 ?? '' },
      inventory: { file: this.inventory.file, sha256: this.inventory.sha256 },
      operator: this.operator,
      host: os.hostname(),
      pid: process.pid,
      jobs: this.jobs,
    });
    let outcome: FleetOutcome | undefined;
    let haltedWave: string | undefined;
    for (const [index, wave] of this.inventory.waves.entries()) {
      const targets = this.loaded.filter((l) => l.target.wave === wave.name);
      const todo = targets.filter((l) => {
        const decision = decide(latest.get(l.target.name));
        if (decision.action === 'skip') {
          this.outcomes.set(l.target.name, {
            name: l.target.name,
            wave: wave.name,
            status: 'skipped',
            ...(decision.why !== undefined ? { message: decision.why } : {}),
          });
          return false;
        }
        return true;
      });
      if (todo.length === 0) continue;
      if (this.stopping) {
        outcome = 'stopped';
        break;
      }
      if (index > 0 && this.inventory.approval === 'between-waves') {
        const passed = await this.gate(wave);
        if (!passed) {
          outcome = 'stopped';
          break;
        }
      }
      this.emit({ type: 'wave.started', wave: wave.name });
      const result = await this.runWave(wave, targets.length, todo, latest);
      this.emit({ type: 'wave.finished', wave: wave.name, ...result });
      if (result.outcome === 'halted') {
        outcome = 'halted';
        haltedWave = wave.name;
        break;
      }
      if (result.outcome === 'stopped') {
        outcome = 'stopped';
        break;
      }
    }
    const all = this.inventory.targets.map(
      (t) => this.outcomes.get(t.name) ?? { name: t.name, wave: t.wave, status: 'skipped' as const, message: 'not started' },
    );
    if (all.some((t) => t.status === 'needs-attention')) outcome = 'needs-attention';
    outcome ??= all.some((t) => FAILED.includes(t.status)) ? 'completed-with-failures' : 'succeeded';
    this.emit({ type: 'fleet.finished', outcome, durationMs: Date.now() - startedAt });
    return { outcome, location: this.store.location, targets: all, ...(haltedWave !== undefined ? { haltedWave } : {}) };
  }

  /** Waits for `cutover fleet approve <wave>`; false if the fleet was stopped first. */
  private async gate(wave: Wave): Promise<boolean> {
    const sha = this.loaded[0]?.runbook.sha256;
    const match = (a: Approval) => a.name === wave.name && a.step === undefined && forRunbook(a, sha);
    let approval = this.store.approvals().find(match);
    if (approval === undefined) {
      this.emit({ type: 'wave.waiting', wave: wave.name });
      while (approval === undefined) {
        if (this.stopping) return false;
        await sleep(this.pollMs, undefined, this.options.signal !== undefined ? { signal: this.options.signal } : {}).catch(() => {});
        approval = this.store.approvals().find(match);
      }
    }
    this.emit({ type: 'wave.approved', wave: wave.name, operator: approval.operator });
    return true;
  }

  private groupKeys(target: Target): string[] {
    return this.inventory.concurrencyGroups.flatMap((g) => (g.label in target.labels ? [`${g.label}=${target.labels[g.label]}`] : []));
  }

  private hasRoom(target: Target): boolean {
    return this.inventory.concurrencyGroups.every((g) => {
      const value = target.labels[g.label];
      return value === undefined || (this.groupCounts.get(`${g.label}=${value}`) ?? 0) < g.max;
    });
  }

  private async runWave(
    wave: Wave,
    size: number,
    todo: readonly LoadedTarget[],
    latest: ReadonlyMap<string, RunState | undefined>,
  ): Promise<{ outcome: 'done' | 'halted' | 'stopped'; failures: number; allowed: number }> {
    const allowed = allowedFailures(wave, size);
    const limit = Math.min(this.jobs, wave.parallel ?? this.jobs);
    const pending = [...todo];
    const inFlight = new Map<string, Promise<string>>();
    let failures = 0;
    let withdrawn = false;
    for (;;) {
      while (!this.stopping && failures <= allowed && inFlight.size < limit) {
        const index = pending.findIndex((l) => this.hasRoom(l.target));
        if (index < 0) break;
        const [next] = pending.splice(index, 1) as [LoadedTarget];
        const keys = this.groupKeys(next.target);
        for (const k of keys) this.groupCounts.set(k, (this.groupCounts.get(k) ?? 0) + 1);
        inFlight.set(
          next.target.name,
          this.runTarget(next, latest.get(next.target.name)).then((outcome) => {
            for (const k of keys) this.groupCounts.set(k, (this.groupCounts.get(k) ?? 1) - 1);
            // Withdrawn before it started: not started, as if never handed over.
            if (outcome === undefined) {
              pending.push(next);
              return next.target.name;
            }
            this.outcomes.set(next.target.name, outcome);
            if (FAILED.includes(outcome.status) || (outcome.status === 'stopped' && !this.stopping)) failures++;
            return next.target.name;
          }),
        );
      }
      if (inFlight.size === 0) break;
      inFlight.delete(await Promise.race(inFlight.values()));
      // Beyond maxFailures no new target starts: those handed over but not started yet (queued jobs) are taken back.
      if (failures > allowed && !withdrawn) {
        withdrawn = true;
        this.withdrawWaiting();
      }
    }
    const outcome = failures > allowed ? 'halted' : pending.length > 0 || this.stopping ? 'stopped' : 'done';
    // Targets never started in a halted or stopped wave keep no outcome: they are "not started".
    return { outcome, failures, allowed };
  }

  /** The target's outcome, or undefined when it was withdrawn before it started (TargetExecutor.withdraw). */
  private async runTarget(loaded: LoadedTarget, latest: RunState | undefined): Promise<TargetOutcome | undefined> {
    const { target, runbook, env } = loaded;
    const started = Date.now();
    const decision = decide(latest);
    const base = { name: target.name, wave: target.wave };
    if (decision.action === 'attention') {
      const outcome: TargetOutcome = {
        ...base,
        status: 'needs-attention',
        ...(latest !== undefined ? { runId: latest.runId } : {}),
        message: decision.why ?? '',
      };
      this.emit({
        type: 'target.finished',
        target: target.name,
        wave: target.wave,
        ...(latest ? { runId: latest.runId } : {}),
        status: outcome.status,
        message: outcome.message ?? '',
        durationMs: 0,
      });
      return outcome;
    }
    const controller = new AbortController();
    let runId = decision.action === 'resume' ? latest?.runId : undefined;
    let waiting: ((error: Error) => void) | undefined;
    let rollingBack = false;
    // A safe point: after the step in flight completed, or at once while waiting for an approval.
    let stopRequested = false;
    // Halting the run first makes the engine journal the stop as an interrupt
    // (resumable), never as a failed step that would be rolled back.
    const halt = () => {
      controller.abort(new InterruptedError('SIGINT'));
    };
    const stopAtSafePoint = () => {
      stopRequested = true;
      if (waiting !== undefined) {
        halt();
        waiting(new FleetStoppedError('the fleet was stopped while this target waited for approval'));
      }
    };
    this.running.set(target.name, stopAtSafePoint);
    if (this.stopping) stopAtSafePoint();
    const engine: EngineOptions = {
      registry: this.options.registry,
      stateDir: this.stateDirOf(target.name),
      env,
      signal: controller.signal,
      operator: this.operator,
      ...(this.options.journalKey !== undefined ? { journalKey: this.options.journalKey } : {}),
      onEvent: (event) => {
        if (event.type === 'run.started') {
          runId = event.runId;
          this.emit({ type: 'target.started', target: target.name, wave: target.wave, runId: event.runId, action: 'run' });
        }
        if (event.type === 'rollback.started') rollingBack = true;
        if (event.type === 'step.completed' && stopRequested && !rollingBack) controller.abort(new InterruptedError('SIGINT'));
      },
      confirmedBy: 'approval',
      confirm: (question, stepId) =>
        this.waitForApproval(target, stepId, question, { register: (reject) => (waiting = reject), halt }).finally(() => (waiting = undefined)),
    };
    try {
      let result: TargetRunResult;
      if (decision.action === 'resume' && latest !== undefined) {
        this.emit({ type: 'target.started', target: target.name, wave: target.wave, runId: latest.runId, action: 'resume' });
        result = await this.executor.resume(latest.runId, engine, target);
      } else {
        result = await this.executor.run(runbook, engine, target);
      }
      const failedStep = result.steps.find((s) => s.status === 'failed' || s.error !== undefined);
      const message = result.error !== undefined ? errorMessage(result.error) : failedStep?.error?.message;
      const outcome: TargetOutcome = { ...base, status: result.status, runId: result.runId, ...(message !== undefined ? { message } : {}) };
      this.emit({
        type: 'target.finished',
        target: target.name,
        wave: target.wave,
        runId: result.runId,
        status: result.status,
        ...(message !== undefined ? { message } : {}),
        durationMs: Date.now() - started,
      });
      return outcome;
    } catch (error) {
      if (error instanceof TargetWithdrawnError) {
        // A resume said so when it was handed over: close that, resumable as it was.
        if (decision.action === 'resume' && latest !== undefined) {
          this.emit({
            type: 'target.finished',
            target: target.name,
            wave: target.wave,
            runId: latest.runId,
            status: 'stopped',
            message: error.message,
            durationMs: Date.now() - started,
          });
        }
        return undefined;
      }
      const message = errorMessage(error);
      const status = error instanceof JournalUntrustedError ? 'needs-attention' : 'error';
      this.emit({
        type: 'target.finished',
        target: target.name,
        wave: target.wave,
        ...(runId !== undefined ? { runId } : {}),
        status,
        message,
        durationMs: Date.now() - started,
      });
      return { ...base, status, ...(runId !== undefined ? { runId } : {}), message };
    } finally {
      this.running.delete(target.name);
    }
  }

  /**
   * A confirm step (or a resume's "run it again?") of a target: waits for
   * `cutover fleet approve <target|wave> [--step id]` instead of a prompt.
   */
  private async waitForApproval(
    target: Target,
    stepId: string,
    question: string,
    hooks: { readonly register: (reject: (error: Error) => void) => void; readonly halt: () => void },
  ): Promise<boolean> {
    const sha = this.loaded.find((l) => l.target.name === target.name)?.runbook.sha256;
    const match = (a: Approval) => (a.name === target.name || a.name === target.wave) && (a.step === undefined || a.step === stepId) && forRunbook(a, sha);
    let approval = this.store.approvals().find(match);
    if (approval === undefined) {
      this.emit({ type: 'target.waiting', target: target.name, stepId, question });
      approval = await new Promise<Approval>((resolve, reject) => {
        let done = false;
        hooks.register((error) => {
          done = true;
          reject(error);
        });
        if (this.stopping) {
          done = true;
          hooks.halt();
          reject(new FleetStoppedError('the fleet was stopped while this target waited for approval'));
          return;
        }
        const poll = () => {
          if (done) return;
          const found = this.store.approvals().find(match);
          if (found !== undefined) {
            done = true;
            resolve(found);
          } else setTimeout(poll, this.pollMs);
        };
        poll();
      });
    }
    this.emit({
      type: 'target.approved',
      target: target.name,
      stepId,
      approval: approval.step === undefined ? approval.name : `${approval.name} --step ${approval.step}`,
      operator: approval.operator,
    });
    return true;
  }
}

/** `fleet run` on a fleet that already ran: continue it with `fleet resume`. */
export class FleetAlreadyStartedError extends Error {
  override readonly name = 'FleetAlreadyStartedError';
}
