/**
 * Queue mode: the fleet on a PostgreSQL-backed job queue (pg-boss 10), so
 * any number of worker processes on any number of machines run targets.
 *
 * - `fleet run --queue URL` runs the same scheduler as the one-machine mode
 *   (waves, approvals, maxFailures, concurrency groups) with an executor
 *   that sends one job per target (singleton key per fleet + target) and
 *   waits for its result.
 * - `fleet worker --queue URL` takes jobs. A job holds the target's lease
 *   (a row in the queue database, renewed while the target runs); every
 *   journal line goes to the queue database before the engine acts on it,
 *   and only while the lease is held.
 * - A worker that dies: pg-boss fails its job once it has been active for
 *   `expireInSeconds` (checked every `maintenanceIntervalSeconds`), retries
 *   it after `retryDelay`, another worker fetches it within its polling
 *   interval, finds the lease stale (no heartbeat for `takeoverAfter`) and
 *   resumes the target from the journal in the database: the engine's
 *   reconciliation makes each effect happen once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type PgBoss from 'pg-boss';
import { z } from 'zod';
import { materialize } from '../audit/journal-store.js';
import { planRunbook, resumeRun as resumeRunOf, runRunbook as runOf, type RunResult } from '../engine/executor.js';
import type { EngineOptions } from '../engine/run-context.js';
import { errorMessage, InterruptedError, RunbookValidationError, UsageError } from '../errors.js';
import { loadRunbook } from '../runbook/load.js';
import type { StepRegistry } from '../step/contract.js';
import { quoteIdent } from '../db/quote.js';
import { loadInventory, type Inventory, type Target } from './inventory.js';
import { advisoryKey, FLEET_SCHEMA, fleetId, LeaseLostError, openQueueDb, openQueueStore, PgFleetStore, redactUrl } from './queue-store.js';
import type { SyncPg } from '../db/sync-pg.js';
import {
  decide,
  FleetStoppedError,
  latestRun,
  runFleet,
  TargetWithdrawnError,
  type FleetRunOptions,
  type FleetRunResult,
  type TargetExecutor,
  type TargetRunResult,
} from './runner.js';
import { forRunbook, type Approval, type FleetEvent } from './store.js';

export const QUEUE_NAME = 'cutover-fleet-target';
export const QUEUE_SCHEMA = 'cutover_queue';
const S = quoteIdent(FLEET_SCHEMA);

/** How fast a dead worker's target is taken over; every figure is configurable. */
export interface QueueTiming {
  /** A job active this long is failed and retried elsewhere; a lease without a heartbeat this long is stale (default 300 s). */
  readonly takeoverAfterSeconds?: number;
  /** How often pg-boss looks for expired jobs (default 30 s). */
  readonly maintenanceSeconds?: number;
  /** How often an idle worker asks for a job (default 1 s; pg-boss's minimum is 0.5 s). */
  readonly pollingSeconds?: number;
  /** How long a failed job waits before it is offered again (default 1 s). */
  readonly retryDelaySeconds?: number;
}

interface Timing {
  readonly takeoverAfter: number;
  readonly maintenance: number;
  readonly polling: number;
  readonly retryDelay: number;
}

function timing(t: QueueTiming): Timing {
  const out = {
    takeoverAfter: t.takeoverAfterSeconds ?? 300,
    maintenance: t.maintenanceSeconds ?? 30,
    polling: t.pollingSeconds ?? 1,
    retryDelay: t.retryDelaySeconds ?? 1,
  };
  if (!Number.isInteger(out.takeoverAfter) || out.takeoverAfter < 2)
    throw new UsageError(`--takeover-after: a whole number of seconds, at least 2 (got ${out.takeoverAfter})`);
  if (!Number.isInteger(out.maintenance) || out.maintenance < 1)
    throw new UsageError(`--maintenance-interval: a whole number of seconds, at least 1 (got ${out.maintenance})`);
  if (!(out.polling >= 0.5)) throw new UsageError(`--poll-interval: at least 0.5 s (got ${out.polling})`);
  if (!Number.isInteger(out.retryDelay) || out.retryDelay < 0) throw new UsageError(`--retry-delay: a whole number of seconds (got ${out.retryDelay})`);
  return out;
}

