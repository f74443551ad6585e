/**
 * The live task list: one listr2 task per step, driven by engine events (the
 * engine does not know it exists). On a terminal it redraws in place with
 * timers; without one (CI, logs) listr2 falls back to plain lines.
 * Confirmations are asked through listr2's prompt adapter so the prompt and
 * the list do not garble each other.
 */
import { ListrEnquirerPromptAdapter } from '@listr2/prompt-adapter-enquirer';
import { Listr, PRESET_TIMESTAMP, PromptError, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import { formatPhases, type RunEvent, type StepPhases } from '../index.js';
import { createInterface } from 'node:readline/promises';
import { formatSerialized } from './format-error.js';

/** For a question that belongs to no task in the list; Ctrl-C at it rejects, as at the list's own prompt. */
async function plainAsk(question: string, signal: AbortSignal): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const cancelled = new Promise<never>((_, reject) => {
      rl.once('SIGINT', () => {
        reject(new Error('cancelled at the prompt'));
      });
    });
    return /^y(es)?$/i.test((await Promise.race([rl.question(`${question} [y/N] `, { signal }), cancelled])).trim());
  } finally {
    rl.close();
  }
}

/** What resume or rollback found of a step the last process left in flight (after a crash, a signal or a stop). */
const RECONCILED = { done: 'it had taken effect', 'not-done': 'it had not taken effect', rerun: 'it runs again' } as const;

export const PHASE_WORDS = { plan: 'planning', apply: 'applying', verify: 'verifying', rollback: 'rolling back' } as const;

type Wrapper = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

type Final =
  | { readonly kind: 'done'; readonly title?: string }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'skip'; readonly message: string };

interface Slot {
  wrapper?: Wrapper;
  final?: Final;
  settle?: (final: Final) => void;
  /** Resolves when listr2 starts the slot's task (a prompt needs its wrapper). */
  started?: Promise<Wrapper>;
  onStart?: (wrapper: Wrapper) => void;
}

/**
 * A skipped or failed task's line: on a terminal listr2 replaces the title
 * with the message, so the message names the step; in plain lines it prints
 * `title [SKIPPED: message]`, so it must not name it twice.
 */
const named = (plain: boolean, id: string, message: string) => (plain ? message : `${id}: ${message}`);

function newSlot(): Slot {
  const slot: Slot = {};
  slot.started = new Promise<Wrapper>((resolve) => (slot.onStart = resolve));
  return slot;
}

export class LiveList {
  private readonly slots = new Map<string, Slot>();
  private rollbackSlot: Slot = {};
  private rollbackIds: string[] = [];
  private rollbackStarted = false;
  /** The steps whose undo failed. */
  private readonly rollbackFailed: string[] = [];
  /** Phase times per step, as the engine reports them: the list shows a step's true duration, planning included. */
  private readonly phases = new Map<string, StepPhases>();
  private readonly rollbackSlots = new Map<string, Slot>();
  private running: Promise<void> | undefined;
  private readonly listr: Listr<unknown, 'default' | 'simple'>;

  /** Plain lines (no terminal, or --timestamps) rather than a list redrawn in place. */
  private readonly plain: boolean;

  constructor(
    stepIds: readonly string[],
    private readonly mode: 'plan' | 'run' | 'resume' | 'rollback',
    options: { readonly timestamps?: boolean } = {},
  ) {
    this.plain = options.timestamps === true || !process.stdout.isTTY;
    for (const id of stepIds) this.slots.set(id, newSlot());
    const stepTasks =
      mode === 'rollback' ? [] : stepIds.map((id) => ({ title: id, task: (_: unknown, task: Wrapper) => this.wait(this.slots.get(id) ?? {}, task) }));
    this.listr = new Listr<unknown, 'default' | 'simple'>(
      [
        ...stepTasks,
        ...(mode === 'plan'
          ? []
          : [
              {
                title: 'rollback',
                // Shown only once a rollback started (listr2 asks again just before the task would run): a successful run has none.
                enabled: () => this.mode === 'rollback' || this.rollbackStarted,
                task: (_: unknown, task: Wrapper) => this.rollbackTask(task),
              },
            ]),
      ],
      {
        concurrent: false,
        exitOnError: false,
        registerSignalListeners: false,
        // No listr2 timer: it would time the task, not the step; titles carry the step's phases instead.
        ...(options.timestamps === true
          ? { renderer: 'simple' as const, rendererOptions: { timestamp: PRESET_TIMESTAMP } }
          : { renderer: 'default' as const, rendererOptions: { collapseSubtasks: false, showErrorMessage: true, formatOutput: 'wrap' as const } }),
      },
    );
  }

  start(): void {
    this.running = this.listr.run().then(
      () => undefined,
      () => undefined,
    );
  }

