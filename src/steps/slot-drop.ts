/**
 * `slot-drop`: drop replication slots (names or patterns), ending the
 * walsender of an active one first only when `terminate: true`. Rollback
 * recreates each slot with the same name, type, plugin and options, but at
 * the WAL position of that moment: a dropped logical slot's position is lost,
 * which a runbook must accept in writing (`acceptPositionLoss`).
 */
import { z } from 'zod';
import { PlanDriftError, RefusedError, VerificationError } from '../errors.js';
import { defineStep, jsonDifferences, type Action, type CheckFinding, type PlanTable } from '../step/contract.js';
import { privilege, roleFacts } from '../step/check-helpers.js';
import {
  DROP_SLOT_SQL,
  TERMINATE_SQL,
  createSlotStatement,
  currentDatabase,
  definitionOf,
  readSlots,
  selectSlots,
  slotDefinitionSchema,
  waitReleased,
  type SlotDefinition,
} from '../replication/slots.js';

const config = z.strictObject({
  slots: z.array(z.string().min(1)).min(1, 'name the slots to drop (names or patterns)').describe('slot names or patterns (* and ?) to drop'),
  type: z.enum(['logical', 'physical']).optional().describe('only slots of this type'),
  terminate: z.boolean().optional().describe('end the walsender of an active slot first (default false: refuse)'),
  acceptPositionLoss: z
    .boolean()
    .optional()
    .describe('acknowledge that a recreated logical slot starts at the current position (required unless type: physical)'),
});

const COLUMNS: PlanTable['columns'] = [
  { key: 'slot', title: 'slot' },
  { key: 'type', title: 'type' },
  { key: 'plugin', title: 'plugin' },
  { key: 'database', title: 'database' },
  { key: 'active', title: 'active' },
  { key: 'action', title: 'action' },
];

