/**
 * `subscriptions-disable`: stop applying on the subscriber, `ALTER SUBSCRIPTION ... DISABLE`
 * for the selected subscriptions (default all of the database) in one
 * transaction; verify waits until their apply workers have exited. Rollback
 * enables the ones it disabled.
 */
import { toggleStep } from './subscription-toggle.js';

export const subscriptionsDisableStep = toggleStep({
  kind: 'subscriptions-disable',
  action: 'disable-subscriptions',
  summary: 'Disable subscriptions on the subscriber (waits for their apply workers to exit); rollback enables them again',
  enable: false,
});