/**
 * The longest a dead worker's target waits before another worker resumes
 * it, in seconds: its job expires (takeoverAfter) and is noticed at the next
 * maintenance, is offered again after the retry delay and fetched at the
 * next poll. The lease it holds is stale by then (its last heartbeat was
 * before the worker died, at least takeoverAfter earlier). Two seconds cover
 * the queries themselves.
 */
export function takeoverBoundSeconds(t: QueueTiming = {}): number {
  const x = timing(t);
  return x.takeoverAfter + x.maintenance + x.retryDelay + x.polling + 2;
}

export interface QueueOptions extends QueueTiming {
  /** The queue database (postgres://...). */
  readonly url: string;
}

const jobDataSchema = z.object({
  fleet: z.string(),
  inventory: z.object({ file: z.string(), sha256: z.string() }),
  runbook: z.object({ file: z.string(), sha256: z.string() }),
  target: z.string(),
  /** The expiry the job was sent with: the lease goes stale after as long without a heartbeat. */
  takeoverAfter: z.number().int().min(2),
});
type JobData = z.output<typeof jobDataSchema>;

const jobOutputSchema = z.object({
  status: z.enum(['succeeded', 'failed', 'rolled-back', 'stopped', 'needs-attention', 'planned', 'refused', 'interrupted', 'error']),
  runId: z.string().optional(),
  message: z.string().optional(),
  worker: z.string(),
});
type JobOutput = z.output<typeof jobOutputSchema>;

/** pg-boss on the queue database, started, with our queue created if it was not there; `db` is this process's session there. */
export async function startBoss(options: QueueOptions, role: 'coordinator' | 'worker', db: SyncPg): Promise<PgBoss> {
  const x = timing(options);
  // Loaded here, not at the top: every CLI command imports the library, and pg-boss (with pg) costs about 0.1 s to load.
  const { default: Boss } = await import('pg-boss');
  const boss = new Boss({
    connectionString: options.url,
    schema: QUEUE_SCHEMA,
    application_name: `cutover fleet ${role}`,
    maintenanceIntervalSeconds: x.maintenance,
    // The coordinator only sends and reads jobs; workers keep the queue maintained.
    supervise: role === 'worker',
    schedule: false,
    max: role === 'worker' ? 4 : 2,
  });
  boss.on('error', () => {
    // Reported through the failing call; pg-boss retries its own maintenance.
  });
  await boss.start();
  try {
    await createQueueOnce(boss, x, db);
  } catch (error) {
    // Started but of no use: its timers must not keep the process alive.
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
    throw error;
  }
  return boss;
}

/** The advisory lock under which processes create the queue, one at a time. */
export const QUEUE_CREATE_LOCK = advisoryKey(`cutover queue ${QUEUE_NAME}`);

async function createQueueOnce(boss: PgBoss, x: Timing, db: SyncPg): Promise<void> {
  if ((await boss.getQueue(QUEUE_NAME)) !== null) return;
  // pg-boss 10 creates a queue without a lock of its own: two processes doing it at once (workers of a
  // Deployment starting together) deadlock, and the loser may look before the winner commits. One at a time.
  const key = QUEUE_CREATE_LOCK.toString();
  // Tried, not waited for: waiting in a synchronous session would stall this process, which may be the holder.
  while (db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key]).rows[0]?.ok !== true) await sleep(50);
  try {
    if ((await boss.getQueue(QUEUE_NAME)) !== null) return;
    await boss.createQueue(QUEUE_NAME, {
      name: QUEUE_NAME,
      policy: 'stately',
      retryLimit: 100_000,
      retryDelay: x.retryDelay,
      expireInSeconds: x.takeoverAfter,
    });
  } finally {
    db.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
  }
}

// ------------------------------------------------------------ coordinator

/** A target's job failed for good, or the worker could not run it. */
export class QueueJobError extends Error {
  override readonly name = 'QueueJobError';
}

