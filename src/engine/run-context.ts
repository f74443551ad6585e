/**
 * Everything one run (or resume, or rollback) of a runbook shares: the
 * journal, resolved connections, the live state, sessions and confirmations.
 * Knows the step contract, never a step kind.
 */
import os from 'node:os';
import { Journal, type JournalSink } from '../audit/journal.js';
import { Redactor } from '../audit/redact.js';
import type { ResolvedConnection, ResolvedPostgres } from '../db/connections.js';
import { Session, type Queryable } from '../db/session.js';
import { openOracle, type OracleConnector, type OracleSession } from '../db/oracle.js';
import path from 'node:path';
import type { SavedPlan } from './saved-plan.js';
import type { RunLocks } from './lock.js';
import { failpoint } from './failpoint.js';
import { Notifier } from './notify.js';
import { CommandError, ConfirmationRequiredError, JournalUntrustedError, StepTimeoutError, UsageError } from '../errors.js';
import type { Runbook } from '../runbook/load.js';
import type { StepRegistry } from '../step/contract.js';
import { execaRunner, type CommandRunner } from '../step/commands.js';
import type { RunEvent } from '../audit/events.js';
import { applyEvent, foldJournal, type RunState } from './state.js';
import type { ApplyContext, BaseContext, Json, Step, StepDefinition } from '../step/contract.js';

/**
 * Journal lines after which the engine changes nothing before its next line:
 * a run's start, a lock taken, a plan (read-only sessions), an applied step
 * (verify is read-only) and a completed one (the next step plans first).
 * They become durable with the next line that is not one of these: every
 * line before an apply, a COMMIT, a rollback, a prompt or the run's end.
 */
const DEFERRED: ReadonlySet<RunEvent['type']> = new Set(['run.started', 'target.locked', 'step.planned', 'step.applied', 'step.completed']);

