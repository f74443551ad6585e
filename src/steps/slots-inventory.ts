/**
 * `slots-inventory`: what holds WAL on a server, and how far behind each
 * consumer is. Every selected slot with its type, plugin, database, activity,
 * WAL status, the WAL it retains and its lag; flags the inactive, lost,
 * invalidated and over-threshold ones. It reads only: its work is its plan.
 */
import { z } from 'zod';
import { defineStep, type PlanTable } from '../step/contract.js';
import { byteSize } from '../runbook/schema.js';
import { formatBytes, readSlots, selectSlots, type Slot } from '../replication/slots.js';

const DEFAULT_RETAINED_WARNING = 1024 ** 3;

const config = z.strictObject({
  slots: z.array(z.string().min(1)).optional().describe('slot names or patterns (* and ?) to list (default all)'),
  type: z.enum(['logical', 'physical']).optional().describe('only slots of this type'),
  retainedWarning: byteSize.optional().describe('flag slots retaining more WAL than this (default 1GB)'),
});

const COLUMNS: PlanTable['columns'] = [
  { key: 'slot', title: 'slot' },
  { key: 'type', title: 'type' },
  { key: 'plugin', title: 'plugin' },
  { key: 'database', title: 'database' },
  { key: 'active', title: 'active' },
  { key: 'walStatus', title: 'wal_status' },
  { key: 'retained', title: 'retains', align: 'right' },
  { key: 'lag', title: 'lag', align: 'right' },
  { key: 'flags', title: 'flags' },
];

function flagsOf(slot: Slot, retainedWarning: number): string[] {
  const flags: string[] = [];
  if (!slot.active) flags.push('inactive');
  if (slot.walStatus === 'lost' || slot.walStatus === 'unreserved') flags.push(slot.walStatus);
  if (slot.invalidationReason !== null) flags.push(`invalidated: ${slot.invalidationReason}`);
  if (slot.retainedBytes !== null && slot.retainedBytes > retainedWarning) flags.push(`retains > ${formatBytes(retainedWarning)}`);
  return flags;
}

export const slotsInventoryStep = defineStep({
  kind: 'slots-inventory',
  replaces: { kind: 'replication-slots', key: 'action', value: 'inventory' },
  summary: 'List the replication slots of a server: what holds WAL, what is inactive, lost or lagging',
  config,
  connection: { required: true, kinds: ['postgres'] },
  // Reads only: the inventory is in the table, and apply has nothing to execute.
  planned: z.null(),
  before: z.null(),
  effects: () => 'none',
  idempotent: true,
  reversibility: () => ({ kind: 'nothing-to-undo' }),
  async plan(ctx, step) {
    const { selected } = selectSlots(await readSlots(await ctx.session(step.connection)), { names: step.config.slots, type: step.config.type });
    const threshold = step.config.retainedWarning ?? DEFAULT_RETAINED_WARNING;
    const rows = selected.map((s) => ({
      slot: s.name,
      type: s.type,
      plugin: s.plugin,
      database: s.database,
      active: s.active ? `pid ${s.activePid ?? '?'}` : 'no',
      activePid: s.activePid,
      temporary: s.temporary,
      twoPhase: s.twoPhase,
      failover: s.failover,
      walStatus: s.walStatus,
      invalidationReason: s.invalidationReason,
      restartLsn: s.restartLsn,
      confirmedFlushLsn: s.confirmedFlushLsn,
      retained: formatBytes(s.retainedBytes),
      retainedBytes: s.retainedBytes,
      lag: formatBytes(s.lagBytes),
      lagBytes: s.lagBytes,
      flags: flagsOf(s, threshold).join(', '),
    }));
    const flagged = rows.filter((r) => r.flags !== '');
    return {
      actions: [],
      planned: null,
      tables: [{ title: 'replication slots', columns: COLUMNS, rows, footer: `${rows.length} slot(s), ${flagged.length} flagged` }],
      notes: flagged.map((r) => `${r.slot}: ${r.flags}`),
    };
  },
  async apply() {
    return { before: null };
  },
});