/**
 * How often the scheduler asks pg-boss about jobs that left no result yet
 * (one that failed for good, was cancelled or deleted leaves none), and how
 * many it asks about each time: the ones asked about longest ago, at least
 * LOOK_AT_LEAST, and enough that each is asked about once in LOOKS_PER_ROUND
 * looks. A question is one query; asking about every waiting job every 5 s
 * would cost a fleet of 2,000 targets 400 queries a second.
 */
const QUEUE_LOOK_MS = 5_000;
const LOOK_AT_LEAST = 20;
const LOOKS_PER_ROUND = 12;
/** What to do about a job the queue lost or failed for good. */
const SEND_AGAIN = '`cutover fleet resume --queue` sends a new one';

class QueueExecutor implements TargetExecutor {
  readonly plan = planRunbook;

  constructor(
    private readonly boss: PgBoss,
    private readonly store: PgFleetStore,
    private readonly data: Omit<JobData, 'target' | 'takeoverAfter'>,
    private readonly x: Timing,
    private readonly pollMs: number,
    /** What workers record of a target waiting for approval, and its approval: told here, so the fleet's own terminal says it too. */
    private readonly onWorkerEvent?: (event: FleetEvent) => void,
  ) {
    this.lastEvent = store.lastEventSeq();
  }

  private lastEvent: string;

  private forwardWorkerEvents(): void {
    if (this.onWorkerEvent === undefined) return;
    for (const { seq, event } of this.store.eventsAfter(this.lastEvent)) {
      this.lastEvent = seq;
      if (event.type === 'target.waiting' || event.type === 'target.approved') this.onWorkerEvent(event);
    }
  }

  run(_runbook: unknown, options: EngineOptions, target: Target): Promise<TargetRunResult> {
    return this.dispatch(target, options.signal);
  }

  resume(_runId: string, options: EngineOptions, target: Target): Promise<TargetRunResult> {
    return this.dispatch(target, options.signal);
  }

  /** One job per fleet + target: a job of the target that is still queued or running is waited for, never sent twice. */
  private async dispatch(target: Target, signal: AbortSignal | undefined): Promise<TargetRunResult> {
    const known = this.store.db.query<{ job_id: string }>(`SELECT job_id FROM ${S}.job WHERE fleet = $1 AND target = $2`, [this.data.fleet, target.name])
      .rows[0];
    let id: string | undefined;
    if (known !== undefined) {
      const job = await this.boss.getJobById(QUEUE_NAME, known.job_id);
      if (job !== null && ['created', 'retry', 'active'].includes(job.state)) id = known.job_id;
    }
    if (id === undefined) {
      const sent = await this.boss.send(QUEUE_NAME, { ...this.data, target: target.name, takeoverAfter: this.x.takeoverAfter } satisfies JobData, {
        singletonKey: `${this.data.fleet}:${target.name}`,
        retryLimit: 100_000,
        retryDelay: this.x.retryDelay,
        expireInSeconds: this.x.takeoverAfter,
      });
      if (sent === null)
        throw new QueueJobError(
          `target ${target.name}: the queue already holds a job for it (singleton key ${this.data.fleet}:${target.name}) that this fleet did not send`,
        );
      id = sent;
      this.store.db.query(
        `INSERT INTO ${S}.job (fleet, target, job_id) VALUES ($1, $2, $3) ON CONFLICT (fleet, target) DO UPDATE SET job_id = EXCLUDED.job_id`,
        [this.data.fleet, target.name, id],
      );
    }
    return toResult(await this.waitFor(target.name, id, signal));
  }

  /**
   * Takes back the target's job if no worker has started it (see
   * PgFleetStore.withdraw), and cancels it in the queue so `fleet resume`
   * sends a new one; its dispatch then rejects with TargetWithdrawnError.
   */
  async withdraw(target: string): Promise<void> {
    const entry = [...this.waiting].find(([, w]) => w.target === target);
    if (entry === undefined) return;
    const [id, w] = entry;
    // Out of the polled set first: the result written below is for the worker that may fetch the job, not for the poll.
    this.waiting.delete(id);
    let withdrawn = false;
    try {
      const output: JobOutput = { status: 'stopped', worker: '', message: new TargetWithdrawnError(target).message };
      withdrawn = this.store.withdraw(id, target, JSON.stringify(output));
    } catch {
      // Left as it was: the job runs, as a started one would.
    }
    if (!withdrawn) {
      this.waiting.set(id, w);
      if (!this.polling) void this.poll();
      return;
    }
    await this.boss.cancel(QUEUE_NAME, id).catch(() => {});
    w.reject(new TargetWithdrawnError(target));
  }

