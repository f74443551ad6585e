/**
 * The registry of step kinds. Adding a kind means adding its module and one
 * line here; the engine does not change.
 */
import type { z } from 'zod';
import type { StepDefinition } from '../step/contract.js';
import { analyzeStep } from './analyze.js';
import { compareStep } from './compare.js';
import { confirmStep } from './confirm.js';
import { shellStep } from './shell.js';
import { freezeWritesStep } from './freeze-writes.js';
import { patroniStep } from './patroni.js';
import { pgbouncerStep } from './pgbouncer.js';
import { planCheckStep } from './plan-check.js';
import { replicationCaughtUpStep } from './replication-caught-up.js';
import { slotCreateStep } from './slot-create.js';
import { slotDropStep } from './slot-drop.js';
import { slotsInventoryStep } from './slots-inventory.js';
import { subscriptionDetachStep } from './subscription-detach.js';
import { subscriptionsDisableStep } from './subscriptions-disable.js';
import { subscriptionsEnableStep } from './subscriptions-enable.js';
import { sequenceResetStep } from './sequence-reset.js';
import { upgradePrecheckStep } from './upgrade-precheck.js';
import { sqlStep } from './sql.js';
import { waitStep } from './wait.js';

export type StepKind =
  | 'sql'
  | 'shell'
  | 'confirm'
  | 'wait'
  | 'sequence-reset'
  | 'slots-inventory'
  | 'replication-caught-up'
  | 'slot-drop'
  | 'slot-create'
  | 'subscriptions-disable'
  | 'subscriptions-enable'
  | 'subscription-detach'
  | 'freeze-writes'
  | 'compare'
  | 'analyze'
  | 'upgrade-precheck'
  | 'pgbouncer'
  | 'patroni'
  | 'plan-check';

// Each definition keeps its own config type; the table is checked against the
// contract, so a kind named in StepKind without a definition does not compile.
export const stepKinds = {
  sql: sqlStep,
  shell: shellStep,
  confirm: confirmStep,
  wait: waitStep,
  'sequence-reset': sequenceResetStep,
  'slots-inventory': slotsInventoryStep,
  'replication-caught-up': replicationCaughtUpStep,
  'slot-drop': slotDropStep,
  'slot-create': slotCreateStep,
  'subscriptions-disable': subscriptionsDisableStep,
  'subscriptions-enable': subscriptionsEnableStep,
  'subscription-detach': subscriptionDetachStep,
  'freeze-writes': freezeWritesStep,
  compare: compareStep,
  analyze: analyzeStep,
  'upgrade-precheck': upgradePrecheckStep,
  pgbouncer: pgbouncerStep,
  patroni: patroniStep,
  'plan-check': planCheckStep,
} satisfies Record<StepKind, AnyStepDefinition>;

// A definition's functions take its own config type, so definitions are
// contravariant in it and no single concrete type covers them all. The engine
// only calls a definition with config that definition's schema produced.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyStepDefinition = StepDefinition<z.ZodObject<any>>;

export const registry: Readonly<Record<string, StepDefinition>> = stepKinds;
