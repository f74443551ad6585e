/**
 * The slot actions of `replication-slots`: inventory, assert-caught-up, drop
 * and create. Each is a plan/apply/verify/rollback quadruple, chosen by the
 * step's `action` from the table in src/steps/replication-slots.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { JournalUntrustedError, PlanDriftError, RefusedError, VerificationError } from '../errors.js';
import {
  jsonDifferences,
  type Action,
  type ApplyContext,
  type ApplyOutcome,
  type BaseContext,
  type ConnectedStep,
  type Effects,
  type Json,
  type JsonSchema,
  type PlanTable,
  type Reversibility,
  type StepPlan,
} from '../step/contract.js';
import type { Queryable } from '../db/session.js';
import { globMatcher } from '../runbook/patterns.js';
import type { SlotsConfig } from './config.js';
import {
  DROP_SLOT_SQL,
  TERMINATE_SQL,
  createSlotStatement,
  definitionOf,
  readSlots,
  type Slot,
  type SlotDefinition,
} from './slots.js';

type SlotsStep = ConnectedStep<SlotsConfig>;

/** One action of `replication-slots`: the step contract, with the action's own payload and before-state schemas. */
export interface ActionHandler<Planned extends JsonSchema = JsonSchema, Before extends JsonSchema = JsonSchema> {
  readonly effects: Effects;
  readonly reversibility: Reversibility;
  readonly planned: Planned;
  readonly before: Before;
  plan(ctx: BaseContext, step: SlotsStep): Promise<StepPlan<z.output<Planned>>>;
  apply(ctx: ApplyContext<z.output<Before>>, step: SlotsStep, planned: z.output<Planned>): Promise<ApplyOutcome<z.output<Before>>>;
  verify?(ctx: BaseContext, step: SlotsStep, planned: z.output<Planned>, before: z.output<Before>): Promise<void>;
  rollback?(ctx: ApplyContext<z.output<Before>>, step: SlotsStep, before: z.output<Before>): Promise<void>;
}

/** Keeps a handler's payload and before-state types while checking it against ActionHandler. */
export function handler<Planned extends JsonSchema, Before extends JsonSchema>(h: ActionHandler<Planned, Before>): ActionHandler<Planned, Before> {
  return h;
}

/**
 * A journaled or saved value parsed with one action's schema: the step's
 * schema admits every action's shape, so one recorded by another action is
 * refused here, never obeyed.
 */
export function parsedFor<T extends JsonSchema>(schema: T, value: Json, step: SlotsStep, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new JournalUntrustedError(`step "${step.id}": the ${what} is not what a replication-slots ${step.config.action} step records; refusing to use it`);
}

const slotDefinition = z.strictObject({
  name: z.string(),
  type: z.enum(['logical', 'physical']),
  plugin: z.string().nullable(),
  database: z.string().nullable(),
  twoPhase: z.boolean(),
  failover: z.boolean(),
  reserveWal: z.boolean(),
});

export const DEFAULT_WAIT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_INTERVAL_MS = 500;
const DEFAULT_RETAINED_WARNING = 1024 ** 3;
/** How long a terminated walsender may take to let go of its slot. */
const RELEASE_TIMEOUT_MS = 30_000;

export function formatBytes(bytes: number | null): string | null {
  if (bytes === null) return null;
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const isPattern = (name: string) => /[*?]/.test(name);

/** Slots the step selects; explicit names that match nothing are returned too. */
function select(slots: readonly Slot[], config: SlotsConfig): { selected: Slot[]; unmatched: string[] } {
  const names = config.slots ?? [];
  const wanted = names.length === 0 ? () => true : globMatcher(names);
  const selected = slots.filter((s) => wanted(s.name) && (config.type === undefined || s.type === config.type));
  const unmatched = names.filter((n) => !isPattern(n) && !selected.some((s) => s.name === n));
  return { selected, unmatched };
}

async function currentDatabase(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0]?.db ?? '';
}