  /** Jobs waited for, by id: one query per poll for all of them, not one per target. */
  private readonly waiting = new Map<string, { readonly target: string; readonly resolve: (o: JobOutput) => void; readonly reject: (e: Error) => void }>();
  private polling = false;

  private waitFor(target: string, id: string, signal: AbortSignal | undefined): Promise<JobOutput> {
    return new Promise<JobOutput>((resolve, reject) => {
      this.waiting.set(id, { target, resolve, reject });
      signal?.addEventListener('abort', () => {
        // The fleet stopping (Ctrl-C) does not stop a job a worker runs: it finishes there, and `fleet resume` picks up its result.
        void this.boss.getJobById(QUEUE_NAME, id).then((job) => {
          if (job !== null && job.state !== 'active' && this.waiting.delete(id)) resolve({ status: 'stopped', worker: '' });
        });
      });
      if (!this.polling) void this.poll();
    });
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      let asked = Date.now();
      while (this.waiting.size > 0) {
        this.forwardWorkerEvents();
        const ids = [...this.waiting.keys()];
        // A worker writes the result before it completes the job.
        for (const row of this.store.db.query<{ job_id: string; output: string }>(`SELECT job_id, output FROM ${S}.result WHERE job_id = ANY($1::text[])`, [
          ids,
        ]).rows) {
          const w = this.waiting.get(row.job_id);
          if (w === undefined) continue;
          this.waiting.delete(row.job_id);
          const output = jobOutputSchema.safeParse(JSON.parse(row.output));
          if (output.success) w.resolve(output.data);
          else w.reject(new QueueJobError(`job ${row.job_id} left a result that is not one`));
        }
        // Every few seconds, ask the queue about some of the others (see QUEUE_LOOK_MS): a job that failed for good leaves no result.
        if (Date.now() - asked >= QUEUE_LOOK_MS) {
          asked = Date.now();
          const count = Math.max(LOOK_AT_LEAST, Math.ceil(this.waiting.size / LOOKS_PER_ROUND));
          for (const id of [...this.waiting.keys()].slice(0, count)) {
            const job = await this.boss.getJobById(QUEUE_NAME, id);
            const w = this.waiting.get(id);
            if (w === undefined) continue;
            // Asked about now: to the back of the line (the map's order is the order of the next questions), or out of it.
            this.waiting.delete(id);
            if (job === null) {
              w.reject(new QueueJobError(`job ${id} is gone from the queue (deleted there?); ${SEND_AGAIN}`));
            } else if (job.state === 'failed' || job.state === 'cancelled') {
              // pg-boss types output as an object; a job that failed before its handler returned has none.
              // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
              const output = job.output !== null && job.output !== undefined && Object.keys(job.output).length > 0 ? `: ${JSON.stringify(job.output)}` : '';
              w.reject(new QueueJobError(`job ${id} ${job.state} in the queue${output}; ${SEND_AGAIN}`));
            } else this.waiting.set(id, w);
          }
        }
        await sleep(this.pollMs);
      }
    } catch (error) {
      for (const [id, w] of this.waiting) {
        this.waiting.delete(id);
        w.reject(error instanceof Error ? error : new Error(String(error)));
      }
    } finally {
      this.polling = false;
    }
  }
}

function toResult(output: JobOutput): TargetRunResult {
  if (output.status === 'error') throw new QueueJobError(output.message ?? 'the worker could not run this target');
  const result: TargetRunResult = {
    runId: output.runId ?? '',
    status: output.status,
    steps: [],
    ...(output.message !== undefined && output.status !== 'succeeded' ? { error: new QueueJobError(output.message) } : {}),
  };
  return result;
}

