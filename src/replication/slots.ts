/**
 * Replication slots and subscriptions as the catalogs describe them, read in
 * one query each. Columns that only some versions have (failover,
 * invalidation_reason: 17+) are read through to_jsonb, so one query serves
 * every version.
 */
import type { Queryable } from '../db/session.js';

export interface Slot {
  readonly name: string;
  readonly type: 'logical' | 'physical';
  readonly plugin: string | null;
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly temporary: boolean;
  readonly twoPhase: boolean;
  /** null where the server has no such column (before 17). */
  readonly failover: boolean | null;
  readonly walStatus: string | null;
  readonly invalidationReason: string | null;
  readonly restartLsn: string | null;
  readonly confirmedFlushLsn: string | null;
  /** WAL kept for it: current position - restart_lsn (null on a standby or without restart_lsn). */
  readonly retainedBytes: number | null;
  /** Logical only: current position - confirmed_flush_lsn. */
  readonly lagBytes: number | null;
}

interface SlotRow {
  slot: Record<string, unknown>;
  retained_bytes: string | null;
  lag_bytes: string | null;
}

const SLOTS_SQL = `SELECT to_jsonb(s) AS slot,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.restart_lsn)::text END AS retained_bytes,
       CASE WHEN pg_is_in_recovery() OR s.slot_type <> 'logical' THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.confirmed_flush_lsn)::text END AS lag_bytes
  FROM pg_replication_slots s
 ORDER BY s.slot_name`;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: string | null): number | null => (v === null ? null : Number(v));

export async function readSlots(db: Queryable): Promise<Slot[]> {
  const { rows } = await db.query<SlotRow>(SLOTS_SQL);
  return rows.map(({ slot: s, retained_bytes, lag_bytes }) => ({
    name: String(s['slot_name']),
    type: s['slot_type'] === 'logical' ? 'logical' : 'physical',
    plugin: str(s['plugin']),
    database: str(s['database']),
    active: s['active'] === true,
    activePid: typeof s['active_pid'] === 'number' ? s['active_pid'] : null,
    temporary: s['temporary'] === true,
    twoPhase: s['two_phase'] === true,
    failover: typeof s['failover'] === 'boolean' ? s['failover'] : null,
    walStatus: str(s['wal_status']),
    invalidationReason: str(s['invalidation_reason']),
    restartLsn: str(s['restart_lsn']),
    confirmedFlushLsn: str(s['confirmed_flush_lsn']),
    retainedBytes: num(retained_bytes),
    lagBytes: num(lag_bytes),
  }));
}

/** What recreating a dropped slot needs (its position cannot be part of it). */
export interface SlotDefinition {
  readonly name: string;
  readonly type: 'logical' | 'physical';
  readonly plugin: string | null;
  readonly database: string | null;
  readonly twoPhase: boolean;
  readonly failover: boolean;
  /** Physical slots: whether it reserved WAL (restart_lsn set), so the recreated one does too. */
  readonly reserveWal: boolean;
}

export function definitionOf(slot: Slot): SlotDefinition {
  return {
    name: slot.name,
    type: slot.type,
    plugin: slot.plugin,
    database: slot.database,
    twoPhase: slot.twoPhase,
    failover: slot.failover === true,
    reserveWal: slot.restartLsn !== null,
  };
}

/** The statement that creates a slot like `d`, with its parameters. */
export function createSlotStatement(d: SlotDefinition): { sql: string; params: (string | boolean)[] } {
  if (d.type === 'physical') {
    return { sql: 'SELECT pg_create_physical_replication_slot($1, $2) IS NOT NULL AS created', params: [d.name, d.reserveWal] };
  }
  // failover exists from 17; name it only when set, so older servers accept the call.
  return d.failover
    ? {
        sql: 'SELECT pg_create_logical_replication_slot(slot_name => $1, plugin => $2, twophase => $3, failover => $4) IS NOT NULL AS created',
        params: [d.name, d.plugin ?? 'pgoutput', d.twoPhase, true],
      }
    : {
        sql: 'SELECT pg_create_logical_replication_slot(slot_name => $1, plugin => $2, twophase => $3) IS NOT NULL AS created',
        params: [d.name, d.plugin ?? 'pgoutput', d.twoPhase],
      };
}

export const DROP_SLOT_SQL = 'SELECT pg_drop_replication_slot($1) IS NULL AS dropped';
export const TERMINATE_SQL = 'SELECT pg_terminate_backend($1) AS terminated';

export interface Subscription {
  readonly name: string;
  readonly enabled: boolean;
  readonly slot: string | null;
  /** The apply worker's pid, when one runs. */
  readonly workerPid: number | null;
}

/** Subscriptions of the connected database (subconninfo is not read: it may hold a password). */
export async function readSubscriptions(db: Queryable): Promise<Subscription[]> {
  const { rows } = await db.query<{ name: string; enabled: boolean; slot: string | null; pid: number | null }>(
    `SELECT s.subname AS name, s.subenabled AS enabled, s.subslotname AS slot,
            (SELECT max(w.pid) FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL) AS pid
       FROM pg_subscription s
      WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY s.subname`,
  );
  return rows.map((r) => ({ name: r.name, enabled: r.enabled, slot: r.slot, workerPid: r.pid }));
}