// ------------------------------------------------------------------ inventory

const INVENTORY_COLUMNS: PlanTable['columns'] = [
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

export const inventory = handler({
  effects: 'none',
  reversibility: { kind: 'nothing-to-undo' },
  // Reads only: the inventory is in the table.
  planned: z.strictObject({ action: z.literal('inventory') }),
  before: z.null(),
  async plan(ctx, step) {
    const { selected } = select(await readSlots(await ctx.session(step.connection)), step.config);
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
      planned: { action: 'inventory' as const },
      tables: [{ title: 'replication slots', columns: INVENTORY_COLUMNS, rows, footer: `${rows.length} slot(s), ${flagged.length} flagged` }],
      notes: flagged.map((r) => `${r.slot}: ${r.flags}`),
    };
  },
  async apply() {
    return { before: null };
  },
});

// ----------------------------------------------------------- assert-caught-up

interface Position {
  readonly name: string;
  readonly lsn: string | null;
  /** Bytes still to confirm up to the target position (null: never confirmed). */
  readonly behind: number | null;
}

const STANDBY_POSITIONS_SQL = `SELECT application_name AS name, replay_lsn::text AS lsn, pg_wal_lsn_diff($1::pg_lsn, replay_lsn)::text AS behind
  FROM pg_stat_replication ORDER BY application_name`;

const SLOT_POSITIONS_SQL = `SELECT slot_name AS name, confirmed_flush_lsn::text AS lsn, pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::text AS behind
  FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY slot_name`;

/** Where each watched consumer is, relative to `target` (default: the current WAL position). */
async function positions(db: Queryable, config: SlotsConfig, target?: string): Promise<{ target: string; positions: Position[]; unmatched: string[] }> {
  // The insert position, not pg_current_wal_lsn() (the write position): a
  // commit made with synchronous_commit off may not be written yet, and it
  // still has to reach every consumer.
  const { rows: now } = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const at = target ?? now[0]?.lsn ?? '0/0';
  if (config.standbys !== undefined) {
    const { rows } = await db.query<{ name: string; lsn: string | null; behind: string | null }>(STANDBY_POSITIONS_SQL, [at]);
    const wanted = globMatcher(config.standbys);
    const watched = rows.filter((r) => wanted(r.name));
    const unmatched = config.standbys.filter((n) => !isPattern(n) && !watched.some((r) => r.name === n));
    return { target: at, positions: watched.map((r) => ({ name: r.name, lsn: r.lsn, behind: r.behind === null ? null : Number(r.behind) })), unmatched };
  }
  const { rows } = await db.query<{ name: string; lsn: string | null; behind: string | null }>(SLOT_POSITIONS_SQL, [at]);
  const names = config.slots ?? [];
  const wanted = names.length === 0 ? () => true : globMatcher(names);
  const watched = rows.filter((r) => wanted(r.name));
  const unmatched = names.filter((n) => !isPattern(n) && !watched.some((r) => r.name === n));
  return { target: at, positions: watched.map((r) => ({ name: r.name, lsn: r.lsn, behind: r.behind === null ? null : Number(r.behind) })), unmatched };
}

const behindText = (p: Position) => (p.behind === null ? `${p.name} (never confirmed)` : `${p.name} ${formatBytes(Math.max(0, p.behind))} behind`);

export class CatchUpTimeoutError extends Error {
  override readonly name = 'CatchUpTimeoutError';
}

/** Which consumers assert-caught-up waits for: standbys by application_name, or logical slots (names or patterns; none: all). */
const watchedOf = (planned: { readonly standbys: readonly string[] | null; readonly slots: readonly string[] }): SlotsConfig => ({
  action: 'assert-caught-up',
  ...(planned.standbys !== null ? { standbys: [...planned.standbys] } : { slots: [...planned.slots] }),
});

