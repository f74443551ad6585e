/**
 * `replication-slots`: the replication side of a cutover. Inventory (what
 * holds WAL, who lags), wait until every consumer has confirmed the WAL
 * position of the moment writes stopped, drop and create slots, and disable,
 * enable or detach subscriptions. One kind, one `action`; each action is its
 * own plan/apply/verify/rollback in src/replication/.
 */
import { z } from 'zod';
import { defineStep, type CheckFinding, type JsonSchema } from '../step/contract.js';
import { privilege, roleFacts, setting } from '../step/check-helpers.js';
import { config, validateConfig, type SlotAction } from '../replication/config.js';
import { assertCaughtUp, create, drop, inventory, parsedFor, type ActionHandler } from '../replication/slot-actions.js';
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

// Typed as any JSON at this level: apply, verify and rollback parse again with the chosen action's own schema.
const plannedSchema: JsonSchema = z.discriminatedUnion('action', [
  inventory.planned,
  assertCaughtUp.planned,
  drop.planned,
  create.planned,
  disableSubscriptions.planned,
  enableSubscriptions.planned,
  detachSubscription.planned,
]);
const beforeSchema: JsonSchema = z.union([inventory.before, drop.before, create.before, disableSubscriptions.before, detachSubscription.before]);

export const replicationSlotsStep = defineStep({
  kind: 'replication-slots',
  summary: 'Inventory replication slots, wait until consumers caught up, drop/create slots, switch subscriptions',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate: validateConfig,
  connections: (c) => (c.dropRemoteSlot === true && c.publisher !== undefined ? [c.publisher] : []),
  effects: (c) => actions[c.action].effects,
  // Each action plans and records its own shape; the dispatch below parses with the action's own schema.
  planned: plannedSchema,
  before: beforeSchema,
  // Each action converges when run again: it reads what is there and records the first before-state.
  idempotent: true,
  reversibility: (c) => actions[c.action].reversibility,
  async check(ctx, step) {
    const db = await ctx.session(step.connection);
    const role = await roleFacts(db);
    const c = step.config;
    const findings: CheckFinding[] = [];
    const touchesSlots = c.action === 'create' || c.action === 'drop';
    if (touchesSlots) {
      findings.push(
        privilege('REPLICATION', role.superuser || role.replication, role.role, 'is neither superuser nor has REPLICATION', `ALTER ROLE ${role.role} REPLICATION`),
      );
    }
    if (c.action === 'create') {
      const walLevel = await setting(db, 'wal_level');
      const needed = c.type === 'logical' ? 'logical' : 'replica';
      const ok = walLevel === 'logical' || (needed === 'replica' && walLevel === 'replica');
      findings.push(
        ok
          ? { severity: 'ok', check: 'wal_level', message: walLevel }
          : { severity: 'error', check: 'wal_level', message: `wal_level is ${walLevel}; ${c.type ?? ''} slots need ${needed}`, fix: `ALTER SYSTEM SET wal_level = ${needed}, then restart the server` },
      );
      const { rows } = await db.query<{ max: number; used: number }>(
        "SELECT current_setting('max_replication_slots')::int AS max, (SELECT count(*) FROM pg_replication_slots)::int AS used",
      );
      const free = (rows[0]?.max ?? 0) - (rows[0]?.used ?? 0);
      const wanted = c.slots?.length ?? 1;
      findings.push(
        free >= wanted
          ? { severity: 'ok', check: 'max_replication_slots', message: `${free} free (${rows[0]?.used}/${rows[0]?.max} used)` }
          : { severity: 'error', check: 'max_replication_slots', message: `${free} free, ${wanted} to create`, fix: 'raise max_replication_slots, then restart the server' },
      );
    }
    if (c.action === 'disable-subscriptions' || c.action === 'enable-subscriptions' || c.action === 'detach-subscription') {
      findings.push(
        role.superuser
          ? { severity: 'ok', check: 'subscription owner', message: `role ${role.role} is superuser` }
          : { severity: 'warning', check: 'subscription owner', message: `role ${role.role} is not superuser: it must own each subscription`, fix: "run as a superuser or the subscriptions' owner" },
      );
    }
    return findings;
  },
  plan: (ctx, step) => actions[step.config.action].plan(ctx, step),
  apply(ctx, step, planned) {
    const action = actions[step.config.action];
    const prior = ctx.priorBefore === undefined ? undefined : parsedFor(action.before, ctx.priorBefore, step, 'journaled before-state');
    return action.apply({ ...ctx, priorBefore: prior }, step, parsedFor(action.planned, planned, step, 'planned payload'));
  },
  async verify(ctx, step, planned, before) {
    const action = actions[step.config.action];
    await action.verify?.(ctx, step, parsedFor(action.planned, planned, step, 'planned payload'), parsedFor(action.before, before, step, 'journaled before-state'));
  },
  async rollback(ctx, step, before) {
    const action = actions[step.config.action];
    await action.rollback?.(ctx, step, parsedFor(action.before, before, step, 'journaled before-state'));
  },
});
