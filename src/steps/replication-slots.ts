/**
 * `replication-slots`: the replication side of a cutover. Inventory (what
 * holds WAL, who lags), wait until every consumer has confirmed the WAL
 * position of the moment writes stopped, drop and create slots, and disable,
 * enable or detach subscriptions. One kind, one `action`; each action is its
 * own plan/apply/verify/rollback in src/replication/.
 */
import { z } from 'zod';
import { defineStep, jsonValue } from '../engine/step.js';
import { config, validateConfig, type SlotAction } from '../replication/config.js';
import { assertCaughtUp, create, drop, inventory, type ActionHandler } from '../replication/slot-actions.js';
import { detachSubscription, disableSubscriptions, enableSubscriptions } from '../replication/subscription-actions.js';

const actions: Record<SlotAction, ActionHandler> = {
  inventory,
  'assert-caught-up': assertCaughtUp,
  drop,
  create,
  'disable-subscriptions': disableSubscriptions,
  'enable-subscriptions': enableSubscriptions,
  'detach-subscription': detachSubscription,
};

export const replicationSlotsStep = defineStep({
  kind: 'replication-slots',
  summary: 'Inventory replication slots, wait until consumers caught up, drop/create slots, switch subscriptions',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate: validateConfig,
  connections: (c) => (c.dropRemoteSlot === true && c.publisher !== undefined ? [c.publisher] : []),
  effects: (c) => actions[c.action].effects,
  // Each action records its own shape (slot definitions, created names, subscriptions); checked loosely here.
  before: z.union([z.null(), z.record(z.string(), jsonValue)]),
  // Each action converges when run again: it reads what is there and records the first before-state.
  idempotent: true,
  reversibility: (c) => actions[c.action].reversibility,
  plan: (ctx, step) => actions[step.config.action].plan(ctx, step),
  apply: (ctx, step, plan) => actions[step.config.action].apply(ctx, step, plan),
  async verify(ctx, step, plan, before) {
    await actions[step.config.action].verify?.(ctx, step, plan, before);
  },
  async rollback(ctx, step, before) {
    await actions[step.config.action].rollback?.(ctx, step, before);
  },
});
