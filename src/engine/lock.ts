/**
 * One cutover at a time per physical database: a session-level advisory lock
 * held by a dedicated, watched session for the whole run.
 *
 * - Keyed by the server's system identifier and the database's oid, so two
 *   connection names for one database share one lock session (a run cannot
 *   lock itself out).
 * - pg_try_advisory_lock never waits: a second run fails at once, naming the
 *   holder's run id, operator, host and CLI pid, read from the tag every lock
 *   query carries (visible in pg_stat_activity.query).
 * - The session is watched: `idle_session_timeout` and
 *   `idle_in_transaction_session_timeout` are 0 for it, TCP keepalives are on,
 *   a keepalive query checks the lock is still held while steps run, and the
 *   engine checks it again before every write. A session that ends is noticed
 *   at once (the client's error/end events).
 */
import { z } from 'zod';
import type { Session } from '../db/session.js';
import { LockedError, LockLostError, errorMessage } from '../errors.js';

/** "cutover" in ASCII, as one bigint key; pg_locks shows it as classid/objid. */
export const LOCK_KEY = 0x63_75_74_6f_76_65_72n;
const CLASSID = Number(LOCK_KEY >> 32n);
const OBJID = Number(LOCK_KEY & 0xffff_ffffn);

export interface LockTag {
  readonly runId: string;
  readonly operator: string;
  readonly host: string;
  readonly pid: number;
}

const tagSchema = z.object({ runId: z.string(), operator: z.string(), host: z.string(), pid: z.number() });
const TAG_RE = /\/\* cutover-lock (\{.*?\}) \*\//;

/** A comment that names this run; `*\/` inside values is escaped so the comment cannot end early. */
export function tagComment(tag: LockTag): string {
  return `/* cutover-lock ${JSON.stringify(tag).replace(/\*\//g, '*\\/')} */`;
}