export interface EngineOptions {
  readonly registry: StepRegistry;
  /** Where runs are journaled: `<stateDir>/runs/<runId>/` (default `.cutover`). */
  readonly stateDir?: string;
  /** Answer yes to every confirmation. */
  readonly yes?: boolean;
  /** Asks a person; without it (and without `yes`), a confirmation stops the run. */
  readonly confirm?: (question: string, stepId: string) => Promise<boolean>;
  /** How `confirm` answers, for the journal: a person at a prompt (default), or an approval recorded elsewhere. */
  readonly confirmedBy?: 'prompt' | 'approval';
  /** Subscribers: every event, after it is safely in the journal. */
  readonly onEvent?: (event: RunEvent) => void;
  readonly commands?: CommandRunner;
  readonly signal?: AbortSignal;
  /** Recorded in the journal; default: $CUTOVER_OPERATOR or the OS user. */
  readonly operator?: string;
  /** `rollback --force`: override a rollback's safety refusals (e.g. values consumed since apply). */
  readonly force?: boolean;
  /** Opens Oracle connections; default node-oracledb Thin mode. Tests inject one. */
  readonly oracle?: OracleConnector;
  /** `run --plan`: execute exactly this reviewed plan, stopping where the state drifted from it. */
  readonly savedPlan?: SavedPlan;
  /**
   * Told every secret of the run (the runbook's and what its connections
   * resolved to) before anything runs, so a front end can redact its own
   * output: the CLI masks everything it prints.
   */
  readonly protect?: (secrets: readonly string[]) => void;
  /** Recorded in the journal, for reports and rehearsal comparison (e.g. rehearsal-3, staging). */
  readonly label?: string;
  readonly environment?: string;
  /** Webhook URLs notified besides the runbook's `notify:` (`--notify`). */
  readonly notify?: readonly string[];
  /** How long a notification hook may take (default 5 s). */
  readonly notifyTimeoutMs?: number;
  /** Chains the journal with HMAC-SHA256; default: CUTOVER_JOURNAL_KEY or CUTOVER_JOURNAL_KEY_FILE, if set. */
  readonly journalKey?: Buffer;
  /** Where every journal line also goes, before the engine acts on it (queue mode: the queue's database). */
  readonly journalSink?: JournalSink;
  /**
   * What `${NAME}` reads when resume or rollback loads the runbook again
   * (default process.env): a fleet target's own variables.
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function operatorName(options: Pick<EngineOptions, 'operator'>): string {
  return options.operator ?? process.env['CUTOVER_OPERATOR'] ?? os.userInfo().username;
}

/** Every secret of the run: the runbook's own (${secret:NAME}, passwords) and what resolving its connections found (~/.pgpass). */
export function redactorFor(runbook: Runbook, connections: ReadonlyMap<string, ResolvedConnection>): Redactor {
  return new Redactor([...runbook.secrets, ...[...connections.values()].flatMap((c) => c.secrets)]);
}

/**
 * A command's output and errors are redacted as they come back, before any
 * step shortens them: a cut through a secret would leave a fragment that no
 * redactor recognises.
 */
function redactedCommands(runner: CommandRunner, redactor: Redactor): CommandRunner {
  return async (argv, options) => {
    try {
      const result = await runner(argv, options);
      return { ...result, stdout: redactor.redact(result.stdout), stderr: redactor.redact(result.stderr) };
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      throw new CommandError(
        redactor.redact(error.message),
        redactor.redact(error.command),
        error.exitCode,
        redactor.redact(error.stderr),
        redactor.redact(error.stdout),
      );
    }
  };
}

/** What a run context writes its events to: the journal, or (a read-only preview) something that refuses every write. */
export type JournalWriter = Pick<Journal, 'append' | 'sync' | 'file' | 'headHash' | 'close'>;

/** What a run context is made of. */
export interface RunContextInit {
  readonly runbook: Runbook;
  readonly runId: string;
  readonly runDir: string;
  readonly journal: JournalWriter;
  readonly redactor: Redactor;
  readonly connections: ReadonlyMap<string, ResolvedConnection>;
  readonly options: EngineOptions;
  /** Plans only: every session is read-only at the server, nobody is notified. */
  readonly dryRun: boolean;
  /** The state folded from the journal so far (resume, rollback). */
  readonly state?: RunState;
}

/** How a session is opened: what for, and whether it may write. */
export interface SessionOptions {
  /** Ends up in application_name, after the run id. */
  readonly purpose: string;
  readonly readOnly: boolean;
  readonly statementTimeoutMs?: number | undefined;
  /** Another database on the same server. */
  readonly database?: string | undefined;
}

export class RunContext {
  readonly commands: CommandRunner;
  /** Aborted by the caller's signal, or when the run must stop at once (lock lost, interrupt). */
  readonly signal: AbortSignal;
  /** Result of a rollback done by this process, if it did one. */
  rollbackResult: 'rolled-back' | 'needs-attention' | undefined;
  /** The run's target locks, while it holds them. */
  locks: RunLocks | undefined;
  /** Why the run must stop before its next write (a lost lock, an interrupt), once that happened. */
  stopCause: Error | undefined;
  private readonly controller = new AbortController();
  private current: RunState | undefined;
  /** Webhooks told about the run's start, failures, confirmations and end. */
  readonly notifier: Notifier;
  /** Step sessions open right now: an interrupt cancels what they run. */
  private readonly openSessions = new Set<Session>();
  /**
   * Sessions a finished phase handed back in a fresh session's state (DISCARD
   * ALL), by what they were opened with (see sessionKey): the next phase
   * that asks for the same takes one instead of connecting again (a
   * connection costs 5-20 ms of fork and authentication on the server, and
   * a new backend fills its catalog caches again: 0.3 s for 10,000
   * sequences; a step has three phases). Closed before the run's locks are
   * released.
   */
  private readonly idle = new Map<string, Session[]>();
  /** Sessions opened ahead of the phase that will ask for them (see prewarm), by the same key as `idle`. */
  private readonly warming = new Map<string, Promise<void>>();

