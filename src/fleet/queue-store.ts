/**
 * Queue mode's state, in the queue's database (never in a target database):
 * the fleet log, approvals and wave gates, each target's journals, the
 * lease that says which worker holds a target, and each job's result.
 * Everything lives in the schema `cutover_fleet`; pg-boss keeps its jobs in
 * `cutover_queue`.
 *
 * The FleetStore and JournalStore contracts are synchronous (a journal line
 * is durable before the engine's next action), so these stores talk to
 * PostgreSQL through SyncPg.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { materialize, writeJournals, type JournalStore } from '../audit/journal-store.js';
import type { JournalLine, JournalSink } from '../audit/journal.js';
import { quoteIdent } from '../db/quote.js';
import { SyncPg } from '../db/sync-pg.js';
import { UsageError } from '../errors.js';
import {
  approvalSchema,
  fleetEventSchema,
  FleetBusyError,
  type Approval,
  type FleetEvent,
  type FleetStore,
  type NewFleetEvent,
  type TargetHold,
} from './store.js';

export const FLEET_SCHEMA = 'cutover_fleet';
const S = quoteIdent(FLEET_SCHEMA);

/** Our tables; created on first use, under an advisory lock so two processes do not race the DDL. */
const DDL = [
  `CREATE SCHEMA IF NOT EXISTS ${S}`,
  `CREATE TABLE IF NOT EXISTS ${S}.event (fleet text NOT NULL, id bigserial, record text NOT NULL, PRIMARY KEY (fleet, id))`,
  `CREATE TABLE IF NOT EXISTS ${S}.approval (fleet text NOT NULL, id bigserial, record text NOT NULL, PRIMARY KEY (fleet, id))`,
  `CREATE TABLE IF NOT EXISTS ${S}.journal_line (fleet text NOT NULL, target text NOT NULL, run_id text NOT NULL, seq integer NOT NULL, line text NOT NULL,
     written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (fleet, target, run_id, seq))`,
  `CREATE TABLE IF NOT EXISTS ${S}.lease (fleet text NOT NULL, target text NOT NULL, owner text NOT NULL, heartbeat_at timestamptz NOT NULL, PRIMARY KEY (fleet, target))`,
  `CREATE TABLE IF NOT EXISTS ${S}.job (fleet text NOT NULL, target text NOT NULL, job_id text NOT NULL, PRIMARY KEY (fleet, target))`,
  `CREATE TABLE IF NOT EXISTS ${S}.result (job_id text PRIMARY KEY, output text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ${S}.fleet_lock (fleet text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL)`,
];

/** A bigint advisory-lock key from a name (63 bits of its sha256). */
export function advisoryKey(name: string): bigint {
  return BigInt(`0x${createHash('sha256').update(name).digest('hex').slice(0, 16)}`) & 0x7fff_ffff_ffff_ffffn;
}

