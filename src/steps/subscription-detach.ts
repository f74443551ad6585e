/**
 * `subscription-detach`: the final switch on the subscriber. For each named
 * subscription: disable it, let go of its slot (`SET (slot_name = NONE)`),
 * drop it; with `dropRemoteSlot: true`, also drop its slot on `publisher`
 * once the walsender there has let go of it. A dropped subscription cannot be
 * recreated at its replication position: irreversible.
 */
import { done, notYet, poll } from '../poll.js';
import { z } from 'zod';
import { PlanDriftError, RefusedError, VerificationError } from '../errors.js';
import { defineStep, jsonDifferences, type Action } from '../step/contract.js';
import { checkOwner } from './subscription-toggle.js';
import { DROP_SLOT_SQL, readSlots } from '../replication/slots.js';
import { WORKER_EXIT_TIMEOUT_MS, detachStatements, readSubscriptions, selectSubscriptions } from '../replication/subscriptions.js';

const config = z.strictObject({
  subscriptions: z.array(z.string().min(1)).min(1, 'name the subscriptions to detach').describe('subscription names to detach'),
  dropRemoteSlot: z.boolean().optional().describe("also drop each subscription's slot on the publisher"),
  publisher: z.string().min(1).optional().describe('with dropRemoteSlot: the publisher connection, where the slots live'),
});

/** The subscriptions detach drops, each with its slot on the publisher: also the before-state. */
const detached = z.strictObject({ subscriptions: z.array(z.strictObject({ name: z.string(), slot: z.string().nullable() })) });

export const subscriptionDetachStep = defineStep({
  kind: 'subscription-detach',
  replaces: { kind: 'replication-slots', key: 'action', value: 'detach-subscription' },
  summary: 'Drop subscriptions on the subscriber (and optionally their slots on the publisher); irreversible',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate: (c) =>
    c.dropRemoteSlot === true && c.publisher === undefined
      ? [{ path: ['publisher'], message: 'dropRemoteSlot needs publisher: the connection where the slot lives' }]
      : [],
  connections: (c) => (c.dropRemoteSlot === true && c.publisher !== undefined ? [c.publisher] : []),
  /** What to drop, and where the slots are dropped too (null: they stay on the publisher). */
  planned: detached.extend({ publisher: z.string().nullable() }),
  before: detached,
  effects: () => 'external',
  // Run again, it detaches what is left and keeps the first before-state.
  idempotent: true,
  reversibility: () => ({ kind: 'irreversible', reason: 'a dropped subscription cannot be recreated at its replication position' }),
  check: checkOwner,
  async plan(ctx, step) {
    const connection = step.connection;
    const { selected, missing } = selectSubscriptions(await readSubscriptions(await ctx.session(connection)), step.config.subscriptions);
    const publisher = step.config.dropRemoteSlot === true ? (step.config.publisher ?? null) : null;
    const remote = publisher === null ? [] : await readSlots(await ctx.session(publisher));
    const actions: Action[] = [];
    const notes = missing.map((n) => `no subscription named ${n} (already detached?)`);
    for (const s of selected) {
      actions.push(...detachStatements(s.name).map((sql): Action => ({ type: 'sql', connection, sql, transaction: false })));
      if (publisher !== null && s.slot !== null) {
        if (remote.some((r) => r.name === s.slot)) actions.push({ type: 'sql', connection: publisher, sql: DROP_SLOT_SQL, params: [s.slot] });
        else notes.push(`slot ${s.slot} of ${s.name} is not on ${publisher}`);
      } else if (s.slot !== null) {
        notes.push(`slot ${s.slot} of ${s.name} stays on the publisher (dropRemoteSlot is not set): drop it, or it keeps WAL forever`);
      }
    }
    return { actions, notes, planned: { subscriptions: selected.map((s) => ({ name: s.name, slot: s.slot })), publisher } };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const prior = ctx.priorBefore?.subscriptions ?? [];
    // Planned again: what an earlier attempt already detached is gone, anything else must be as planned.
    const now = selectSubscriptions(await readSubscriptions(db), step.config.subscriptions).selected.map((s) => ({ name: s.name, slot: s.slot }));
    const expected = planned.subscriptions.filter((p) => !prior.some((d) => d.name === p.name) || now.some((n) => n.name === p.name));
    const drift = jsonDifferences(expected, now, 'subscriptions');
    if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
    const before = { subscriptions: [...prior, ...now.filter((s) => !prior.some((p) => p.name === s.name))] };
    ctx.recordBefore(before);
    for (const s of now) for (const sql of detachStatements(s.name)) await db.query(sql);
    const publisher = planned.publisher;
    if (publisher !== null) {
      const remote = await ctx.session(publisher);
      for (const { slot } of before.subscriptions) {
        if (slot === null) continue;
        // The publisher's walsender for the subscription exits after the apply worker does.
        const released = await poll(
          async () => {
            const found = (await readSlots(remote)).find((r) => r.name === slot);
            if (found === undefined) return done(false);
            return found.active ? notYet(found.activePid) : done(true);
          },
          { intervalMs: 200, timeoutMs: WORKER_EXIT_TIMEOUT_MS, signal: ctx.signal },
        );
        if (!released.done) throw new RefusedError(`slot ${slot} on ${publisher} is still in use by pid ${released.seen ?? '?'}; not dropped`);
        if (released.value) await remote.query(DROP_SLOT_SQL, [slot]);
      }
    }
    return { before, output: `detached ${now.length} subscription(s)` };
  },
  async verify(ctx, step, planned, before) {
    const gone = before.subscriptions;
    const left = (await readSubscriptions(await ctx.session(step.connection))).filter((s) => gone.some((d) => d.name === s.name));
    const problems = left.map((s) => `subscription ${s.name} still exists`);
    const publisher = planned.publisher;
    if (publisher !== null) {
      const remote = await readSlots(await ctx.session(publisher));
      problems.push(...gone.filter((d) => remote.some((r) => r.name === d.slot)).map((d) => `slot ${d.slot ?? ''} still on ${publisher}`));
    }
    if (problems.length > 0) throw new VerificationError(problems.join('; '));
  },
});
