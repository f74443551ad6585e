/**
 * The subscription actions of `replication-slots`, on the subscriber side:
 * disable and enable (transactional, undone by the opposite), and detach for
 * the final switch (disable, let go of the slot, drop the subscription, and
 * optionally drop its slot on the publisher), which cannot be undone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RefusedError, UsageError, VerificationError } from '../errors.js';
import type { Action, Json, Step } from '../engine/step.js';
import type { Queryable } from '../db/session.js';
import { quoteIdent } from '../db/quote.js';
import type { SlotsConfig } from './config.js';
import { connectionOf, type ActionHandler } from './slot-actions.js';
import { DROP_SLOT_SQL, readSlots, readSubscriptions, type Subscription } from './slots.js';

/** How long a stopped apply worker (and its walsender on the publisher) may take to exit. */
const WORKER_EXIT_TIMEOUT_MS = 30_000;

interface Toggled {
  readonly subscriptions: readonly { readonly name: string; readonly enabled: boolean }[];
}

const toggledOf = (json: Json | undefined): Toggled['subscriptions'] =>
  (json as unknown as Toggled | null)?.subscriptions ?? [];

/** The selected subscriptions; explicit names that do not exist are returned apart. */
function select(subs: readonly Subscription[], config: SlotsConfig): { selected: Subscription[]; missing: string[] } {
  const names = config.subscriptions;
  if (names === undefined || names.length === 0) return { selected: [...subs], missing: [] };
  return {
    selected: subs.filter((s) => names.includes(s.name)),
    missing: names.filter((n) => !subs.some((s) => s.name === n)),
  };
}

const alter = (name: string, enable: boolean) => `ALTER SUBSCRIPTION ${quoteIdent(name)} ${enable ? 'ENABLE' : 'DISABLE'}`;

/** A disabled subscription's apply worker exits on its own; wait for it so "disabled" means "not applying". */
async function waitWorkers(db: Queryable, names: readonly string[], running: boolean, signal: AbortSignal): Promise<string[]> {
  const deadline = Date.now() + WORKER_EXIT_TIMEOUT_MS;
  for (;;) {
    const subs = (await readSubscriptions(db)).filter((s) => names.includes(s.name));
    const waiting = subs.filter((s) => (s.workerPid !== null) !== running).map((s) => s.name);
    if (waiting.length === 0 || Date.now() > deadline) return waiting;
    await sleep(200, undefined, { signal });
  }
}

function toggle(enable: boolean): ActionHandler {
  const verb = enable ? 'enable' : 'disable';
  return {
    effects: 'transaction',
    reversibility: { kind: 'reversible' },
    async plan(ctx, step) {
      const connection = connectionOf(step);
      const { selected, missing } = select(await readSubscriptions(await ctx.session(connection)), step.config);
      const actions: Action[] = selected
        .filter((s) => s.enabled !== enable)
        .map((s) => ({ type: 'sql', connection, sql: alter(s.name, enable) }));
      return {
        actions,
        tables: [
          {
            title: 'subscriptions',
            columns: [
              { key: 'subscription', title: 'subscription' },
              { key: 'enabled', title: 'enabled' },
              { key: 'slot', title: 'slot' },
              { key: 'worker', title: 'apply worker' },
              { key: 'action', title: 'action' },
            ],
            rows: selected.map((s) => ({
              subscription: s.name,
              enabled: s.enabled,
              slot: s.slot,
              worker: s.workerPid === null ? 'none' : `pid ${s.workerPid}`,
              action: s.enabled === enable ? `already ${verb}d` : verb,
            })),
          },
        ],
        ...(missing.length > 0 ? { blockers: missing.map((n) => `no subscription named ${n} in this database`) } : {}),
      };
    },
    async apply(ctx, step) {
      const tx = ctx.tx;
      if (tx === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but got none`);
      const { selected } = select(await readSubscriptions(tx), step.config);
      const changed = selected.filter((s) => s.enabled !== enable);
      for (const s of changed) await tx.query(alter(s.name, enable));
      const before: Toggled = { subscriptions: changed.map((s) => ({ name: s.name, enabled: s.enabled })) };
      return { before: before as unknown as Json, output: `${verb}d ${changed.length} subscription(s)` };
    },
    async verify(ctx, step, _plan, before) {
      const db = await ctx.session(connectionOf(step));
      const names = toggledOf(before).map((s) => s.name);
      const wrong = (await readSubscriptions(db)).filter((s) => names.includes(s.name) && s.enabled !== enable);
      if (wrong.length > 0) throw new VerificationError(`not ${verb}d: ${wrong.map((s) => s.name).join(', ')}`);
      if (!enable) {
        const still = await waitWorkers(db, names, false, ctx.signal);
        if (still.length > 0) throw new VerificationError(`disabled, but an apply worker still runs for: ${still.join(', ')}`);
      }
    },
    async rollback(ctx, step, before) {
      const tx = ctx.tx;
      if (tx === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but got none`);
      for (const s of toggledOf(before)) await tx.query(alter(s.name, s.enabled));
    },
  };
}

