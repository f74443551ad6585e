/**
 * Replication slots and subscriptions as the catalogs describe them, read in
 * one query each. Columns that only some versions have (failover,
 * invalidation_reason: 17+) are read through to_jsonb, so one query serves
 * every version.
 */
import { done, notYet, poll } from '../poll.js';
import { z } from 'zod';
import { RefusedError } from '../errors.js';
import type { Queryable } from '../db/session.js';
import { globMatcher } from '../runbook/patterns.js';

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

/** A SlotDefinition as it crosses the journal and saved plans. */
export const slotDefinitionSchema = z.strictObject({
  name: z.string(),
  type: z.enum(['logical', 'physical']),
  plugin: z.string().nullable(),
  database: z.string().nullable(),
  twoPhase: z.boolean(),
  failover: z.boolean(),
  reserveWal: z.boolean(),
});

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

/** How long a terminated walsender may take to let go of its slot. */
const RELEASE_TIMEOUT_MS = 30_000;

export const isPattern = (name: string): boolean => /[*?]/.test(name);

/** `1.5 kB`, `5.0 GB`: 1024-based units with one decimal (null stays null). */
export function formatBytes(bytes: number | null): string | null {
  if (bytes === null) return null;
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The slots a selection names (names or patterns; none: all), of one type
 * if given; explicit names that match nothing are returned apart.
 */
export function selectSlots(
  slots: readonly Slot[],
  selection: { readonly names?: readonly string[] | undefined; readonly type?: 'logical' | 'physical' | undefined },
): { selected: Slot[]; unmatched: string[] } {
  const names = selection.names ?? [];
  const wanted = names.length === 0 ? () => true : globMatcher(names);
  const selected = slots.filter((s) => wanted(s.name) && (selection.type === undefined || s.type === selection.type));
  const unmatched = names.filter((n) => !isPattern(n) && !selected.some((s) => s.name === n));
  return { selected, unmatched };
}

export async function currentDatabase(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0]?.db ?? '';
}

/** Waits until no process holds the slot (a terminated walsender takes a moment to exit). */
export async function waitReleased(db: Queryable, name: string, signal: AbortSignal): Promise<void> {
  const found = await poll(
    async () => {
      const slot = (await readSlots(db)).find((s) => s.name === name);
      return slot === undefined || !slot.active ? done(undefined) : notYet(slot.activePid);
    },
    { intervalMs: 100, timeoutMs: RELEASE_TIMEOUT_MS, signal },
  );
  if (!found.done) throw new RefusedError(`slot ${name} is still held by pid ${found.seen ?? '?'} after ${RELEASE_TIMEOUT_MS}ms`);
}