export function ensureSchema(db: SyncPg): void {
  // Already there (every start but the first): one query instead of the DDL and its lock.
  if (db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${FLEET_SCHEMA}.fleet_lock`]).rows[0]?.ok === true) return;
  db.query('BEGIN');
  try {
    db.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('cutover_fleet schema').toString()]);
    for (const statement of DDL) db.query(statement);
    db.query('COMMIT');
  } catch (error) {
    db.query('ROLLBACK');
    throw error;
  }
}

/** The fleet's name in the queue database: inventory name and runbook file stem, as the file store's directory. */
export function fleetId(inventoryName: string, runbookFile: string): string {
  const stem =
    path
      .basename(runbookFile)
      .replace(/\.ya?ml$/i, '')
      .replace(/[^A-Za-z0-9._-]/g, '_') || 'runbook';
  return `${inventoryName}/${stem}`;
}

/** A connection URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(queue database)';
  }
}

/** One target's journals in the queue database. */
export class PgJournalStore implements JournalStore {
  readonly location: string;
  constructor(
    private readonly db: SyncPg,
    private readonly fleet: string,
    private readonly target: string,
    where: string,
  ) {
    this.location = `${where} ${FLEET_SCHEMA}.journal_line (fleet ${fleet}, target ${target})`;
  }

  runIds(): string[] {
    return this.db
      .query<{ run_id: string }>(`SELECT DISTINCT run_id FROM ${S}.journal_line WHERE fleet = $1 AND target = $2 ORDER BY run_id`, [this.fleet, this.target])
      .rows.map((r) => r.run_id);
  }

  text(runId: string): string {
    const { rows } = this.db.query<{ line: string }>(`SELECT line FROM ${S}.journal_line WHERE fleet = $1 AND target = $2 AND run_id = $3 ORDER BY seq`, [
      this.fleet,
      this.target,
      runId,
    ]);
    return rows.map((r) => `${r.line}\n`).join('');
  }

  /**
   * Appends lines for the worker that holds the target's lease, and only
   * while it holds it: a worker that lost its lease (it stalled past the
   * takeover time and another worker took the target) cannot write one more
   * line, and the (run, seq) key refuses a second line at the same place.
   * The lease row is read FOR SHARE: a takeover in flight is waited for and
   * then seen (a plain read would see the old owner and let the line in
   * after the new owner read the journal), and a takeover waits for a line
   * being written, so the new owner reads it.
   */
  sink(owner: string): JournalSink {
    const appendAll = (lines: readonly JournalLine[]) => {
      if (lines.length === 0) return;
      // One statement: every line or none.
      const { rowCount } = this.db.query(
        `INSERT INTO ${S}.journal_line (fleet, target, run_id, seq, line)
         SELECT $1, $2, l.run_id, l.seq, l.line FROM ${S}.lease, unnest($3::text[], $4::int[], $5::text[]) AS l (run_id, seq, line)
          WHERE lease.fleet = $1 AND lease.target = $2 AND lease.owner = $6 FOR SHARE OF lease`,
        [this.fleet, this.target, lines.map((l) => l.runId), lines.map((l) => l.seq), lines.map((l) => l.text), owner],
      );
      if (rowCount !== lines.length) throw new LeaseLostError(this.target, owner);
    };
    return {
      append: (line) => {
        appendAll([line]);
      },
      appendAll,
    };
  }
}

/** This worker no longer holds the target: another worker took it over. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly target: string,
    readonly owner: string,
  ) {
    super(`target ${target}: this worker (${owner}) no longer holds the target's lease; another worker took it over`);
  }
}

/**
 * The fleet's log, approvals and lock in the queue database, so `fleet
 * approve` and `fleet status` work from any machine. `targetStateDir` writes
 * the target's journals from the database to a local cache first: readers
 * (status, resume decisions) fold files, as in the one-machine mode.
 */
export class PgFleetStore implements FleetStore {
  readonly location: string;
  private cache: string | undefined;
  private readonly lockKey: bigint;

  constructor(
    readonly db: SyncPg,
    readonly fleet: string,
    private readonly where: string,
    /** A target's lease without a heartbeat this long is stale: its worker is gone (the fleet's --takeover-after). */
    private readonly staleAfterSeconds = 300,
  ) {
    this.location = `${where} (fleet ${fleet})`;
    this.lockKey = advisoryKey(`cutover fleet ${fleet}`);
  }

  journals(target: string): PgJournalStore {
    return new PgJournalStore(this.db, this.fleet, target, this.where);
  }

  targetStateDir(target: string): string {
    return this.targetStateDirs([target]).get(target) as string;
  }