export function parseTag(query: string | null | undefined): LockTag | undefined {
  const match = TAG_RE.exec(query ?? '');
  if (match?.[1] === undefined) return undefined;
  try {
    const parsed = tagSchema.safeParse(JSON.parse(match[1]));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const TAKE_LOCK = `pg_try_advisory_lock($1::bigint) AS locked,
  (SELECT count(set_config(name, '0', false)) FROM pg_settings WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout')) AS kept`;

/**
 * Which physical database a session is on (server system identifier +
 * database oid) and the server's version, in one round trip; with `lock`,
 * the run lock is tried in the same statement (see tryLock). A role that may
 * not read the control file is told apart by the server's address instead;
 * so is a server whose pg_control_system() fails (the statement is asked
 * again without it).
 */
async function identify(
  session: Session,
  fallback: string,
  tag: LockTag,
  lock: boolean,
): Promise<{ physical: string; serverVersion: string; locked: boolean }> {
  const sql = (system: string) =>
    `SELECT ${tagComment(tag)} d.oid::text AS db, current_setting('server_version') AS version,
            host(inet_server_addr()) || ':' || current_setting('port') AS addr, ${system} AS system${lock ? `, ${TAKE_LOCK}` : ''}
       FROM pg_catalog.pg_database d WHERE d.datname = current_database()`;
  type Row = { db: string; version: string; addr: string | null; system: string | null; locked?: boolean };
  const withSystem = sql(
    "CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') THEN (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s) END",
  );
  const params = lock ? [LOCK_KEY.toString()] : [];
  const { rows } = await session.query<Row>(withSystem, params).catch(() => session.query<Row>(sql('NULL::text'), params));
  const row = rows[0];
  const db = row?.db ?? '?';
  const physical = row?.system != null ? `system ${row.system}, database oid ${db}` : `server ${row?.addr ?? fallback}, database oid ${db}`;
  return { physical, serverVersion: row?.version ?? 'unknown', locked: row?.locked === true };
}

/**
 * Tries the run lock (pg_try_advisory_lock never waits), and makes the
 * session immune to the server's idle timeouts (settings that do not exist
 * on old servers are skipped), in one statement.
 */
async function tryLock(session: Session, tag: LockTag): Promise<boolean> {
  const { rows } = await session.query<{ locked: boolean }>(`SELECT ${tagComment(tag)} ${TAKE_LOCK}`, [LOCK_KEY.toString()]);
  return rows[0]?.locked === true;
}

/** The lock is held by another session: names the holder (its run, from the tag its query carries). */
async function holderError(session: Session): Promise<LockedError> {
  const holder = await session.query<{ pid: number; application_name: string; usename: string; client: string | null; since: string; query: string | null }>(
    `SELECT a.pid, a.application_name, a.usename, a.client_addr::text AS client, a.backend_start::text AS since, a.query
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [CLASSID, OBJID],
  );
  const row = holder.rows[0];
  if (row === undefined) return new LockedError(session.connectionName, 'holder not visible to this role');
  const held = parseTag(row.query);
  const backend = `server backend pid ${row.pid}, application_name "${row.application_name}", user ${row.usename}${row.client ? ` from ${row.client}` : ''}, connected since ${row.since}`;
  const who = held !== undefined ? `run ${held.runId}, operator ${held.operator}, host ${held.host}, CLI pid ${held.pid}; ${backend}` : backend;
  return new LockedError(session.connectionName, who, held?.runId);
}

/** Whether this session still holds the run lock; throws if the session is gone. */
export async function lockStillHeld(session: Session, tag: LockTag): Promise<boolean> {
  const { rows } = await session.query<{ held: boolean }>(
    `SELECT ${tagComment(tag)} EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
        AND classid = $1 AND objid = $2 AND objsubid = 1) AS held`,
    [CLASSID, OBJID],
  );
  return rows[0]?.held === true;
}

/** A target to lock: its connection name, how to open its lock session, and the address that names it when the control file cannot be read. */
export interface LockRequest {
  readonly connection: string;
  readonly open: () => Promise<Session>;
  readonly fallbackAddress: string;
}

export interface Acquired {
  /** System identifier + database oid (or server address + oid). */
  readonly physical: string;
  /** The connection whose lock session holds this database's lock, when it is another. */
  readonly sharedWith?: string;
  readonly serverVersion: string;
}

interface Held {
  /** The connection name it was first locked through. */
  readonly connection: string;
  /** System identifier + database oid. */
  readonly physical: string;
  readonly session: Session;
}

/**
 * The locks of one run. `lost` is set (and `onLost` called once) the moment
 * any lock session ends or no longer holds its lock.
 */
export class RunLocks {
  private readonly held: Held[] = [];
  /** Every connection name this run has locked, directly or through another name, and the database it names. */
  private readonly covered = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  lost: LockLostError | undefined;

  constructor(
    private readonly tag: LockTag,
    private readonly onLost: (error: LockLostError) => void,
  ) {}

  /**
   * Locks the databases behind `targets`. Their sessions connect and learn
   * which database they reach all at once; the locks are then taken in
   * `targets`' order, so that of two names for one database the first holds
   * the lock and the second shares it (`sharedWith`), as does a database
   * this run locked before. The first target tries its lock in the same
   * round trip as it identifies: being first, it holds the lock if anyone of
   * this run does. The first failure, in order, is thrown; the locks taken
   * stay held until release().
   */
  async acquireAll(targets: readonly LockRequest[]): Promise<Acquired[]> {
    const attempts = await Promise.allSettled(
      targets.map(async ({ connection, open, fallbackAddress }, i) => {
        const session = await open();
        try {
          return { connection, session, ...(await identify(session, fallbackAddress, this.tag, i === 0)) };
        } catch (error) {
          await session.close();
          throw error;
        }
      }),
    );
    const kept = new Set<Session>();
    try {
      const acquired: Acquired[] = [];
      for (const attempt of attempts) {
        if (attempt.status === 'rejected') throw attempt.reason;
        const a = attempt.value;
        const holder = this.held.find((h) => h.physical === a.physical);
        if (holder !== undefined && !a.locked) {
          this.covered.set(a.connection, a.physical);
          acquired.push({ physical: a.physical, serverVersion: a.serverVersion, sharedWith: holder.connection });
          continue;
        }
        if (!a.locked && !(await tryLock(a.session, this.tag))) throw await holderError(a.session);
        this.keep(a.connection, a.physical, a.session);
        kept.add(a.session);
        acquired.push({ physical: a.physical, serverVersion: a.serverVersion });
      }
      return acquired;
    } finally {
      await Promise.all(attempts.flatMap((a) => (a.status === 'fulfilled' && !kept.has(a.value.session) ? [a.value.session.close()] : [])));
    }
  }

  private keep(connection: string, physical: string, session: Session): void {
    const held = { connection, physical, session };
    this.held.push(held);
    this.covered.set(connection, physical);
    // A lock let go on purpose (releaseFor) ends its session too: that is not a loss.
    session.onEnd((reason) => {
      if (this.held.includes(held)) this.markLost(connection, `the lock session ended: ${reason}`);
    });
  }

  /**
   * Lets go of the lock on `connection`'s database, on purpose: a step is about
   * to stop that server. A later step that uses it locks it again.
   */
  async releaseFor(connection: string): Promise<void> {
    const physical = this.covered.get(connection);
    if (physical === undefined) return;
    for (const [name, where] of this.covered) if (where === physical) this.covered.delete(name);
    const gone = this.held.filter((h) => h.physical === physical);
    for (const h of gone) this.held.splice(this.held.indexOf(h), 1);
    await Promise.all(gone.map((h) => h.session.close()));
  }

  /** Whether this run holds the lock of `connection`'s database already. */
  covers(connection: string): boolean {
    return this.covered.has(connection);
  }

  /**
   * Checks every lock with a query; sets `lost` and throws LockLostError if
   * one is gone. A check already under way (the keepalive) is joined, so a
   * lock session never runs two queries at once.
   */
  check(): Promise<void> {
    this.checking ??= this.checkNow().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private checking: Promise<void> | undefined;

  private lostError(): LockLostError | undefined {
    return this.lost;
  }

  private async checkNow(): Promise<void> {
    if (this.lost !== undefined) throw this.lost;
    // Every lock at once: one round trip whatever the number of targets.
    await Promise.all(
      this.held.map(async ({ connection, session }) => {
        try {
          if (!(await lockStillHeld(session, this.tag))) this.markLost(connection, 'the lock session no longer holds the advisory lock');
        } catch (error) {
          this.markLost(connection, `the lock session failed: ${errorMessage(error)}`);
        }
      }),
    );
    // Read again through a method: markLost set it, which the narrowing above cannot see.
    const lost = this.lostError();
    if (lost !== undefined) throw lost;
  }

  /** A keepalive query every `intervalMs` while steps run. */
  watch(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.check().catch(() => {});
    }, intervalMs);
    this.timer.unref();
  }

  private markLost(connection: string, reason: string): void {
    if (this.lost !== undefined || this.released) return;
    this.lost = new LockLostError(connection, reason);
    this.onLost(this.lost);
  }

  async release(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    // Closing is expected: it must not read as a lost lock.
    this.released = true;
    const sessions = this.held.splice(0);
    await Promise.all(sessions.map((h) => h.session.close()));
  }

  private released = false;
}