export const slotDropStep = defineStep({
  kind: 'slot-drop',
  replaces: { kind: 'replication-slots', key: 'action', value: 'drop' },
  summary: 'Drop replication slots; rollback recreates them with the same options at the current position',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate: (c) =>
    c.type !== 'physical' && c.acceptPositionLoss !== true
      ? [
          {
            path: ['acceptPositionLoss'],
            message:
              'dropping a logical slot loses its position: a recreated slot starts at the current WAL position and changes in between are never decoded. Set acceptPositionLoss: true to accept that (or type: physical)',
          },
        ]
      : [],
  /** The slots to drop as they are defined now, and whether an active one may be ended. */
  planned: z.strictObject({ slots: z.array(slotDefinitionSchema), terminate: z.boolean() }),
  /** The definitions of the dropped slots, which rollback recreates. */
  before: z.strictObject({ slots: z.array(slotDefinitionSchema) }),
  effects: () => 'external',
  // Run again, it drops what is left and keeps the first before-state.
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),
  async check(ctx, step): Promise<CheckFinding[]> {
    const role = await roleFacts(await ctx.session(step.connection));
    return [
      privilege(
        'REPLICATION',
        role.superuser || role.replication,
        role.role,
        'is neither superuser nor has REPLICATION',
        `ALTER ROLE ${role.role} REPLICATION`,
      ),
    ];
  },
  async plan(ctx, step) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const database = await currentDatabase(db);
    const { selected, unmatched } = selectSlots(await readSlots(db), { names: step.config.slots, type: step.config.type });
    const blockers: string[] = [];
    const actions: Action[] = [];
    const rows = selected.map((s) => {
      if (s.type === 'logical' && s.database !== database) {
        blockers.push(`${s.name} is a logical slot of database ${s.database ?? '?'}; connect to it there to drop it`);
      }
      if (s.active && step.config.terminate !== true) {
        blockers.push(`${s.name} is active (pid ${s.activePid ?? '?'}); set terminate: true to end its walsender first`);
      }
      if (s.active) actions.push({ type: 'sql', connection, sql: TERMINATE_SQL, params: [s.activePid] });
      actions.push({ type: 'sql', connection, sql: DROP_SLOT_SQL, params: [s.name] });
      return {
        slot: s.name,
        type: s.type,
        plugin: s.plugin,
        database: s.database,
        active: s.active ? `pid ${s.activePid ?? '?'}` : 'no',
        action: s.active ? 'terminate, drop' : 'drop',
      };
    });
    const logical = selected.filter((s) => s.type === 'logical').map((s) => s.name);
    return {
      actions,
      tables: [{ title: 'slots to drop', columns: COLUMNS, rows }],
      notes: [
        ...(logical.length > 0
          ? [
              `position loss (accepted by acceptPositionLoss): rollback recreates ${logical.join(', ')} with the same name, plugin and options, but at the WAL position of that moment; changes made in between will never be decoded through them`,
            ]
          : []),
        ...unmatched.map((n) => `no slot named ${n} (already dropped?)`),
      ],
      ...(blockers.length > 0 ? { blockers } : {}),
      planned: { slots: selected.map(definitionOf), terminate: step.config.terminate === true },
    };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const names = new Set(planned.slots.map((d) => d.name));
    const present = (await readSlots(db)).filter((s) => names.has(s.name));
    // A slot dropped and recreated since the plan is another slot: rollback would recreate the wrong one.
    const drift = present.flatMap((s) =>
      jsonDifferences(
        planned.slots.find((d) => d.name === s.name),
        definitionOf(s),
        s.name,
      ),
    );
    if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
    const prior = ctx.priorBefore?.slots ?? [];
    const before = { slots: [...prior, ...present.filter((s) => !prior.some((p) => p.name === s.name)).map(definitionOf)] };
    ctx.recordBefore(before);
    for (const slot of present) {
      if (slot.active) {
        if (!planned.terminate) throw new RefusedError(`slot ${slot.name} became active (pid ${slot.activePid ?? '?'}) since the plan; not dropped`);
        await db.query(TERMINATE_SQL, [slot.activePid]);
        await waitReleased(db, slot.name, ctx.signal);
      }
      // A temporary slot goes away with its terminated session.
      if ((await readSlots(db)).some((s) => s.name === slot.name)) await db.query(DROP_SLOT_SQL, [slot.name]);
    }
    return { before, output: `dropped ${present.length} slot(s)` };
  },
  async verify(ctx, step, planned) {
    const names = planned.slots.map((d) => d.name);
    const left = (await readSlots(await ctx.session(step.connection))).filter((s) => names.includes(s.name));
    if (left.length > 0) throw new VerificationError(`still present: ${left.map((s) => s.name).join(', ')}`);
  },
  async planRollback(ctx, step, before) {
    const existing = new Set((await readSlots(await ctx.session(step.connection))).map((s) => s.name));
    const { recreate, present } = recreations(before.slots, existing);
    const logical = recreate.filter((d) => d.type === 'logical').map((d) => d.name);
    return {
      actions: recreate.map((d): Action => ({ type: 'sql', connection: step.connection, ...createSlotStatement(d) })),
      notes: [
        ...present.map((d) => `${d.name} exists again; left as it is`),
        ...(logical.length > 0 ? [`${logical.join(', ')}: recreated at the WAL position of the rollback, not where dropped`] : []),
      ],
    };
  },
  async rollback(ctx, step, before) {
    const db = await ctx.session(step.connection);
    const { recreate } = recreations(before.slots, new Set((await readSlots(db)).map((s) => s.name)));
    for (const definition of recreate) {
      const { sql, params } = createSlotStatement(definition);
      await db.query(sql, params);
    }
  },
});

/** What rollback recreates: each dropped slot that does not exist again (one that does was recreated already). */
function recreations(dropped: readonly SlotDefinition[], existing: ReadonlySet<string>): { recreate: SlotDefinition[]; present: SlotDefinition[] } {
  return { recreate: dropped.filter((d) => !existing.has(d.name)), present: dropped.filter((d) => existing.has(d.name)) };
}