export const assertCaughtUp = handler({
  effects: 'none',
  reversibility: { kind: 'nothing-to-undo' },
  planned: z.strictObject({
    action: z.literal('assert-caught-up'),
    standbys: z.array(z.string()).nullable(),
    slots: z.array(z.string()),
    intervalMs: z.number(),
    timeoutMs: z.number(),
  }),
  before: z.null(),
  async plan(ctx, step) {
    const connection = step.connection;
    const { target, positions: now, unmatched } = await positions(await ctx.session(connection), step.config);
    const what = step.config.standbys !== undefined ? 'standby' : 'slot';
    return {
      planned: {
        action: 'assert-caught-up' as const,
        standbys: step.config.standbys ?? null,
        slots: step.config.slots ?? [],
        intervalMs: step.config.interval ?? DEFAULT_INTERVAL_MS,
        timeoutMs: step.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS,
      },
      actions: [
        {
          type: 'poll',
          connection,
          // $1 is pg_current_wal_insert_lsn() as read when the step starts.
          sql: step.config.standbys !== undefined ? STANDBY_POSITIONS_SQL : SLOT_POSITIONS_SQL,
          expect: 'behind <= 0 for every selected one',
          intervalMs: step.config.interval ?? DEFAULT_INTERVAL_MS,
          timeoutMs: step.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS,
        },
      ],
      tables: [
        {
          title: `${what}s to wait for (behind the current WAL position ${target})`,
          columns: [
            { key: 'name', title: what },
            { key: 'lsn', title: step.config.standbys !== undefined ? 'replay_lsn' : 'confirmed_flush_lsn' },
            { key: 'behind', title: 'behind', align: 'right' },
          ],
          rows: now.map((p) => ({ name: p.name, lsn: p.lsn, behind: formatBytes(p.behind === null ? null : Math.max(0, p.behind)), behindBytes: p.behind })),
        },
      ],
      ...(now.length === 0 ? { notes: [`no ${what}s selected: nothing to wait for`] } : {}),
      ...(unmatched.length > 0 ? { blockers: unmatched.map((n) => `no ${what} named ${n}`) } : {}),
    };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const { timeoutMs, intervalMs } = planned;
    const watching = watchedOf(planned);
    const started = Date.now();
    // The position to reach is fixed once, when the step starts: writes are frozen by then.
    const first = await positions(db, watching);
    const target = first.target;
    let watched = first.positions;
    for (;;) {
      const laggards = watched.filter((p) => p.behind === null || p.behind > 0);
      if (laggards.length === 0) {
        return {
          before: null,
          output: `${watched.length} caught up with ${target} after ${Date.now() - started}ms`,
          details: { lsn: target, waitedMs: Date.now() - started },
        };
      }
      ctx.progress(`waiting for ${target}: ${laggards.map(behindText).join(', ')}`);
      if (Date.now() + intervalMs - started > timeoutMs) {
        throw new CatchUpTimeoutError(`not caught up with ${target} after ${timeoutMs}ms: ${laggards.map(behindText).join(', ')}`);
      }
      await sleep(intervalMs, undefined, { signal: ctx.signal });
      watched = (await positions(db, watching, target)).positions;
    }
  },
});

// ----------------------------------------------------------------------- drop

const DROP_COLUMNS: PlanTable['columns'] = [
  { key: 'slot', title: 'slot' },
  { key: 'type', title: 'type' },
  { key: 'plugin', title: 'plugin' },
  { key: 'database', title: 'database' },
  { key: 'active', title: 'active' },
  { key: 'action', title: 'action' },
];


/** Waits until no process holds the slot (a terminated walsender takes a moment to exit). */
async function waitReleased(db: Queryable, name: string, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + RELEASE_TIMEOUT_MS;
  for (;;) {
    const slot = (await readSlots(db)).find((s) => s.name === name);
    if (slot === undefined || !slot.active) return;
    if (Date.now() > deadline) throw new RefusedError(`slot ${name} is still held by pid ${slot.activePid ?? '?'} after ${RELEASE_TIMEOUT_MS}ms`);
    await sleep(100, undefined, { signal });
  }
}

