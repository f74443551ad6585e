/**
 * How far each replication consumer is behind a WAL position: logical slots
 * by confirmed_flush_lsn, physical standbys by replay_lsn. What a wait for
 * "caught up" polls.
 */
import type { Queryable } from '../db/session.js';
import { globMatcher } from '../runbook/patterns.js';
import { formatBytes, isPattern } from './slots.js';

export interface Position {
  readonly name: string;
  readonly lsn: string | null;
  /** Bytes still to confirm up to the target position (null: never confirmed). */
  readonly behind: number | null;
  /** A logical slot no process reads: waiting for it is waiting for nothing (a disabled subscription). */
  readonly inactive?: true;
}

/** Which consumers to watch: standbys by application_name, or logical slots (names or patterns; none: all). */
export type Watched = { readonly standbys: readonly string[] } | { readonly slots: readonly string[] };

export const STANDBY_POSITIONS_SQL = `SELECT application_name AS name, replay_lsn::text AS lsn, pg_wal_lsn_diff($1::pg_lsn, replay_lsn)::text AS behind
  FROM pg_stat_replication ORDER BY application_name`;

export const SLOT_POSITIONS_SQL = `SELECT slot_name AS name, confirmed_flush_lsn::text AS lsn, pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::text AS behind, active
  FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY slot_name`;

/** Where each watched consumer is, relative to `target` (default: the current WAL insert position). */
export async function positions(db: Queryable, watched: Watched, target?: string): Promise<{ target: string; positions: Position[]; unmatched: string[] }> {
  // The insert position, not pg_current_wal_lsn() (the write position): a
  // commit made with synchronous_commit off may not be written yet, and it
  // still has to reach every consumer.
  const { rows: now } = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const at = target ?? now[0]?.lsn ?? '0/0';
  const standbys = 'standbys' in watched;
  const names = standbys ? watched.standbys : watched.slots;
  const { rows } = await db.query<{ name: string; lsn: string | null; behind: string | null; active?: boolean }>(
    standbys ? STANDBY_POSITIONS_SQL : SLOT_POSITIONS_SQL,
    [at],
  );
  // Standbys are always named; slots default to every logical one.
  const wanted = !standbys && names.length === 0 ? () => true : globMatcher(names);
  const found = rows.filter((r) => wanted(r.name));
  const unmatched = names.filter((n) => !isPattern(n) && !found.some((r) => r.name === n));
  return {
    target: at,
    positions: found.map((r) => ({
      name: r.name,
      lsn: r.lsn,
      behind: r.behind === null ? null : Number(r.behind),
      ...(r.active === false ? { inactive: true as const } : {}),
    })),
    unmatched,
  };
}

export const behindText = (p: Position): string =>
  `${p.behind === null ? `${p.name} (never confirmed)` : `${p.name} ${formatBytes(Math.max(0, p.behind))} behind`}${
    p.inactive === true ? ' (inactive: no process reads this slot, so it will not catch up by waiting; is its subscription disabled?)' : ''
  }`;

export class CatchUpTimeoutError extends Error {
  override readonly name = 'CatchUpTimeoutError';
  constructor(
    readonly target: string,
    readonly timeoutMs: number,
    readonly laggards: readonly Position[],
  ) {
    super(`not caught up with ${target} after ${timeoutMs}ms: ${laggards.map(behindText).join(', ')}`);
  }
}