  /** Every journal of these targets in one query, written to the local cache. */
  targetStateDirs(targets: readonly string[]): Map<string, string> {
    const cache = (this.cache ??= mkdtempSync(path.join(os.tmpdir(), 'cutover-fleet-')));
    const journals = new Map<string, Map<string, string[]>>();
    const { rows } = this.db.query<{ target: string; run_id: string; line: string }>(
      `SELECT target, run_id, line FROM ${S}.journal_line WHERE fleet = $1 AND target = ANY($2::text[]) ORDER BY target, run_id, seq`,
      [this.fleet, targets],
    );
    for (const row of rows) {
      const runs = journals.get(row.target) ?? new Map<string, string[]>();
      journals.set(row.target, runs);
      const lines = runs.get(row.run_id) ?? [];
      runs.set(row.run_id, lines);
      lines.push(`${row.line}\n`);
    }
    const dirs = new Map<string, string>();
    for (const target of targets) {
      const dir = path.join(cache, target);
      const runs = journals.get(target);
      if (runs !== undefined) writeJournals(dir, new Map([...runs].map(([id, lines]) => [id, lines.join('')])));
      dirs.set(target, dir);
    }
    return dirs;
  }

  /** Takes the target's lease for `owner` if it is free, or stale: no heartbeat for `staleAfterSeconds` (its holder is gone). */
  takeLease(target: string, owner: string, staleAfterSeconds: number): boolean {
    return (
      this.db.query(
        `INSERT INTO ${S}.lease AS l (fleet, target, owner, heartbeat_at) VALUES ($1, $2, $3, clock_timestamp())
         ON CONFLICT (fleet, target) DO UPDATE SET owner = EXCLUDED.owner, heartbeat_at = EXCLUDED.heartbeat_at
         WHERE l.heartbeat_at < clock_timestamp() - make_interval(secs => $4::double precision)`,
        [this.fleet, target, owner, staleAfterSeconds],
      ).rowCount === 1
    );
  }

  /**
   * A job's delivery, in one round trip: the result an earlier delivery of
   * the job left (then no lease is taken), or whether the target's lease was
   * taken for `owner` (free, or stale as in takeLease).
   */
  claim(jobId: string, target: string, owner: string, staleAfterSeconds: number): { readonly output: string } | { readonly taken: boolean } {
    const row = this.db.query<{ output: string | null; taken: boolean }>(
      `WITH done AS (SELECT output FROM ${S}.result WHERE job_id = $1),
       taken AS (
         INSERT INTO ${S}.lease AS l (fleet, target, owner, heartbeat_at)
         SELECT $2, $3, $4, clock_timestamp() WHERE NOT EXISTS (SELECT FROM done)
         ON CONFLICT (fleet, target) DO UPDATE SET owner = EXCLUDED.owner, heartbeat_at = EXCLUDED.heartbeat_at
         WHERE l.heartbeat_at < clock_timestamp() - make_interval(secs => $5::double precision)
         RETURNING 1)
       SELECT (SELECT output FROM done) AS output, EXISTS (SELECT FROM taken) AS taken`,
      [jobId, this.fleet, target, owner, staleAfterSeconds],
    ).rows[0];
    return row?.output != null ? { output: row.output } : { taken: row?.taken === true };
  }

  /** A job's result, and the target's lease released with it (one statement: both or neither). */
  finish(jobId: string, output: string, target: string, owner: string): void {
    this.db.query(
      `WITH saved AS (INSERT INTO ${S}.result (job_id, output) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING)
       DELETE FROM ${S}.lease WHERE fleet = $3 AND target = $4 AND owner = $5`,
      [jobId, output, this.fleet, target, owner],
    );
  }

  /**
   * Takes back a job no worker has started, in one statement: the target's
   * lease is taken (only if free) and the job's result written, so a worker
   * that fetches the job finds the result and runs nothing (claim). False
   * when a worker holds the lease (the target runs, and finishes) or the job
   * has a result already. The lease is let go right after.
   */
  withdraw(jobId: string, target: string, output: string): boolean {
    const owner = `withdrawn:${jobId}`;
    const row = this.db.query<{ withdrawn: boolean }>(
      `WITH held AS (
         INSERT INTO ${S}.lease (fleet, target, owner, heartbeat_at) VALUES ($1, $2, $3, clock_timestamp())
         ON CONFLICT (fleet, target) DO NOTHING RETURNING 1),
       saved AS (
         INSERT INTO ${S}.result (job_id, output) SELECT $4, $5 WHERE EXISTS (SELECT FROM held)
         ON CONFLICT (job_id) DO NOTHING RETURNING 1)
       SELECT EXISTS (SELECT FROM saved) AS withdrawn`,
      [this.fleet, target, owner, jobId, output],
    ).rows[0];
    this.releaseLease(target, owner);
    return row?.withdrawn === true;
  }