  readonly runbook: Runbook;
  readonly runId: string;
  readonly runDir: string;
  readonly journal: JournalWriter;
  readonly redactor: Redactor;
  readonly connections: ReadonlyMap<string, ResolvedConnection>;
  readonly options: EngineOptions;
  readonly dryRun: boolean;

  constructor(init: RunContextInit) {
    const { runbook, redactor, connections, options, dryRun, state } = init;
    this.runbook = runbook;
    this.runId = init.runId;
    this.runDir = init.runDir;
    this.journal = init.journal;
    this.redactor = redactor;
    this.connections = connections;
    this.options = options;
    this.dryRun = dryRun;
    this.commands = redactedCommands(options.commands ?? execaRunner, redactor);
    options.protect?.([...runbook.secrets, ...[...connections.values()].flatMap((c) => c.secrets)]);
    this.signal = this.controller.signal;
    const outer = options.signal;
    if (outer !== undefined) {
      const forward = () => {
        this.halt(outer.reason instanceof Error ? outer.reason : new Error(String(outer.reason)));
      };
      if (outer.aborted) forward();
      else outer.addEventListener('abort', forward, { once: true });
    }
    this.current = state;
    // A dry run changes nothing: nobody is woken for it.
    const urls = dryRun ? [] : [...new Set([...runbook.notify, ...(options.notify ?? [])])];
    this.notifier = new Notifier(
      urls,
      (text) => redactor.redact(text),
      (url, reason, event) => {
        this.emit({ type: 'notify.failed', url, event, reason });
      },
      options.notifyTimeoutMs,
    );
  }

  /** What a journaled event tells the webhooks, if anything. */
  private notify(event: RunEvent): void {
    const base = { runId: this.runId, runbook: this.runbook.name, ...(this.runbook.ticket !== undefined ? { ticket: this.runbook.ticket } : {}) };
    const name = `"${this.runbook.name}"${this.runbook.ticket !== undefined ? ` (${this.runbook.ticket})` : ''}`;
    if (event.type === 'run.started' || event.type === 'run.resumed') {
      const what = event.type === 'run.started' ? 'run' : event.command;
      this.notifier.send({ ...base, event: 'run.started', text: `cutover: ${what} of ${name} started (run ${this.runId})` });
    } else if (event.type === 'step.failed') {
      this.notifier.send({
        ...base,
        event: 'step.failed',
        stepId: event.stepId,
        message: event.error.message,
        text: `cutover: step "${event.stepId}" of ${name} failed while ${event.phase === 'plan' ? 'planning' : event.phase === 'apply' ? 'applying' : 'verifying'}: ${event.error.sqlstate ? `${event.error.sqlstate} ` : ''}${event.error.message.split('\n')[0] ?? ''}`,
      });
    } else if (event.type === 'run.finished') {
      this.notifier.send({
        ...base,
        event: 'run.finished',
        status: event.status,
        journal: this.journal.file,
        report: `cutover report ${this.runId} --format html`,
        text: `cutover: run ${this.runId} of ${name} finished: ${event.status}`,
      });
    }
  }

  /** Before the journal closes: the hooks still in flight answer or time out (their failures are journaled). */
  drainNotifications(): Promise<void> {
    return this.notifier.drain();
  }

  /** Stops the run before its next write: aborts every wait and poll of the step in flight. */
  halt(cause: Error): void {
    if (this.stopCause !== undefined) return;
    this.stopCause = cause;
    this.controller.abort(cause);
    for (const session of this.openSessions) void session.cancel().catch(() => {});
  }

  private track(opening: Promise<Session>): Promise<Session> {
    return opening.then((session) => {
      this.openSessions.add(session);
      return session;
    });
  }

  /** A step scope closed this session. */
  forget(session: Session): void {
    this.openSessions.delete(session);
  }

