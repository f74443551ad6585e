/**
 * `subscriptions-enable`: resume applying on the subscriber, `ALTER SUBSCRIPTION ... ENABLE`
 * for the selected subscriptions (default all of the database) in one
 * transaction. Rollback disables the ones it enabled.
 */
import { defineStep } from '../step/contract.js';
import { applyToggle, checkOwner, planRollbackToggle, planToggle, rollbackToggle, toggleConfig, toggled, verifyToggle } from './subscription-toggle.js';

export const subscriptionsEnableStep = defineStep({
  kind: 'subscriptions-enable',
  replaces: { kind: 'replication-slots', key: 'action', value: 'enable-subscriptions' },
  summary: 'Enable subscriptions on the subscriber; rollback disables them again',
  config: toggleConfig,
  connection: { required: true, kinds: ['postgres'] },
  planned: toggled,
  before: toggled,
  effects: () => 'transaction',
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),
  check: checkOwner,
  plan: (ctx, step) => planToggle(ctx, step, true),
  apply: (ctx, step, planned) => applyToggle(ctx, step, planned, true),
  verify: (ctx, step, _planned, before) => verifyToggle(ctx, step, before, true),
  planRollback: planRollbackToggle,
  rollback: rollbackToggle,
});