  /** The target's lease, released by its owner. */
  releaseLease(target: string, owner: string): void {
    this.db.query(`DELETE FROM ${S}.lease WHERE fleet = $1 AND target = $2 AND owner = $3`, [this.fleet, target, owner]);
  }

  /**
   * Takes the target's lease as a worker does (free, or stale for
   * staleAfterSeconds), so no worker runs it meanwhile and the journal lines
   * written here are accepted by the queue database; renews it while held.
   */
  hold(target: string): TargetHold {
    const owner = `${os.hostname()}:${process.pid}:here:${randomBytes(2).toString('hex')}`;
    if (!this.takeLease(target, owner, this.staleAfterSeconds)) throw new FleetBusyError(`target ${target} is held by a live worker: let its job end first`);
    const release = () => {
      this.releaseLease(target, owner);
    };
    let stateDir: string;
    try {
      stateDir = mkdtempSync(path.join(os.tmpdir(), 'cutover-hold-'));
      materialize(this.journals(target), stateDir);
    } catch (error) {
      release();
      throw error;
    }
    const beat = setInterval(
      () => {
        try {
          this.db.query(`UPDATE ${S}.lease SET heartbeat_at = clock_timestamp() WHERE fleet = $1 AND target = $2 AND owner = $3`, [this.fleet, target, owner]);
        } catch {
          // The next beat tries again; the lease goes stale only after staleAfterSeconds.
        }
      },
      Math.max(250, (this.staleAfterSeconds * 1000) / 4),
    );
    return {
      stateDir,
      journalSink: this.journals(target).sink(owner),
      release: () => {
        clearInterval(beat);
        try {
          release();
        } finally {
          rmSync(stateDir, { recursive: true, force: true });
        }
      },
    };
  }

  append(event: NewFleetEvent): FleetEvent {
    const record = { ...event, ts: new Date().toISOString() };
    this.db.query(`INSERT INTO ${S}.event (fleet, record) VALUES ($1, $2)`, [this.fleet, JSON.stringify(record)]);
    return record;
  }

  events(): FleetEvent[] {
    return (
      this.db
        // Ordered by the number: ORDER BY id would sort the text column of that name (1, 10, 2).
        .query<{ seq: string; record: string }>(`SELECT id::text AS seq, record FROM ${S}.event WHERE fleet = $1 ORDER BY ${S}.event.id`, [this.fleet])
        .rows.map((row) => {
          const parsed = fleetEventSchema.safeParse(JSON.parse(row.record));
          if (!parsed.success)
            throw new UsageError(`${FLEET_SCHEMA}.event id ${row.seq}: not a fleet record (${parsed.error.issues[0]?.message ?? 'invalid'})`);
          return parsed.data;
        })
    );
  }

  /** The id of the fleet's newest event ('0' for none): where `eventsAfter` starts. */
  lastEventSeq(): string {
    return this.db.query<{ seq: string }>(`SELECT COALESCE(max(id), 0)::text AS seq FROM ${S}.event WHERE fleet = $1`, [this.fleet]).rows[0]?.seq ?? '0';
  }