  /** A session for a phase: one a finished phase handed back, opened with the same options, or a new one. */
  async acquireSession(name: string, options: SessionOptions): Promise<Session> {
    const key = sessionKey(name, options);
    await this.warming.get(key);
    const parked = this.idle.get(key);
    for (let session = parked?.pop(); session !== undefined; session = parked?.pop()) {
      try {
        await session.reuseAs(this.applicationName(options.purpose), options.readOnly || this.dryRun);
        return session;
      } catch {
        // Gone while it waited (a server's idle_session_timeout, a restart): a new one instead.
        await this.discard(session);
      }
    }
    return this.openSession(name, options);
  }

  /**
   * A phase is done with this session: it goes back in a fresh session's
   * state (settings, role, temporary tables, advisory locks and listeners
   * all reset by DISCARD ALL), or is closed if that fails (a transaction
   * left open or aborted, a lost connection).
   */
  async handBack(name: string, options: SessionOptions, session: Session): Promise<void> {
    try {
      await session.query('DISCARD ALL');
      await session.query("SELECT set_config('application_name', $1, false)", [this.applicationName('idle')]);
    } catch {
      await this.discard(session);
      return;
    }
    const key = sessionKey(name, options);
    this.idle.set(key, [...(this.idle.get(key) ?? []), session]);
  }

  /**
   * Opens a session a phase will ask for soon, in the background: a step's
   * plan session while the run takes its locks, so the two connections are
   * made at once. It waits in the idle pool, unused, until that phase asks.
   * A failure is dropped: the phase connects itself and reports it.
   */
  prewarm(name: string, options: SessionOptions): void {
    const key = sessionKey(name, options);
    if (this.warming.has(key)) return;
    const opening = this.openSession(name, options).then(
      (session) => {
        this.idle.set(key, [...(this.idle.get(key) ?? []), session]);
      },
      () => {},
    );
    this.warming.set(
      key,
      opening.finally(() => this.warming.delete(key)),
    );
  }

  /** Closes the sessions phases handed back; the run is ending. */
  async closeIdleSessions(): Promise<void> {
    await Promise.all(this.warming.values());
    const sessions = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(sessions.map((s) => this.discard(s)));
  }

  private async discard(session: Session): Promise<void> {
    await session.close();
    this.forget(session);
  }

  private applicationName(purpose: string): string {
    return `cutover/${this.runId}/${purpose}`.slice(0, 63);
  }

  /** A session that holds the run lock: TCP keepalives on, idle timeouts off (see lock.ts). */
  openLockSession(name: string): Promise<Session> {
    return Session.open(name, this.postgres(name), {
      applicationName: `cutover/${this.runId}/lock`,
      readOnly: false,
      lockTimeoutMs: this.runbook.defaults.lockTimeoutMs,
      statementTimeoutMs: this.runbook.defaults.statementTimeoutMs,
      keepAlive: true,
    });
  }

  /** The run's state as the journal says it is now. */
  get state(): RunState {
    if (this.current === undefined) throw new Error('run state read before run.started');
    return this.current;
  }

  /** Journal first (durable at once, or with the next line for the kinds in DEFERRED), then the live state, then subscribers. */
  emit(event: RunEvent): void {
    // Subscribers get the redacted event, exactly as journaled.
    let redacted = event;
    if (event.type !== 'step.progress') {
      const stepId = 'stepId' in event ? event.stepId : undefined;
      failpoint(`before:${event.type}`, stepId);
      const record = this.journal.append(event, { deferred: DEFERRED.has(event.type) });
      failpoint(`after:${event.type}`, stepId);
      redacted = record.event;
      if (this.current === undefined) this.current = foldJournal([record]);
      else applyEvent(this.current, record.event, record.ts, record.seq);
      this.notify(record.event);
    }
    try {
      this.options.onEvent?.(redacted);
    } catch {
      // A subscriber (the live list) must never break a cutover.
    }
  }

  step(id: string): Step {
    const step = this.runbook.steps.find((s) => s.id === id);
    if (step === undefined) throw new UsageError(`step "${id}" is not in runbook ${this.runbook.file}`);
    return step;
  }