export const disableSubscriptions = toggle(false);
export const enableSubscriptions = toggle(true);

// ---------------------------------------------------------------------- detach

interface Detached {
  readonly subscriptions: readonly { readonly name: string; readonly slot: string | null }[];
}

const detachStatements = (name: string): string[] => [
  alter(name, false),
  // Without a slot, DROP SUBSCRIPTION does not contact the publisher and may run in a transaction.
  `ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`,
  `DROP SUBSCRIPTION ${quoteIdent(name)}`,
];

const publisherOf = (step: Step<SlotsConfig>): string | undefined =>
  step.config.dropRemoteSlot === true ? step.config.publisher : undefined;

export const detachSubscription: ActionHandler = {
  effects: 'external',
  reversibility: {
    kind: 'irreversible',
    reason: 'a dropped subscription cannot be recreated at its replication position',
  },
  async plan(ctx, step) {
    const connection = connectionOf(step);
    const { selected, missing } = select(await readSubscriptions(await ctx.session(connection)), step.config);
    const publisher = publisherOf(step);
    const remote = publisher === undefined ? [] : await readSlots(await ctx.session(publisher));
    const actions: Action[] = [];
    const notes = missing.map((n) => `no subscription named ${n} (already detached?)`);
    for (const s of selected) {
      actions.push(...detachStatements(s.name).map((sql): Action => ({ type: 'sql', connection, sql, transaction: false })));
      if (publisher !== undefined && s.slot !== null) {
        if (remote.some((r) => r.name === s.slot)) actions.push({ type: 'sql', connection: publisher, sql: DROP_SLOT_SQL, params: [s.slot] });
        else notes.push(`slot ${s.slot} of ${s.name} is not on ${publisher}`);
      } else if (s.slot !== null) {
        notes.push(`slot ${s.slot} of ${s.name} stays on the publisher (dropRemoteSlot is not set): drop it, or it keeps WAL forever`);
      }
    }
    return { actions, notes, details: { subscriptions: selected.map((s) => ({ name: s.name, slot: s.slot })) } };
  },
  async apply(ctx, step) {
    const db = await ctx.session(connectionOf(step));
    const { selected } = select(await readSubscriptions(db), step.config);
    const prior = (ctx.priorBefore as unknown as Detached | undefined)?.subscriptions ?? [];
    const before: Detached = {
      subscriptions: [...prior, ...selected.filter((s) => !prior.some((p) => p.name === s.name)).map((s) => ({ name: s.name, slot: s.slot }))],
    };
    ctx.recordBefore(before as unknown as Json);
    for (const s of selected) for (const sql of detachStatements(s.name)) await db.query(sql);
    const publisher = publisherOf(step);
    if (publisher !== undefined) {
      const remote = await ctx.session(publisher);
      for (const { slot } of before.subscriptions) {
        if (slot === null) continue;
        const deadline = Date.now() + WORKER_EXIT_TIMEOUT_MS;
        // The publisher's walsender for the subscription exits after the apply worker does.
        for (;;) {
          const found = (await readSlots(remote)).find((r) => r.name === slot);
          if (found === undefined) break;
          if (!found.active) {
            await remote.query(DROP_SLOT_SQL, [slot]);
            break;
          }
          if (Date.now() > deadline) throw new RefusedError(`slot ${slot} on ${publisher} is still in use by pid ${found.activePid ?? '?'}; not dropped`);
          await sleep(200, undefined, { signal: ctx.signal });
        }
      }
    }
    return { before: before as unknown as Json, output: `detached ${selected.length} subscription(s)` };
  },
  async verify(ctx, step, _plan, before) {
    const detached = (before as unknown as Detached | null)?.subscriptions ?? [];
    const left = (await readSubscriptions(await ctx.session(connectionOf(step)))).filter((s) => detached.some((d) => d.name === s.name));
    const problems = left.map((s) => `subscription ${s.name} still exists`);
    const publisher = publisherOf(step);
    if (publisher !== undefined) {
      const remote = await readSlots(await ctx.session(publisher));
      problems.push(...detached.filter((d) => remote.some((r) => r.name === d.slot)).map((d) => `slot ${d.slot ?? ''} still on ${publisher}`));
    }
    if (problems.length > 0) throw new VerificationError(problems.join('; '));
  },
};