  /** The fleet's events after `seq`, each with its own id; records that do not parse are passed over (events() names them). */
  eventsAfter(seq: string): { readonly seq: string; readonly event: FleetEvent }[] {
    return this.db
      .query<{ seq: string; record: string }>(`SELECT id::text AS seq, record FROM ${S}.event WHERE fleet = $1 AND id > $2::bigint ORDER BY ${S}.event.id`, [
        this.fleet,
        seq,
      ])
      .rows.flatMap((row) => {
        const parsed = fleetEventSchema.safeParse(JSON.parse(row.record));
        return parsed.success ? [{ seq: row.seq, event: parsed.data }] : [];
      });
  }

  approvals(): Approval[] {
    return this.db.query<{ record: string }>(`SELECT record FROM ${S}.approval WHERE fleet = $1 ORDER BY id`, [this.fleet]).rows.flatMap((row) => {
      const parsed = approvalSchema.safeParse(JSON.parse(row.record));
      return parsed.success ? [parsed.data] : [];
    });
  }

  approve(approval: Omit<Approval, 'at'>): Approval {
    const record: Approval = { ...approval, at: new Date().toISOString() };
    this.db.query(`INSERT INTO ${S}.approval (fleet, record) VALUES ($1, $2)`, [this.fleet, JSON.stringify(record)]);
    return record;
  }

  /** A session advisory lock in the queue database: it goes with the process (or machine) that holds it. */
  lock(): () => void {
    const { rows } = this.db.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [this.lockKey.toString()]);
    if (rows[0]?.locked !== true) {
      const holder = this.db.query<{ host: string; pid: number }>(`SELECT host, pid FROM ${S}.fleet_lock WHERE fleet = $1`, [this.fleet]).rows[0];
      throw new FleetBusyError(
        `fleet ${this.fleet} is being run by ${holder !== undefined ? `process ${holder.pid} on ${holder.host}` : 'another process'}; wait for it, or stop it (Ctrl-C) first`,
      );
    }
    this.db.query(
      `INSERT INTO ${S}.fleet_lock (fleet, host, pid) VALUES ($1, $2, $3) ON CONFLICT (fleet) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid`,
      [this.fleet, os.hostname(), process.pid],
    );
    return () => {
      this.db.query('SELECT pg_advisory_unlock($1::bigint)', [this.lockKey.toString()]);
    };
  }

  holder(): number | undefined {
    const key = this.lockKey;
    const { rows } = this.db.query<{ pid: number }>(
      `SELECT f.pid FROM ${S}.fleet_lock f WHERE f.fleet = $1 AND EXISTS (
         SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $2 AND l.objid::bigint = $3 AND l.objsubid = 1)`,
      [this.fleet, (key >> 32n).toString(), (key & 0xffff_ffffn).toString()],
    );
    return rows[0]?.pid;
  }

  /** Removes the local cache of journals. */
  dispose(): void {
    if (this.cache !== undefined) rmSync(this.cache, { recursive: true, force: true });
    this.cache = undefined;
  }
}

/** A session on the queue database with our schema in place (created on first use). */
export function openQueueDb(url: string): SyncPg {
  // The driver reads anything else as a path under a host named "base".
  if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`--queue ${redactUrl(url)}: expected a postgres:// URL (postgres://user@host:port/database)`);
  const db = new SyncPg(url, { applicationName: `cutover fleet ${randomBytes(2).toString('hex')}` });
  try {
    ensureSchema(db);
  } catch (error) {
    db.close();
    throw new UsageError(`--queue ${redactUrl(url)}: ${(error as Error).message}`);
  }
  return db;
}

/** Opens the queue database for one fleet's stores. */
export function openQueueStore(url: string, fleet: string, staleAfterSeconds?: number): PgFleetStore {
  return new PgFleetStore(openQueueDb(url), fleet, redactUrl(url), staleAfterSeconds);
}

/** One target's journals in a queue database, for `cutover audit verify --queue`. */
export function openQueueJournals(url: string, fleet: string, target: string): { journals: PgJournalStore; close: () => void } {
  const store = openQueueStore(url, fleet);
  return {
    journals: store.journals(target),
    close: () => {
      store.db.close();
    },
  };
}