  definition(step: Step): StepDefinition {
    const definition = this.options.registry[step.kind];
    if (definition === undefined) throw new UsageError(`step "${step.id}": unknown kind "${step.kind}"`);
    return definition;
  }

  /**
   * What the journal holds for a step, its before-state or its planned
   * payload, parsed with its kind's schema: a journal edited into another
   * shape is refused, naming the step and the journal line, never obeyed.
   */
  journaled(step: Step, what: 'before' | 'planned'): Json {
    const recorded = this.state.steps.get(step.id);
    const value = what === 'before' ? (recorded?.before ?? null) : recorded?.plan?.planned;
    const line = what === 'before' ? recorded?.beforeLine : recorded?.planLine;
    const parsed = this.definition(step)[what].safeParse(value);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue !== undefined && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    const noun = what === 'before' ? 'before-state' : 'planned payload';
    throw new JournalUntrustedError(
      `step "${step.id}": the journaled ${noun}${line !== undefined ? ` (journal line ${line})` : ''} is not what a ${step.kind} step records (${issue?.message ?? 'invalid'}${where}); refusing to use it`,
    );
  }

  resolved(name: string): ResolvedConnection {
    const resolved = this.connections.get(name);
    if (resolved === undefined) throw new UsageError(`unknown connection "${name}"`);
    return resolved;
  }

  postgres(name: string): ResolvedPostgres {
    const resolved = this.connections.get(name);
    if (resolved === undefined) throw new UsageError(`unknown connection "${name}"`);
    if (resolved.kind !== 'postgres') throw new UsageError(`connection "${name}" is ${resolved.kind}, not postgres`);
    return resolved;
  }

  /** A server a step of this runbook starts (e.g. the new cluster of pg_upgrade): locked at its first use, not at the start. */
  startedByRunbook(name: string): boolean {
    const spec = this.runbook.connections[name];
    return spec?.kind === 'postgres' && spec.startedByRunbook === true;
  }

  /** PostgreSQL connections the selected steps use, in order of first use. */
  targets(steps: readonly Step[]): string[] {
    const names = new Set<string>();
    for (const step of steps) {
      const definition = this.definition(step);
      for (const name of [step.connection, ...(definition.connections?.(step.config) ?? [])]) {
        if (name !== undefined && this.connections.get(name)?.kind === 'postgres') names.add(name);
      }
    }
    return [...names];
  }

  openSession(name: string, { purpose, readOnly, statementTimeoutMs, database }: SessionOptions): Promise<Session> {
    return this.track(
      Session.open(name, this.postgres(name), {
        applicationName: this.applicationName(purpose),
        readOnly: readOnly || this.dryRun,
        ...(database !== undefined ? { database } : {}),
        lockTimeoutMs: this.runbook.defaults.lockTimeoutMs,
        statementTimeoutMs: statementTimeoutMs ?? this.runbook.defaults.statementTimeoutMs,
      }),
    );
  }

  /** A session as another role that keeps the server's default_transaction_read_only (see BaseContext.sessionAs). */
  openProbeSession(
    name: string,
    { user, database, purpose, statementTimeoutMs }: Omit<SessionOptions, 'readOnly'> & { readonly user: string },
  ): Promise<Session> {
    if (this.dryRun) throw new UsageError('a probe session is not available in a dry run');
    return this.track(
      Session.open(name, this.postgres(name), {
        applicationName: `cutover/${this.runId}/${purpose}`,
        readOnly: undefined,
        user,
        ...(database !== undefined ? { database } : {}),
        lockTimeoutMs: this.runbook.defaults.lockTimeoutMs,
        statementTimeoutMs: statementTimeoutMs ?? this.runbook.defaults.statementTimeoutMs,
      }),
    );
  }

