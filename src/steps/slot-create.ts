/**
 * `slot-create`: create the named replication slots that do not exist yet
 * (e.g. on the new primary, to keep every change for the way back). A slot
 * that exists already with the same type and plugin is left alone, also by
 * rollback; one of another type or plugin blocks the step. Rollback drops
 * exactly the slots this step created.
 */
import { z } from 'zod';
import { PlanDriftError, RefusedError, VerificationError } from '../errors.js';
import { defineStep, type Action, type CheckFinding } from '../step/contract.js';
import { privilege, roleFacts, setting } from '../step/check-helpers.js';
import {
  DROP_SLOT_SQL,
  TERMINATE_SQL,
  createSlotStatement,
  currentDatabase,
  isPattern,
  readSlots,
  slotDefinitionSchema,
  waitReleased,
  type SlotDefinition,
} from '../replication/slots.js';

const config = z.strictObject({
  slots: z.array(z.string().min(1)).min(1, 'name the slots to create').describe('names of the slots to create (not patterns)'),
  type: z.enum(['logical', 'physical']).describe('the type of slot to create'),
  plugin: z.string().min(1).optional().describe('logical: output plugin (default pgoutput)'),
  twoPhase: z.boolean().optional().describe('logical: decode prepared transactions'),
  failover: z.boolean().optional().describe('logical: synchronise to standbys (PostgreSQL 17+)'),
});

type Config = z.output<typeof config>;

function wantedDefinitions(c: Config, database: string): SlotDefinition[] {
  return c.slots.map((name) => ({
    name,
    type: c.type,
    plugin: c.type === 'physical' ? null : (c.plugin ?? 'pgoutput'),
    database: c.type === 'physical' ? null : database,
    twoPhase: c.twoPhase === true,
    failover: c.failover === true,
    reserveWal: true,
  }));
}

