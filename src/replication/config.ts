/**
 * The fields of a `replication-slots` step, and which action uses which, so
 * a field that does nothing for the chosen action is an error, not a silent
 * no-op.
 */
import { z } from 'zod';
import type { ConfigIssue } from '../step/contract.js';
import { byteSize, duration } from '../runbook/schema.js';

export const ACTIONS = [
  'inventory',
  'assert-caught-up',
  'drop',
  'create',
  'disable-subscriptions',
  'enable-subscriptions',
  'detach-subscription',
] as const;

export type SlotAction = (typeof ACTIONS)[number];

export const config = z.object({
  action: z.enum(ACTIONS).describe('what to do with slots or subscriptions'),
  slots: z
    .array(z.string().min(1))
    .optional()
    .describe('slot names or patterns (* and ?); inventory and assert-caught-up: default all; drop and create: required'),
  type: z.enum(['logical', 'physical']).optional().describe('only slots of this type; create: the type to create (required)'),
  plugin: z.string().min(1).optional().describe('create, logical: output plugin (default pgoutput)'),
  twoPhase: z.boolean().optional().describe('create, logical: decode prepared transactions'),
  failover: z.boolean().optional().describe('create, logical: synchronise to standbys (PostgreSQL 17+)'),
  standbys: z
    .array(z.string().min(1))
    .optional()
    .describe('assert-caught-up: wait for these physical standbys (application_name patterns) instead of slots'),
  subscriptions: z
    .array(z.string().min(1))
    .optional()
    .describe('subscription names; disable/enable: default all of the database; detach: required'),
  terminate: z.boolean().optional().describe('drop: end the walsender of an active slot first (default false: refuse)'),
  acceptPositionLoss: z
    .boolean()
    .optional()
    .describe('drop: acknowledge that a recreated logical slot starts at the current position (required to drop logical slots)'),
  retainedWarning: byteSize.optional().describe('inventory: flag slots retaining more WAL than this (default 1GB)'),
  interval: duration.optional().describe('assert-caught-up: time between polls (default 500ms)'),
  dropRemoteSlot: z.boolean().optional().describe("detach-subscription: also drop the subscription's slot on the publisher"),
  publisher: z.string().min(1).optional().describe('detach-subscription with dropRemoteSlot: the publisher connection'),
});

export type SlotsConfig = z.output<typeof config>;

type Field = Exclude<keyof SlotsConfig, 'action'>;

/** Fields each action reads; any other field is reported. */
const FIELDS: Record<SlotAction, readonly Field[]> = {
  inventory: ['slots', 'type', 'retainedWarning'],
  'assert-caught-up': ['slots', 'standbys', 'interval'],
  drop: ['slots', 'type', 'terminate', 'acceptPositionLoss'],
  create: ['slots', 'type', 'plugin', 'twoPhase', 'failover'],
  'disable-subscriptions': ['subscriptions'],
  'enable-subscriptions': ['subscriptions'],
  'detach-subscription': ['subscriptions', 'dropRemoteSlot', 'publisher'],
};

const hasPattern = (names: readonly string[]) => names.some((n) => /[*?]/.test(n));

export function validateConfig(c: SlotsConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const allowed = FIELDS[c.action];
  for (const key of Object.keys(c) as (keyof SlotsConfig)[]) {
    if (key !== 'action' && c[key] !== undefined && !allowed.includes(key)) {
      issues.push({ path: [key], message: `"${key}" does nothing for action ${c.action} (it uses: ${allowed.join(', ')})` });
    }
  }
  const slots = c.slots ?? [];
  switch (c.action) {
    case 'drop':
      if (slots.length === 0) issues.push({ path: ['slots'], message: 'drop needs an explicit selection: slots: [names or patterns]' });
      if (c.type !== 'physical' && c.acceptPositionLoss !== true) {
        issues.push({
          path: ['acceptPositionLoss'],
          message:
            'dropping a logical slot loses its position: a recreated slot starts at the current WAL position and changes in between are never decoded. Set acceptPositionLoss: true to accept that (or type: physical)',
        });
      }
      break;
    case 'create':
      if (slots.length === 0) issues.push({ path: ['slots'], message: 'create needs the names of the slots to create' });
      if (hasPattern(slots)) issues.push({ path: ['slots'], message: 'create takes slot names, not patterns' });
      if (c.type === undefined) issues.push({ path: ['type'], message: 'create needs type: logical or physical' });
      if (c.type === 'physical' && (c.plugin ?? c.twoPhase ?? c.failover) !== undefined) {
        issues.push({ path: ['type'], message: 'plugin, twoPhase and failover apply to logical slots only' });
      }
      break;
    case 'assert-caught-up':
      if (c.standbys !== undefined && c.slots !== undefined) {
        issues.push({ path: ['standbys'], message: 'wait for slots or for standbys, not both in one step' });
      }
      break;
    case 'detach-subscription':
      if ((c.subscriptions ?? []).length === 0) {
        issues.push({ path: ['subscriptions'], message: 'detach-subscription needs an explicit selection: subscriptions: [names]' });
      }
      if (c.dropRemoteSlot === true && c.publisher === undefined) {
        issues.push({ path: ['publisher'], message: 'dropRemoteSlot needs publisher: the connection where the slot lives' });
      }
      break;
    default:
      break;
  }
  return issues;
}