  /**
   * Decides a confirmation: --yes, else a person, else stop the run. Every
   * yes is journaled with who gave it.
   */
  async confirm(stepId: string, question: string): Promise<boolean> {
    if (this.options.yes === true) {
      this.emit({ type: 'step.confirmed', stepId, by: 'yes-flag', question });
      return true;
    }
    if (this.options.confirm === undefined) throw new ConfirmationRequiredError(stepId, question);
    this.notifier.send({
      event: 'confirmation.waiting',
      runId: this.runId,
      runbook: this.runbook.name,
      stepId,
      message: question,
      text: `cutover: run ${this.runId} of "${this.runbook.name}" waits for a person at step "${stepId}": ${question}`,
    });
    const answer = await this.options.confirm(question, stepId);
    if (answer) this.emit({ type: 'step.confirmed', stepId, by: this.options.confirmedBy ?? 'prompt', question });
    return answer;
  }

  /** Sessions a step opens during one phase; all closed when the phase ends. */
  stepScope(step: Step, { phase, readOnly }: { readonly phase: string; readonly readOnly: boolean }): StepScope {
    return new StepScope(this, step, phase, readOnly);
  }
}

/**
 * When the engine aborts a step with a `timeout`: that long after the phase
 * started. The step's own deadline (statement_timeout, the command's timeout,
 * a poll loop's deadline) fires at `timeout` and reports what was still
 * behind; the grace keeps the engine's abort from racing it on a busy
 * machine, and only stops a step that ignores its deadline.
 */
export function stepCeilingMs(timeoutMs: number): number {
  return timeoutMs + Math.max(5_000, Math.ceil(timeoutMs / 4));
}

/** What a phase of `step` opens its sessions with (`worker` > 0: one of its parallel sessions). */
export function phaseSessionOptions(step: Step, phase: string, readOnly: boolean, worker = 0, database?: string): SessionOptions {
  const base = phase === 'apply' ? step.id : `${step.id}/${phase}`;
  return { purpose: worker === 0 ? base : `${base}/${worker}`, readOnly, statementTimeoutMs: step.timeoutMs, database };
}

/**
 * Sessions opened with the same connection, database and statement timeout
 * are interchangeable: the access mode is set each time one is taken
 * (Session.reuseAs), so a step's plan, apply and verify can share a backend
 * and its warm catalog caches.
 */
function sessionKey(name: string, options: SessionOptions): string {
  return [name, options.database ?? '', options.statementTimeoutMs ?? ''].join('\u0000');
}

export class StepScope {
  private readonly sessions = new Map<string, Promise<Session>>();
  /** How each of `sessions` was opened, so it can be handed back for the next phase (probe sessions are not: they are closed). */
  private readonly handBack = new Map<string, { readonly name: string; readonly options: SessionOptions }>();
  private readonly oracleSessions = new Map<string, Promise<OracleSession>>();
  /** The last before-state the step journaled through recordBefore in this scope. */
  recordedBefore: Json | undefined;
  readonly signal: AbortSignal;
  private readonly ceiling: { readonly timer: NodeJS.Timeout; readonly signal: AbortSignal } | undefined;

  constructor(
    private readonly rc: RunContext,
    private readonly step: Step,
    private readonly phase: string,
    private readonly readOnly: boolean,
  ) {
    if (step.timeoutMs === undefined) {
      this.signal = rc.signal;
      return;
    }
    const controller = new AbortController();
    const ceilingMs = stepCeilingMs(step.timeoutMs);
    const timeoutMs = step.timeoutMs;
    const timer = setTimeout(() => {
      controller.abort(new StepTimeoutError(step.id, timeoutMs, ceilingMs));
    }, ceilingMs).unref();
    this.ceiling = { timer, signal: controller.signal };
    this.signal = AbortSignal.any([rc.signal, controller.signal]);
  }

  /** What to report for an error of this phase: the engine's timeout when it ended the phase, not the AbortError it caused. */
  failure(error: unknown): unknown {
    return this.ceiling?.signal.aborted === true ? (this.ceiling.signal.reason as unknown) : error;
  }