export const drop = handler({
  effects: 'external',
  reversibility: { kind: 'reversible' },
  planned: z.strictObject({ action: z.literal('drop'), slots: z.array(slotDefinition), terminate: z.boolean() }),
  /** The definitions of the dropped slots, which rollback recreates. */
  before: z.strictObject({ slots: z.array(slotDefinition) }),
  async plan(ctx, step) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const database = await currentDatabase(db);
    const { selected, unmatched } = select(await readSlots(db), step.config);
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
      tables: [{ title: 'slots to drop', columns: DROP_COLUMNS, rows }],
      notes: [
        ...(logical.length > 0
          ? [
              `position loss (accepted by acceptPositionLoss): rollback recreates ${logical.join(', ')} with the same name, plugin and options, but at the WAL position of that moment; changes made in between will never be decoded through them`,
            ]
          : []),
        ...unmatched.map((n) => `no slot named ${n} (already dropped?)`),
      ],
      ...(blockers.length > 0 ? { blockers } : {}),
      planned: { action: 'drop' as const, slots: selected.map(definitionOf), terminate: step.config.terminate === true },
    };
  },
  async apply(ctx, step, planned) {
    const db = await ctx.session(step.connection);
    const names = new Set(planned.slots.map((d) => d.name));
    const present = (await readSlots(db)).filter((s) => names.has(s.name));
    // A slot dropped and recreated since the plan is another slot: rollback would recreate the wrong one.
    const drift = present.flatMap((s) => {
      const was = planned.slots.find((d) => d.name === s.name);
      return jsonDifferences(was, definitionOf(s), s.name);
    });
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
  async rollback(ctx, step, before) {
    const db = await ctx.session(step.connection);
    const existing = new Set((await readSlots(db)).map((s) => s.name));
    for (const definition of before.slots) {
      if (existing.has(definition.name)) continue; // recreated already
      const { sql, params } = createSlotStatement(definition);
      await db.query(sql, params);
    }
  },
});

// --------------------------------------------------------------------- create

function wantedDefinitions(config: SlotsConfig, database: string): SlotDefinition[] {
  return (config.slots ?? []).map((name) => ({
    name,
    type: config.type ?? 'logical',
    plugin: config.type === 'physical' ? null : (config.plugin ?? 'pgoutput'),
    database: config.type === 'physical' ? null : database,
    twoPhase: config.twoPhase === true,
    failover: config.failover === true,
    reserveWal: true,
  }));
}

export const create = handler({
  effects: 'external',
  reversibility: { kind: 'reversible' },
  planned: z.strictObject({ action: z.literal('create'), slots: z.array(slotDefinition) }),
  /** The slots this step created (not those that existed already), which rollback drops. */
  before: z.strictObject({ created: z.array(z.string()) }),
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
      actions: missing.map((d) => ({ type: 'sql', connection, ...createSlotStatement(d) })),
      notes,
      ...(blockers.length > 0 ? { blockers } : {}),
      planned: { action: 'create' as const, slots: missing },
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
  async rollback(ctx, step, before) {
    const db = await ctx.session(step.connection);
    const created = new Set(before.created);
    for (const slot of (await readSlots(db)).filter((s) => created.has(s.name))) {
      if (slot.active) {
        if (!ctx.force) throw new RefusedError(`slot ${slot.name} is in use (pid ${slot.activePid ?? '?'}); roll back with --force to end that session and drop it`);
        await db.query(TERMINATE_SQL, [slot.activePid]);
        await waitReleased(db, slot.name, ctx.signal);
      }
      if ((await readSlots(db)).some((s) => s.name === slot.name)) await db.query(DROP_SLOT_SQL, [slot.name]);
    }
  },
});
