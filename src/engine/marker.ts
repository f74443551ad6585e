/**
 * Whether a step's transaction committed, asked of the server after a crash,
 * without any object of ours in the application's database.
 *
 * Before COMMIT the engine journals (fsync) the transaction's id; afterwards
 * `pg_xact_status(xid)` says `committed`, `aborted` or `in progress`, or NULL
 * when the id is too old for the server to remember (an unknown outcome).
 * No journaled id means the process died before it sent COMMIT: not committed.
 *
 * cutover 0.1 wrote a marker row to `cutover.applied_steps` in the step's
 * transaction instead. Databases that hold that table keep working: a run
 * journaled without transaction ids is reconciled from its row.
 */
import { done, notYet, poll } from '../poll.js';
import type { Queryable } from '../db/session.js';
import type { Json } from '../step/contract.js';

async function serverVersionNum(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Number(rows[0]?.v ?? 0);
}

/** The id of the open transaction (assigning one if it has none yet), epoch-extended, as text. */
export async function currentXid(tx: Queryable): Promise<string> {
  // pg_current_xact_id() is 13+; txid_current() gives the same 64-bit value on older servers.
  const fn = (await serverVersionNum(tx)) >= 130000 ? 'pg_current_xact_id()::text' : 'txid_current()::text';
  const { rows } = await tx.query<{ xid: string }>(`SELECT ${fn} AS xid`);
  const xid = rows[0]?.xid;
  if (xid === undefined || !/^\d+$/.test(xid)) throw new Error(`the server returned no transaction id (${String(xid)})`);
  return xid;
}

export type XactStatus = 'committed' | 'aborted' | 'in progress' | 'unknown';

/**
 * What became of a transaction. `in progress` is waited out for up to
 * `waitMs` (the dead process's backend aborts once it notices the socket
 * closed); still running, or forgotten by the server, is `unknown`.
 */
export async function xactStatus(db: Queryable, xid: string, options: { readonly waitMs: number; readonly signal?: AbortSignal }): Promise<XactStatus> {
  const fn = (await serverVersionNum(db)) >= 130000 ? 'pg_xact_status($1::text::xid8)' : 'txid_status($1::bigint)';
  const found = await poll<XactStatus, string>(
    async () => {
      const { rows } = await db.query<{ status: string | null }>(`SELECT ${fn} AS status`, [xid]);
      const status = rows[0]?.status ?? null;
      if (status === 'committed' || status === 'aborted') return done(status);
      return status === null ? done('unknown') : notYet(status);
    },
    { intervalMs: 200, timeoutMs: options.waitMs, signal: options.signal },
  );
  return found.done ? found.value : 'in progress';
}

export interface LegacyMarker {
  readonly before: Json;
  readonly rolledBack: boolean;
}

/** The 0.1 marker row of a step, if that version's table exists and holds one. */
export async function readLegacyMarker(session: Queryable, runId: string, stepId: string): Promise<LegacyMarker | undefined> {
  const exists = await session.query<{ present: boolean }>("SELECT to_regclass('cutover.applied_steps') IS NOT NULL AS present");
  if (exists.rows[0]?.present !== true) return undefined;
  const { rows } = await session.query<{ before_state: Json; rolled_back: boolean }>(
    'SELECT before_state, rolled_back_at IS NOT NULL AS rolled_back FROM cutover.applied_steps WHERE run_id = $1 AND step_id = $2',
    [runId, stepId],
  );
  const row = rows[0];
  return row === undefined ? undefined : { before: row.before_state, rolledBack: row.rolled_back };
}
