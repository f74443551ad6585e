/**
 * `subscriptions-enable`: resume applying on the subscriber, `ALTER SUBSCRIPTION ... ENABLE`
 * for the selected subscriptions (default all of the database) in one
 * transaction. Rollback disables the ones it enabled.
 */
import { toggleStep } from './subscription-toggle.js';

export const subscriptionsEnableStep = toggleStep({
  kind: 'subscriptions-enable',
  action: 'enable-subscriptions',
  summary: 'Enable subscriptions on the subscriber; rollback disables them again',
  enable: true,
});