export interface QueueFleetRunOptions extends Omit<FleetRunOptions, 'store' | 'executor'> {
  readonly queue: QueueOptions;
  /**
   * How often the scheduler looks for the results of the jobs it waits for
   * (default 50 ms): one indexed query for all of them, and the time a wave's
   * next target waits after a worker finished one.
   */
  readonly resultPollMs?: number;
}

/** `fleet run|resume --queue`: the scheduler here, the targets on the workers. */
export async function runFleetOnQueue(
  inventory: Inventory,
  runbookFile: string,
  command: 'run' | 'resume',
  options: QueueFleetRunOptions,
): Promise<FleetRunResult> {
  const x = timing(options.queue);
  const store = openQueueStore(options.queue.url, fleetId(inventory.name, runbookFile));
  let boss: PgBoss | undefined;
  try {
    boss = await startBoss(options.queue, 'coordinator', store.db);
    const runbook = loadRunbook(runbookFile, {
      registry: options.registry,
      env: { ...process.env, ...(inventory.targets[0]?.variables ?? {}), ...(inventory.targets[0]?.secrets ?? {}) },
    });
    const executor = new QueueExecutor(
      boss,
      store,
      {
        fleet: store.fleet,
        inventory: { file: path.resolve(inventory.file), sha256: inventory.sha256 },
        runbook: { file: path.resolve(runbookFile), sha256: runbook.sha256 },
      },
      x,
      options.resultPollMs ?? 50,
      (event) => options.onEvent?.(event),
    );
    return await runFleet(inventory, runbookFile, command, { ...options, jobs: options.jobs ?? 1000, store, executor });
  } finally {
    await boss?.stop({ graceful: false, wait: true }).catch(() => {});
    store.dispose();
    store.db.close();
  }
}

/** The fleet store of a queue, for `fleet status|approve|report --queue`; close its `db` when done. */
export function queueFleetStore(url: string, inventory: Inventory, runbookFile: string, staleAfterSeconds?: number): PgFleetStore {
  return openQueueStore(url, fleetId(inventory.name, runbookFile), staleAfterSeconds);
}

// ----------------------------------------------------------------- worker

/**
 * A worker's target slots, handed on first come, first served: when a target
 * ends and a job waits for its slot, the slot goes to that job, so a job a
 * busy loop fetches just then cannot overtake it (and leave it waiting until
 * its deadline while the fleet waits for its target).
 */
class Slots {
  private free: number;
  private readonly waiting: { readonly give: (slot: boolean) => void }[] = [];
  private closed = false;

  constructor(count: number) {
    this.free = count;
  }

  /** A slot, or false at `deadline` (ms since the epoch) or when the worker stops. */
  acquire(deadline: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.free > 0 && this.waiting.length === 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const entry = {
        give: (slot: boolean) => {
          clearTimeout(timer);
          resolve(slot);
        },
      };
      const timer = setTimeout(
        () => {
          const at = this.waiting.indexOf(entry);
          if (at >= 0) this.waiting.splice(at, 1);
          resolve(false);
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiting.push(entry);
    });
  }

  /** Hands the slot to the first job waiting, or frees it. */
  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next.give(true);
    else this.free++;
  }

  /** The worker stops: every job still waiting gives up (it goes back to the queue). */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.give(false);
  }
}

export interface WorkerOptions extends QueueOptions {
  readonly registry: StepRegistry;
  /** Targets this process runs at once (default 1). */
  readonly concurrency?: number;
  readonly operator?: string;
  readonly journalKey?: Buffer;
  /** How often waits (approvals, a lease held elsewhere) look again (default 250 ms). */
  readonly pollMs?: number;
  /** Told each secret a target brings, before its run starts. */
  readonly protect?: (secrets: readonly string[]) => void;
  /** One line per thing the worker does, for its log. */
  readonly log?: (line: string) => void;
}

