/**
 * Subscriptions of the connected database as the catalog describes them, the
 * statements that switch and detach them, and the wait for their apply
 * workers. What the subscription kinds plan and apply from.
 */
import { done, notYet, poll } from '../poll.js';
import type { Queryable } from '../db/session.js';
import { quoteIdent } from '../db/quote.js';

/** How long a stopped apply worker (and its walsender on the publisher) may take to exit. */
export const WORKER_EXIT_TIMEOUT_MS = 30_000;

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

/** The subscriptions named (none: all of the database); explicit names that do not exist are returned apart. */
export function selectSubscriptions(subs: readonly Subscription[], names: readonly string[] | undefined): { selected: Subscription[]; missing: string[] } {
  if (names === undefined || names.length === 0) return { selected: [...subs], missing: [] };
  return {
    selected: subs.filter((s) => names.includes(s.name)),
    missing: names.filter((n) => !subs.some((s) => s.name === n)),
  };
}

/** The selected subscriptions a switch to `enable` changes, each with its `enabled` now. */
export const togglesOf = (subs: readonly Subscription[], names: readonly string[] | undefined, enable: boolean) =>
  selectSubscriptions(subs, names)
    .selected.filter((s) => s.enabled !== enable)
    .map((s) => ({ name: s.name, enabled: s.enabled }));

export const alterSubscription = (name: string, enable: boolean): string => `ALTER SUBSCRIPTION ${quoteIdent(name)} ${enable ? 'ENABLE' : 'DISABLE'}`;

/** Disable, let go of the slot, drop: without a slot, DROP SUBSCRIPTION does not contact the publisher. */
export const detachStatements = (name: string): string[] => [
  alterSubscription(name, false),
  `ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`,
  `DROP SUBSCRIPTION ${quoteIdent(name)}`,
];

/**
 * Waits until the named subscriptions' apply workers run (or, `running`
 * false, have exited: a disabled subscription's worker exits on its own).
 * Returns the names still not there at the deadline.
 */
export async function waitWorkers(db: Queryable, names: readonly string[], running: boolean, signal: AbortSignal): Promise<string[]> {
  const found = await poll(
    async () => {
      const subs = (await readSubscriptions(db)).filter((s) => names.includes(s.name));
      const waiting = subs.filter((s) => (s.workerPid !== null) !== running).map((s) => s.name);
      return waiting.length === 0 ? done([]) : notYet(waiting);
    },
    { intervalMs: 200, timeoutMs: WORKER_EXIT_TIMEOUT_MS, signal },
  );
  return found.done ? found.value : found.seen;
}