export const slotCreateStep = defineStep({
  kind: 'slot-create',
  replaces: { kind: 'replication-slots', key: 'action', value: 'create' },
  summary: 'Create replication slots that do not exist yet; rollback drops the ones it created',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate(c) {
    const issues = [];
    if (c.slots.some(isPattern)) issues.push({ path: ['slots'], message: 'slot-create takes slot names, not patterns' });
    if (c.type === 'physical' && (c.plugin ?? c.twoPhase ?? c.failover) !== undefined) {
      issues.push({ path: ['type'], message: 'plugin, twoPhase and failover apply to logical slots only' });
    }
    return issues;
  },
  /** The slots to create: those missing when planned. */
  planned: z.strictObject({ slots: z.array(slotDefinitionSchema) }),
  /** The slots this step created (not those that existed already), which rollback drops. */
  before: z.strictObject({ created: z.array(z.string()) }),
  effects: () => 'external',
  // Run again, it creates what is still missing and keeps the names it created first.
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),
  async check(ctx, step): Promise<CheckFinding[]> {
    const db = await ctx.session(step.connection);
    const role = await roleFacts(db);
    const findings: CheckFinding[] = [
      privilege(
        'REPLICATION',
        role.superuser || role.replication,
        role.role,
        'is neither superuser nor has REPLICATION',
        `ALTER ROLE ${role.role} REPLICATION`,
      ),
    ];
    const walLevel = await setting(db, 'wal_level');
    const needed = step.config.type === 'logical' ? 'logical' : 'replica';
    const ok = walLevel === 'logical' || (needed === 'replica' && walLevel === 'replica');
    findings.push(
      ok
        ? { severity: 'ok', check: 'wal_level', message: walLevel }
        : {
            severity: 'error',
            check: 'wal_level',
            message: `wal_level is ${walLevel}; ${step.config.type} slots need ${needed}`,
            fix: `ALTER SYSTEM SET wal_level = ${needed}, then restart the server`,
          },
    );
    const { rows } = await db.query<{ max: number; used: number }>(
      "SELECT current_setting('max_replication_slots')::int AS max, (SELECT count(*) FROM pg_replication_slots)::int AS used",
    );
    const free = (rows[0]?.max ?? 0) - (rows[0]?.used ?? 0);
    const wanted = step.config.slots.length;
    findings.push(
      free >= wanted
        ? { severity: 'ok', check: 'max_replication_slots', message: `${free} free (${rows[0]?.used}/${rows[0]?.max} used)` }
        : {
            severity: 'error',
            check: 'max_replication_slots',
            message: `${free} free, ${wanted} to create`,
            fix: 'raise max_replication_slots, then restart the server',
          },
    );
    return findings;
  },
  async plan(ctx, step) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const existing = await readSlots(db);
    const wanted = wantedDefinitions(step.config, await currentDatabase(db));
    const blockers: string[] = [];
    const notes: string[] = [];
    const missing = wanted.filter((w) => {
      const found = existing.find((s) => s.name === w.name);
      if (found === undefined) return true;
      if (found.type !== w.type || (w.type === 'logical' && found.plugin !== w.plugin)) {
        blockers.push(`${w.name} exists as a ${found.type} slot${found.plugin ? ` (${found.plugin})` : ''}, not ${w.type}${w.plugin ? ` (${w.plugin})` : ''}`);
      } else notes.push(`${w.name} exists already; left as it is (and left alone by rollback)`);
      return false;
    });
    return {
      actions: missing.map((d) => ({ type: 'sql' as const, connection, ...createSlotStatement(d) })),
      notes,
      ...(blockers.length > 0 ? { blockers } : {}),
      planned: { slots: missing },
    };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const existing = new Set((await readSlots(db)).map((s) => s.name));
    const prior = ctx.priorBefore?.created ?? [];
    // One created by someone else since the plan is not ours to drop on rollback, nor to create again.
    const drift = planned.slots.filter((d) => existing.has(d.name) && !prior.includes(d.name)).map((d) => `${d.name}: (none) -> exists`);
    if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
    const toCreate = planned.slots.filter((d) => !existing.has(d.name));
    // Names an earlier attempt created stay ours even though they exist now.
    const before = { created: [...new Set([...prior, ...toCreate.map((d) => d.name)])] };
    ctx.recordBefore(before);
    for (const definition of toCreate) {
      const { sql, params } = createSlotStatement(definition);
      await db.query(sql, params);
    }
    return { before, output: `created ${toCreate.length} slot(s)` };
  },
  async verify(ctx, step, planned) {
    const slots = await readSlots(await ctx.session(step.connection));
    const wrong = planned.slots.filter((d) => !slots.some((s) => s.name === d.name && s.type === d.type));
    if (wrong.length > 0) throw new VerificationError(`not created: ${wrong.map((d) => d.name).join(', ')}`);
  },
  async planRollback(ctx, step, before, { force }) {
    const created = new Set(before.created);
    const slots = (await readSlots(await ctx.session(step.connection))).filter((s) => created.has(s.name));
    const actions: Action[] = [];
    const notes: string[] = [];
    const blockers: string[] = [];
    for (const slot of slots) {
      if (slot.active && !force) {
        // As the rollback does: it refuses before dropping anything of this slot.
        blockers.push(`slot ${slot.name} is in use (pid ${slot.activePid ?? '?'}): the rollback refuses; with --force it ends that session first`);
        continue;
      }
      if (slot.active) {
        notes.push(`${slot.name} is in use (pid ${slot.activePid ?? '?'}): --force ends that session first`);
        actions.push({ type: 'sql', connection: step.connection, sql: TERMINATE_SQL, params: [slot.activePid] });
      }
      actions.push({ type: 'sql', connection: step.connection, sql: DROP_SLOT_SQL, params: [slot.name] });
    }
    notes.push(...before.created.filter((name) => !slots.some((s) => s.name === name)).map((name) => `${name} is gone already`));
    return { actions, notes, ...(blockers.length > 0 ? { blockers } : {}) };
  },
  async rollback(ctx, step, before) {
    const db = await ctx.session(step.connection);
    const created = new Set(before.created);
    for (const slot of (await readSlots(db)).filter((s) => created.has(s.name))) {
      if (slot.active) {
        if (!ctx.force)
          throw new RefusedError(`slot ${slot.name} is in use (pid ${slot.activePid ?? '?'}); roll back with --force to end that session and drop it`);
        await db.query(TERMINATE_SQL, [slot.activePid]);
        await waitReleased(db, slot.name, ctx.signal);
      }
      if ((await readSlots(db)).some((s) => s.name === slot.name)) await db.query(DROP_SLOT_SQL, [slot.name]);
    }
  },
});
