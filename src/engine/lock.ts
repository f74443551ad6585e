/**
 * One cutover at a time per target database: a session-level advisory lock
 * held by a dedicated session for the whole run. pg_try_advisory_lock never
 * waits, so a second run fails at once, naming who holds the lock.
 */
import type { Session } from '../db/session.js';
import { LockedError } from '../errors.js';

/** "cutover" in ASCII, as one bigint key; pg_locks shows it as classid/objid. */
export const LOCK_KEY = 0x63_75_74_6f_76_65_72n;
const CLASSID = Number(LOCK_KEY >> 32n);
const OBJID = Number(LOCK_KEY & 0xffff_ffffn);

export async function acquireRunLock(session: Session): Promise<void> {
  const { rows } = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
    LOCK_KEY.toString(),
  ]);
  if (rows[0]?.locked === true) return;
  const holder = await session.query<{ pid: number; application_name: string; usename: string; client: string | null; since: string }>(
    `SELECT a.pid, a.application_name, a.usename, a.client_addr::text AS client, a.backend_start::text AS since
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [CLASSID, OBJID],
  );
  const row = holder.rows[0];
  const who = row
    ? `pid ${row.pid}, application_name "${row.application_name}", user ${row.usename}${row.client ? ` from ${row.client}` : ''}, connected since ${row.since}`
    : 'holder not visible to this role';
  throw new LockedError(session.connectionName, who);
}
