/**
 * `subscriptions-disable`: stop applying on the subscriber, `ALTER SUBSCRIPTION ... DISABLE`
 * for the selected subscriptions (default all of the database) in one
 * transaction; verify waits until their apply workers have exited. Rollback
 * enables the ones it disabled.
 */
import { defineStep } from '../step/contract.js';
import { applyToggle, checkOwner, planRollbackToggle, planToggle, rollbackToggle, toggleConfig, toggled, verifyToggle } from './subscription-toggle.js';

export const subscriptionsDisableStep = defineStep({
  kind: 'subscriptions-disable',
  replaces: { kind: 'replication-slots', key: 'action', value: 'disable-subscriptions' },
  summary: 'Disable subscriptions on the subscriber (waits for their apply workers to exit); rollback enables them again',
  config: toggleConfig,
  connection: { required: true, kinds: ['postgres'] },
  planned: toggled,
  before: toggled,
  effects: () => 'transaction',
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),
  check: checkOwner,
  plan: (ctx, step) => planToggle(ctx, step, false),
  apply: (ctx, step, planned) => applyToggle(ctx, step, planned, false),
  verify: (ctx, step, _planned, before) => verifyToggle(ctx, step, before, false),
  planRollback: planRollbackToggle,
  rollback: rollbackToggle,
});