export interface QueueWorker {
  /** Stops taking jobs; running targets stop after the step in flight (journaled) and their jobs go back to the queue. */
  stop(): Promise<void>;
  /** Resolves when the worker has stopped. */
  readonly stopped: Promise<void>;
}

/** A job the worker should not finish now: pg-boss offers it again after the retry delay. */
class RetryLater extends Error {
  override readonly name = 'RetryLater';
}

/** `fleet worker --queue`: takes target jobs until stopped. */
export async function startQueueWorker(options: WorkerOptions): Promise<QueueWorker> {
  const x = timing(options);
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency: a whole number of at least 1 (got ${concurrency})`);
  const log = options.log ?? (() => {});
  const pollMs = options.pollMs ?? 250;
  // One session for every fleet this worker serves, opened before the first job.
  const db = openQueueDb(options.url);
  const stores = new Map<string, PgFleetStore>();
  const storeOf = (fleet: string) => {
    let store = stores.get(fleet);
    if (store === undefined) {
      store = new PgFleetStore(db, fleet, redactUrl(options.url));
      stores.set(fleet, store);
    }
    return store;
  };
  const boss = await startBoss(options, 'worker', db);
  const running = new Map<string, AbortController>();
  /** Scratch state directories of finished targets still being removed. */
  const removing = new Set<string>();
  const slots = new Slots(concurrency);
  let stopping = false;

  const handle = async (jobId: string, raw: unknown): Promise<JobOutput> => {
    const parsed = jobDataSchema.safeParse(raw);
    const me = `${os.hostname()}:${process.pid}:${jobId.slice(0, 8)}:${randomBytes(2).toString('hex')}`;
    if (!parsed.success) return { status: 'error', message: `job ${jobId} is not a cutover target job`, worker: me };
    const data = parsed.data;
    const store = storeOf(data.fleet);
    const takeoverAfter = data.takeoverAfter;
    const deadline = Date.now() + (takeoverAfter - 1) * 1000;
    // This process runs at most `concurrency` targets, even when pg-boss hands over a job whose earlier delivery still runs here.
    // A slot is kept only with the lease: a delivery waiting for a lease that a live worker holds (a target running past its
    // job's expiry) keeps no slot from other targets.
    for (;;) {
      if (!(await slots.acquire(deadline))) throw new RetryLater('this worker is busy');
      const claim = store.claim(jobId, data.target, me, data.takeoverAfter);
      if ('taken' in claim && claim.taken) break;
      slots.release();
      // This job ran before (its first delivery outlived the job's expiry and finished since): its result stands.
      if ('output' in claim) return jobOutputSchema.parse(JSON.parse(claim.output));
      if (stopping || Date.now() > deadline) throw new RetryLater(`target ${data.target} is held by a live worker`);
      await sleep(pollMs);
    }
    try {
      return await leased(jobId, data, me, store);
    } finally {
      slots.release();
    }
  };

  /** A job's target, with its lease and a slot of this worker: its run, its result. */
  const leased = async (jobId: string, data: JobData, me: string, store: PgFleetStore): Promise<JobOutput> => {
    const takeoverAfter = data.takeoverAfter;
    const controller = new AbortController();
    running.set(me, controller);
    const heartbeat = setInterval(
      () => {
        try {
          const { rowCount } = db.query(`UPDATE ${S}.lease SET heartbeat_at = clock_timestamp() WHERE fleet = $1 AND target = $2 AND owner = $3`, [
            data.fleet,
            data.target,
            me,
          ]);
          if (rowCount !== 1) controller.abort(new LeaseLostError(data.target, me));
        } catch {
          // The next beat tries again; the lease goes stale only after takeoverAfter.
        }
      },
      Math.max(250, (takeoverAfter * 1000) / 4),
    );
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'cutover-worker-'));
    let finished = false;
    try {
      const output = await runTarget(data, me, store, stateDir, controller.signal);
      log(
        `${data.target}: ${output.status}${output.runId !== undefined ? ` (run ${output.runId})` : ''}${output.message !== undefined && output.status !== 'succeeded' ? `: ${output.message}` : ''}`,
      );
      // Stopped by this worker's SIGTERM: no result, so the job's next delivery resumes the target.
      if (stopping && (output.status === 'interrupted' || output.status === 'stopped'))
        throw new RetryLater(`worker stopped while ${data.target} ran; another worker resumes it`);
      store.finish(jobId, JSON.stringify(output), data.target, me);
      finished = true;
      return output;
    } finally {
      clearInterval(heartbeat);
      running.delete(me);
      if (!finished) {
        try {
          store.releaseLease(data.target, me);
        } catch {
          // Stale after takeoverAfter anyway.
        }
      }
      // Off the main thread: the next target does not wait for this one's scratch files.
      removing.add(stateDir);
      void rm(stateDir, { recursive: true, force: true })
        .catch(() => {})
        .finally(() => removing.delete(stateDir));
    }
  };

  const runTarget = async (data: JobData, me: string, store: PgFleetStore, stateDir: string, signal: AbortSignal): Promise<JobOutput> => {
    const base = { worker: me };
    let target: Target | undefined;
    let env: Record<string, string | undefined>;
    try {
      const inventory = inventoryOf(data.inventory.file, data.inventory.sha256);
      if (inventory.sha256 !== data.inventory.sha256) {
        return {
          ...base,
          status: 'error',
          message: `inventory ${data.inventory.file} on this worker differs from the one the fleet was started with (sha256 ${inventory.sha256.slice(0, 12)}…, expected ${data.inventory.sha256.slice(0, 12)}…)`,
        };
      }
      target = inventory.targets.find((t) => t.name === data.target);
      if (target === undefined) return { ...base, status: 'error', message: `target ${data.target} is not in inventory ${data.inventory.file}` };
      const processEnv = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined));
      env = { ...processEnv, ...target.variables, ...target.secrets };
      const runbook = loadRunbook(data.runbook.file, { registry: options.registry, env });
      if (runbook.sha256 !== data.runbook.sha256) {
        return { ...base, status: 'error', message: `runbook ${data.runbook.file} on this worker differs from the one the fleet was started with` };
      }
      options.protect?.([...Object.values(target.secrets), ...runbook.secrets]);
      const journals = store.journals(target.name);
      materialize(journals, stateDir);
      const latest = latestRun(stateDir, options.journalKey);
      // This worker holds the lease: a run the journal shows as running lost its worker.
      const decision = latest !== undefined && latest.status === 'running' ? { action: 'resume' as const } : decide(latest);
      if (decision.action === 'skip')
        return {
          ...base,
          status: latest?.status === 'succeeded' ? 'succeeded' : 'error',
          ...(latest !== undefined ? { runId: latest.runId } : {}),
          ...(decision.why !== undefined ? { message: decision.why } : {}),
        };
      if (decision.action === 'attention')
        return { ...base, status: 'needs-attention', ...(latest !== undefined ? { runId: latest.runId } : {}), message: decision.why ?? '' };
      const t = target;
      const controller = new AbortController();
      signal.addEventListener('abort', () => {
        controller.abort(signal.reason);
      });
      const engine: EngineOptions = {
        registry: options.registry,
        stateDir,
        env,
        signal: controller.signal,
        ...(options.operator !== undefined ? { operator: options.operator } : {}),
        ...(options.journalKey !== undefined ? { journalKey: options.journalKey } : {}),
        journalSink: journals.sink(me),
        onEvent: (event) => {
          if (event.type === 'run.started' || event.type === 'run.resumed') {
            const runId = event.type === 'run.started' ? event.runId : (latest?.runId ?? '');
            store.append({ type: 'target.started', target: t.name, wave: t.wave, runId, action: event.type === 'run.started' ? 'run' : 'resume', worker: me });
          }
        },
        confirmedBy: 'approval',
        confirm: (question, stepId) => waitForApproval(store, t, runbook.sha256, stepId, question, controller, pollMs),
      };
      stopHooks.set(me, () => {
        controller.abort(new InterruptedError('SIGTERM'));
      });
      let result: RunResult;
      try {
        result = decision.action === 'resume' && latest !== undefined ? await resumeRunOf(latest.runId, engine) : await runOf(runbook, engine);
      } finally {
        stopHooks.delete(me);
      }
      const failedStep = result.steps.find((s) => s.status === 'failed' || s.error !== undefined);
      const message = result.error !== undefined ? errorMessage(result.error) : failedStep?.error?.message;
      return { ...base, status: result.status, runId: result.runId, ...(message !== undefined ? { message } : {}) };
    } catch (error) {
      if (error instanceof UsageError || error instanceof RunbookValidationError) return { ...base, status: 'error', message: errorMessage(error) };
      throw error;
    }
  };

  const stopHooks = new Map<string, () => void>();
  /**
   * Inventories loaded by this worker, by file and sha256: parsing a
   * 200-target inventory for each of its 200 jobs would cost the fleet
   * O(n²). Secrets are resolved when an inventory is first loaded here.
   */
  const inventories = new Map<string, Inventory>();
  const inventoryOf = (file: string, sha256: string): Inventory => {
    const key = `${file}\0${sha256}`;
    const known = inventories.get(key);
    if (known !== undefined) {
      try {
        if (createHash('sha256').update(readFileSync(file)).digest('hex') === sha256) return known;
      } catch {
        // Gone or unreadable now: loadInventory says so, with the file's name.
      }
    }
    const inventory = loadInventory(file);
    if (inventory.sha256 === sha256) {
      if (inventories.size >= 8) inventories.delete(inventories.keys().next().value as string);
      inventories.set(key, inventory);
    }
    return inventory;
  };
  const workIds: string[] = [];
  // Twice as many fetch loops as slots, so a job fetched ahead starts the
  // moment a slot frees (it waits for the slot in handle(), at most until its
  // expiry). pg-boss's loop waits out the rest of its polling interval after
  // each fetch unless told otherwise: a loop that just ran a job is told
  // (notifyWorker), so a busy worker asks for its next job at once and only an
  // idle one waits.
  for (let i = 0; i < concurrency * 2; i++) {
    const loop = i;
    workIds.push(
      await boss.work<JobData>(QUEUE_NAME, { batchSize: 1, pollingIntervalSeconds: x.polling }, async ([job]) => {
        if (job === undefined) return undefined;
        if (stopping) throw new RetryLater('worker stopping');
        try {
          return await handle(job.id, job.data);
        } finally {
          const id = workIds[loop];
          if (id !== undefined) boss.notifyWorker(id);
        }
      }),
    );
  }
  log(
    `worker ${os.hostname()}:${process.pid}: ${concurrency} at a time; takeover after ${x.takeoverAfter} s, within ${takeoverBoundSeconds(options)} s of a worker's death`,
  );
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  return {
    stopped,
    stop: async () => {
      if (stopping) return stopped;
      stopping = true;
      for (const id of workIds) await boss.offWork({ id }).catch(() => {});
      slots.close();
      for (const stop of stopHooks.values()) stop();
      while (running.size > 0 || removing.size > 0) await sleep(100);
      await boss.stop({ graceful: true, wait: true, timeout: 10_000 }).catch(() => {});
      db.close();
      resolveStopped();
      return stopped;
    },
  };
}

async function waitForApproval(
  store: PgFleetStore,
  target: Target,
  runbookSha256: string,
  stepId: string,
  question: string,
  controller: AbortController,
  pollMs: number,
): Promise<boolean> {
  const match = (a: Approval) =>
    (a.name === target.name || a.name === target.wave) && (a.step === undefined || a.step === stepId) && forRunbook(a, runbookSha256);
  let approval = store.approvals().find(match);
  if (approval === undefined) {
    store.append({ type: 'target.waiting', target: target.name, stepId, question });
    while (approval === undefined) {
      if (controller.signal.aborted) throw new FleetStoppedError('the worker stopped while this target waited for approval');
      await sleep(pollMs);
      approval = store.approvals().find(match);
    }
  }
  store.append({
    type: 'target.approved',
    target: target.name,
    stepId,
    approval: approval.step === undefined ? approval.name : `${approval.name} --step ${approval.step}`,
    operator: approval.operator,
  });
  return true;
}