  /** A session on another database of the same server, with the same credentials. */
  sessionIn(name: string, database: string, worker = 0): Promise<Session> {
    const key = `${name}\u0000db\u0000${database}${worker === 0 ? '' : `\u0000#${worker}`}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      const options = phaseSessionOptions(this.step, this.phase, this.readOnly, worker, database);
      session = this.rc.acquireSession(name, options);
      this.sessions.set(key, session);
      this.handBack.set(key, { name, options });
    }
    return session;
  }

  sessionAs(name: string, user: string, database?: string): Promise<Session> {
    const key = `${name}\u0000${user}\u0000${database ?? ''}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      session = this.rc.openProbeSession(name, { user, database, purpose: `${this.step.id}/${this.phase}/probe`, statementTimeoutMs: this.step.timeoutMs });
      this.sessions.set(key, session);
    }
    return session;
  }

  session(name: string, worker = 0): Promise<Session> {
    const key = worker === 0 ? name : `${name}\u0000#${worker}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      const options = phaseSessionOptions(this.step, this.phase, this.readOnly, worker);
      session = this.rc.acquireSession(name, options);
      this.sessions.set(key, session);
      this.handBack.set(key, { name, options });
    }
    return session;
  }

  oracle(name: string): Promise<OracleSession> {
    let session = this.oracleSessions.get(name);
    if (session === undefined) {
      const resolved = this.rc.resolved(name);
      if (resolved.kind !== 'oracle') throw new UsageError(`connection "${name}" is ${resolved.kind}, not oracle`);
      session = openOracle(name, resolved, this.rc.options.oracle);
      this.oracleSessions.set(name, session);
    }
    return session;
  }

  context(tx?: Queryable): ApplyContext {
    const rc = this.rc;
    const stepId = this.step.id;
    const recorded = rc.state.steps.get(stepId);
    const base: BaseContext = {
      runId: rc.runId,
      dryRun: rc.dryRun,
      signal: this.signal,
      session: (name, worker) => this.session(name, worker),
      sessionAs: (name, user, database) => this.sessionAs(name, user, database),
      sessionIn: (name, database, worker) => this.sessionIn(name, database, worker),
      oracle: (name) => this.oracle(name),
      resolved: (name) => rc.resolved(name),
      resolvePath: (file) => path.resolve(rc.runbook.dir, file),
      connectionEnv: (name) => rc.postgres(name).env,
      commands: rc.commands,
      progress: (message) => {
        rc.emit({ type: 'step.progress', stepId, message: rc.redactor.redact(message) });
      },
    };
    return {
      ...base,
      tx,
      confirm: (question) => rc.confirm(stepId, question),
      recordBefore: (before) => {
        rc.emit({ type: 'step.before', stepId, before });
        this.recordedBefore = before;
      },
      priorBefore: recorded?.touched === true ? rc.journaled(this.step, 'before') : undefined,
      force: rc.options.force === true,
    };
  }

  async close(): Promise<void> {
    if (this.ceiling !== undefined) clearTimeout(this.ceiling.timer);
    const sessions = [...this.sessions.entries()].map(([key, s]) => ({ s, reusable: this.handBack.get(key) }));
    const oracleSessions = [...this.oracleSessions.values()];
    this.sessions.clear();
    this.handBack.clear();
    this.oracleSessions.clear();
    await Promise.all([
      ...sessions.map(async ({ s, reusable }) => {
        const session = await s.catch(() => undefined);
        if (session === undefined) return;
        // A phase the run is stopping in (a lost lock, an interrupt, the step's ceiling) leaves nothing to reuse.
        if (reusable !== undefined && !this.signal.aborted) return this.rc.handBack(reusable.name, reusable.options, session);
        await session.close();
        this.rc.forget(session);
      }),
      ...oracleSessions.map(async (s) => (await s.catch(() => undefined))?.close()),
    ]);
  }
}
