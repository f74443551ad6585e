/**
 * The subscription actions of `replication-slots`, on the subscriber side:
 * disable and enable (transactional, undone by the opposite), and detach for
 * the final switch (disable, let go of the slot, drop the subscription, and
 * optionally drop its slot on the publisher), which cannot be undone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { PlanDriftError, RefusedError, UsageError, VerificationError } from '../errors.js';
import { jsonDifferences, type Action, type ConnectedStep } from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { quoteIdent } from '../db/quote.js';
import type { SlotsConfig } from './config.js';
import { handler } from './slot-actions.js';
import { DROP_SLOT_SQL, readSlots, readSubscriptions, type Subscription } from './slots.js';

/** How long a stopped apply worker (and its walsender on the publisher) may take to exit. */
const WORKER_EXIT_TIMEOUT_MS = 30_000;

/** The subscriptions a toggle changes, each with its `enabled` before: the payload, and the before-state rollback restores. */
const toggled = z.strictObject({ subscriptions: z.array(z.strictObject({ name: z.string(), enabled: z.boolean() })) });

/** What disable or enable changes, as the catalog says now. */
const togglesOf = (subs: readonly Subscription[], config: SlotsConfig, enable: boolean) =>
  select(subs, config).selected.filter((s) => s.enabled !== enable).map((s) => ({ name: s.name, enabled: s.enabled }));

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

function toggle<const A extends 'enable-subscriptions' | 'disable-subscriptions'>(action: A) {
  const enable = action === 'enable-subscriptions';
  const verb = enable ? 'enable' : 'disable';
  return handler({
    effects: 'transaction',
    reversibility: { kind: 'reversible' },
    planned: toggled.extend({ action: z.literal(action) }),
    before: toggled,
    async plan(ctx, step) {
      const connection = step.connection;
      const subs = await readSubscriptions(await ctx.session(connection));
      const { selected, missing } = select(subs, step.config);
      const subscriptions = togglesOf(subs, step.config, enable);
      return {
        actions: subscriptions.map((s): Action => ({ type: 'sql', connection, sql: alter(s.name, enable) })),
        planned: { action, subscriptions },
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
    async apply(ctx, step, planned) {
      const tx = ctx.tx;
      if (tx === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but got none`);
      // Planned again inside the transaction: a subscription created, dropped or switched since is not what was reviewed.
      const drift = jsonDifferences(planned.subscriptions, togglesOf(await readSubscriptions(tx), step.config, enable), 'subscriptions');
      if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
      for (const s of planned.subscriptions) await tx.query(alter(s.name, enable));
      return { before: { subscriptions: planned.subscriptions }, output: `${verb}d ${planned.subscriptions.length} subscription(s)` };
    },
    async verify(ctx, step, _planned, before) {
      const db = await ctx.session(step.connection);
      const names = before.subscriptions.map((s) => s.name);
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
      for (const s of before.subscriptions) await tx.query(alter(s.name, s.enabled));
    },
  });
}

export const disableSubscriptions = toggle('disable-subscriptions');
export const enableSubscriptions = toggle('enable-subscriptions');

// ---------------------------------------------------------------------- detach

/** The subscriptions detach drops, each with its slot on the publisher. */
const detached = z.strictObject({ subscriptions: z.array(z.strictObject({ name: z.string(), slot: z.string().nullable() })) });

const detachStatements = (name: string): string[] => [
  alter(name, false),
  // Without a slot, DROP SUBSCRIPTION does not contact the publisher and may run in a transaction.
  `ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`,
  `DROP SUBSCRIPTION ${quoteIdent(name)}`,
];

const publisherOf = (step: ConnectedStep<SlotsConfig>): string | undefined =>
  step.config.dropRemoteSlot === true ? step.config.publisher : undefined;

export const detachSubscription = handler({
  effects: 'external',
  reversibility: {
    kind: 'irreversible',
    reason: 'a dropped subscription cannot be recreated at its replication position',
  },
  planned: detached.extend({ action: z.literal('detach-subscription') }),
  before: detached,
  async plan(ctx, step) {
    const connection = step.connection;
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
    return { actions, notes, planned: { action: 'detach-subscription' as const, subscriptions: selected.map((s) => ({ name: s.name, slot: s.slot })) } };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const prior = ctx.priorBefore?.subscriptions ?? [];
    // Planned again: what an earlier attempt already detached is gone, anything else must be as planned.
    const now = select(await readSubscriptions(db), step.config).selected.map((s) => ({ name: s.name, slot: s.slot }));
    const expected = planned.subscriptions.filter((p) => !prior.some((d) => d.name === p.name) || now.some((n) => n.name === p.name));
    const drift = jsonDifferences(expected, now, 'subscriptions');
    if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
    const before = {
      subscriptions: [...prior, ...now.filter((s) => !prior.some((p) => p.name === s.name))],
    };
    ctx.recordBefore(before);
    for (const s of now) for (const sql of detachStatements(s.name)) await db.query(sql);
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
    return { before, output: `detached ${now.length} subscription(s)` };
  },
  async verify(ctx, step, _planned, before) {
    const gone = before.subscriptions;
    const left = (await readSubscriptions(await ctx.session(step.connection))).filter((s) => gone.some((d) => d.name === s.name));
    const problems = left.map((s) => `subscription ${s.name} still exists`);
    const publisher = publisherOf(step);
    if (publisher !== undefined) {
      const remote = await readSlots(await ctx.session(publisher));
      problems.push(...gone.filter((d) => remote.some((r) => r.name === d.slot)).map((d) => `slot ${d.slot ?? ''} still on ${publisher}`));
    }
    if (problems.length > 0) throw new VerificationError(problems.join('; '));
  },
});