  /** Waits until the list has drawn its final state. */
  async done(): Promise<void> {
    for (const [id, slot] of this.slots) if (slot.final === undefined) this.settle(slot, { kind: 'skip', message: this.named(id, 'not run') });
    if (this.rollbackSlot.final === undefined) this.settle(this.rollbackSlot, { kind: 'skip', message: 'nothing to roll back' });
    for (const [id, slot] of this.rollbackSlots) if (slot.final === undefined) this.settle(slot, { kind: 'skip', message: this.named(id, 'not rolled back') });
    await this.running;
  }

  /**
   * The task a confirmation question belongs to, so listr2 can prompt in
   * place. An interrupt (`signal`) cancels the question; so does Ctrl-C
   * typed at it (the caller decides what that means).
   */
  async ask(question: string, stepId: string, signal: AbortSignal): Promise<boolean> {
    // The engine may ask before listr2 has drawn the step's task: wait for it.
    const wrapper = await (this.slots.get(stepId) ?? this.rollbackSlots.get(stepId))?.started;
    if (wrapper === undefined) return plainAsk(question, signal);
    signal.throwIfAborted();
    const adapter = wrapper.prompt(ListrEnquirerPromptAdapter);
    const { default: Enquirer } = await import('enquirer');
    const enquirer = new Enquirer();
    // While it prompts, enquirer answers SIGINT and SIGTERM with process.exit(130/143): nothing journaled, the
    // run's own handler never heard. Its listeners go as soon as the prompt exists; the run's handler decides.
    const ours = new Set([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
    enquirer.on('prompt', () => {
      for (const name of ['SIGINT', 'SIGTERM'] as const) for (const listener of process.listeners(name)) if (!ours.has(listener)) process.off(name, listener);
    });
    const cancel = () => {
      adapter.cancel({ throw: true });
    };
    signal.addEventListener('abort', cancel, { once: true });
    try {
      const answer: unknown = await adapter.run({ type: 'Toggle', message: question, enabled: 'yes', disabled: 'no', initial: false }, { enquirer });
      // The adapter keeps a listener that, when the task is later skipped (a declined answer stops the run),
      // "cancels" the finished prompt and restores the task to running, so listr2 then ticks it as done.
      // With its error set, the listener leaves the task alone.
      adapter.error = new PromptError('answered');
      return answer === true;
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  /** The run was interrupted (the CLI's signal handler): a step that fails from now on was stopped, not broken. */
  interrupted(signal: string): void {
    this.interruptedBy ??= signal;
  }

  private interruptedBy: string | undefined;

  private named(id: string, message: string): string {
    return named(this.plain, id, message);
  }

  /** `[12.4s: plan 12.1s, apply 0.3s]`, or '' before any phase ended. */
  private timing(stepId: string): string {
    const text = formatPhases(this.phases.get(stepId) ?? {});
    return text === undefined ? '' : ` [${text}]`;
  }

  private addPhase(stepId: string, phase: keyof StepPhases, ms: number): void {
    const phases = this.phases.get(stepId) ?? {};
    phases[phase] = (phases[phase] ?? 0) + ms;
    this.phases.set(stepId, phases);
  }

  handle(event: RunEvent): void {
    const slot = 'stepId' in event ? this.slots.get(event.stepId) : undefined;
    switch (event.type) {
      case 'step.planned':
        this.addPhase(event.stepId, 'plan', event.durationMs);
        // The plan itself is printed once, after the list (plan) or kept in the journal (run).
        // A plan with blockers is settled by the step.failed that follows it.
        if (slot && this.mode === 'plan' && (event.plan.blockers?.length ?? 0) === 0)
          this.settle(slot, { kind: 'done', title: `${event.stepId}${this.timing(event.stepId)}` });
        else if (slot?.wrapper) slot.wrapper.title = `${event.stepId}: planned${this.timing(event.stepId)}`;
        return;
      case 'step.started':
        if (slot?.wrapper) slot.wrapper.title = `${event.stepId}: applying${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
        return;
      case 'step.progress':
        if (slot?.wrapper) slot.wrapper.output = event.message;
        return;
      case 'step.applied':
        this.addPhase(event.stepId, 'apply', event.durationMs);
        if (slot?.wrapper) slot.wrapper.title = `${event.stepId}: applied${this.timing(event.stepId)}, verifying`;
        return;
      case 'step.retrying':
        if (event.durationMs !== undefined) this.addPhase(event.stepId, 'apply', event.durationMs);
        if (slot?.wrapper) slot.wrapper.output = `attempt ${event.attempt} failed: ${event.error.message}; retrying`;
        return;
      case 'step.completed':
        if (event.verified) this.addPhase(event.stepId, 'verify', event.durationMs);
        if (slot) this.settle(slot, { kind: 'done', title: `${event.stepId}${event.verified ? ' (verified)' : ''}${this.timing(event.stepId)}` });
        return;
      case 'step.failed': {
        // A plan refused for blockers was timed from the plan's start, like step.planned: count it once.
        const planned = event.phase === 'plan' ? (this.phases.get(event.stepId)?.plan ?? 0) : 0;
        this.addPhase(event.stepId, event.phase, Math.max(0, event.durationMs - planned));
        // One line here; the cause in full is printed once, after the list.
        const cause = event.error.name === 'PlanBlockedError' ? 'blocked (reasons below)' : (formatSerialized(event.error).split('\n')[0] ?? '');
        if (slot?.wrapper) slot.wrapper.title = event.stepId;
        if (slot && this.interruptedBy !== undefined)
          this.settle(slot, {
            kind: 'skip',
            message: this.named(event.stepId, `interrupted by ${this.interruptedBy} while ${PHASE_WORDS[event.phase]}${this.timing(event.stepId)}`),
          });
        else if (slot) this.settle(slot, { kind: 'failed', message: this.named(event.stepId, `${event.phase} failed${this.timing(event.stepId)}: ${cause}`) });
        return;
      }
      case 'step.reconciled':
        if (slot?.wrapper) slot.wrapper.output = `left in flight by the last process: ${RECONCILED[event.outcome]} (${event.reason})`;
        if (slot && event.phase === 'apply' && event.outcome === 'done') this.settle(slot, { kind: 'done', title: `${event.stepId} (reconciled)` });
        return;
      case 'rollback.started':
        this.rollbackStarted = true;
        this.rollbackIds = [...event.steps];
        for (const id of event.steps) this.rollbackSlots.set(id, newSlot());
        this.settle(this.rollbackSlot, { kind: 'done', title: `rollback (${event.reason})` });
        return;
      case 'rollback.step.done':
        this.settleRollback(event.stepId, { kind: 'done', title: `${event.stepId} rolled back` });
        return;
      case 'rollback.step.skipped':
        this.settleRollback(event.stepId, { kind: 'skip', message: this.named(event.stepId, `${event.irreversible ? 'IRREVERSIBLE, ' : ''}${event.reason}`) });
        return;
      case 'rollback.step.failed':
        this.rollbackFailed.push(event.stepId);
        this.settleRollback(event.stepId, {
          kind: 'failed',
          message: this.named(event.stepId, `rollback failed: ${formatSerialized(event.error).split('\n')[0] ?? ''}`),
        });
        return;
      case 'run.finished':
      case 'run.stopped':
        for (const [id, s] of this.slots)
          if (s.final === undefined && s.wrapper)
            this.settle(s, { kind: 'skip', message: this.named(id, event.type === 'run.stopped' ? `stopped: ${event.reason}` : 'not run') });
        return;
      default:
        return;
    }
  }

  private settleRollback(id: string, final: Final): void {
    const slot = this.rollbackSlots.get(id);
    if (slot) this.settle(slot, final);
  }

  private settle(slot: Slot, final: Final): void {
    if (slot.final !== undefined && slot.settle === undefined) return;
    slot.final = final;
    slot.settle?.(final);
    delete slot.settle;
  }

  private wait(slot: Slot, task: Wrapper): Promise<void> {
    slot.wrapper = task;
    slot.onStart?.(task);
    return new Promise<void>((resolve, reject) => {
      const apply = (final: Final) => {
        if (final.kind === 'done') {
          if (final.title) task.title = final.title;
          resolve();
        } else if (final.kind === 'skip') {
          task.skip(final.message);
          resolve();
        } else reject(new Error(final.message));
      };
      if (slot.final !== undefined) apply(slot.final);
      else slot.settle = apply;
    });
  }

  private async rollbackTask(task: Wrapper): Promise<unknown> {
    await this.wait(this.rollbackSlot, task);
    if (this.rollbackIds.length === 0) return undefined;
    return task.newListr(
      [
        ...this.rollbackIds.map((id) => ({
          title: `undo ${id}`,
          exitOnError: false,
          task: (_: unknown, sub: Wrapper) => this.wait(this.rollbackSlots.get(id) ?? {}, sub),
        })),
        // Last, and untitled on a terminal: a failed undo fails the rollback's own line too, which would
        // otherwise end with a tick. Plain lines never print a parent's failure, so it says so itself.
        {
          task: (_: unknown, sub: Wrapper) => {
            if (this.rollbackFailed.length === 0) return;
            if (this.plain) sub.title = 'rollback';
            else task.title = task.title.replace(/^rollback/, 'rollback failed');
            throw new Error(`undo of ${this.rollbackFailed.join(', ')} failed`);
          },
        },
      ],
      { concurrent: false, exitOnError: true },
    );
  }
}
