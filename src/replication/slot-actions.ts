/**
 * The slot actions of `replication-slots`: inventory, assert-caught-up, drop
 * and create. Each is a plan/apply/verify/rollback quadruple, chosen by the
 * step's `action` from the table in src/steps/replication-slots.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RefusedError, UsageError, VerificationError } from '../errors.js';
import type {
  Action,
  ApplyContext,
  ApplyOutcome,
  BaseContext,
  Effects,
  Json,
  PlanTable,
  Reversibility,
  Step,
  StepPlan,
} from '../engine/step.js';
import type { Queryable } from '../db/session.js';
import { globMatcher } from '../steps/patterns.js';
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

export interface ActionHandler {
  readonly effects: Effects;
  readonly reversibility: Reversibility;
  plan(ctx: BaseContext, step: Step<SlotsConfig>): Promise<StepPlan>;
  apply(ctx: ApplyContext, step: Step<SlotsConfig>, plan: StepPlan): Promise<ApplyOutcome>;
  verify?(ctx: BaseContext, step: Step<SlotsConfig>, plan: StepPlan, before: Json): Promise<void>;
  rollback?(ctx: ApplyContext, step: Step<SlotsConfig>, before: Json): Promise<void>;
}

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

export const connectionOf = (step: Step<SlotsConfig>): string => {
  if (step.connection === undefined) throw new UsageError(`step "${step.id}" needs a connection`);
  return step.connection;
};

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

export const inventory: ActionHandler = {
  effects: 'none',
  reversibility: { kind: 'nothing-to-undo' },
  async plan(ctx, step) {
    const { selected } = select(await readSlots(await ctx.session(connectionOf(step))), step.config);
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
      tables: [{ title: 'replication slots', columns: INVENTORY_COLUMNS, rows, footer: `${rows.length} slot(s), ${flagged.length} flagged` }],
      notes: flagged.map((r) => `${r.slot}: ${r.flags}`),
    };
  },
  async apply() {
    return { before: null };
  },
};

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

export const assertCaughtUp: ActionHandler = {
  effects: 'none',
  reversibility: { kind: 'nothing-to-undo' },
  async plan(ctx, step) {
    const connection = connectionOf(step);
    const { target, positions: now, unmatched } = await positions(await ctx.session(connection), step.config);
    const what = step.config.standbys !== undefined ? 'standby' : 'slot';
    return {
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
  async apply(ctx, step) {
    const db = await ctx.session(connectionOf(step));
    const timeoutMs = step.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const intervalMs = step.config.interval ?? DEFAULT_INTERVAL_MS;
    const started = Date.now();
    // The position to reach is fixed once, when the step starts: writes are frozen by then.
    let { target, positions: watched } = await positions(db, step.config);
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
      ({ positions: watched } = await positions(db, step.config, target));
    }
  },
};

// ----------------------------------------------------------------------- drop

const DROP_COLUMNS: PlanTable['columns'] = [
  { key: 'slot', title: 'slot' },
  { key: 'type', title: 'type' },
  { key: 'plugin', title: 'plugin' },
  { key: 'database', title: 'database' },
  { key: 'active', title: 'active' },
  { key: 'action', title: 'action' },
];

interface DropBefore {
  readonly slots: readonly SlotDefinition[];
}

const dropBefore = (json: Json | undefined): DropBefore => ({ slots: ((json as unknown as DropBefore | null)?.slots ?? []) as SlotDefinition[] });

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

export const drop: ActionHandler = {
  effects: 'external',
  reversibility: { kind: 'reversible' },
  async plan(ctx, step) {
    const connection = connectionOf(step);
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
      details: { slots: selected.map(definitionOf) as unknown as Json },
    };
  },
  async apply(ctx, step, plan) {
    const db = await ctx.session(connectionOf(step));
    const planned = new Set(dropBefore(plan.details).slots.map((d) => d.name));
    const present = (await readSlots(db)).filter((s) => planned.has(s.name));
    const prior = dropBefore(ctx.priorBefore).slots;
    const before: DropBefore = { slots: [...prior, ...present.filter((s) => !prior.some((p) => p.name === s.name)).map(definitionOf)] };
    ctx.recordBefore(before as unknown as Json);
    for (const slot of present) {
      if (slot.active) {
        if (step.config.terminate !== true) throw new RefusedError(`slot ${slot.name} became active (pid ${slot.activePid ?? '?'}) since the plan; not dropped`);
        await db.query(TERMINATE_SQL, [slot.activePid]);
        await waitReleased(db, slot.name, ctx.signal);
      }
      // A temporary slot goes away with its terminated session.
      if ((await readSlots(db)).some((s) => s.name === slot.name)) await db.query(DROP_SLOT_SQL, [slot.name]);
    }
    return { before: before as unknown as Json, output: `dropped ${present.length} slot(s)` };
  },
  async verify(ctx, step, plan) {
    const names = dropBefore(plan.details).slots.map((d) => d.name);
    const left = (await readSlots(await ctx.session(connectionOf(step)))).filter((s) => names.includes(s.name));
    if (left.length > 0) throw new VerificationError(`still present: ${left.map((s) => s.name).join(', ')}`);
  },
  async rollback(ctx, step, before) {
    const db = await ctx.session(connectionOf(step));
    const existing = new Set((await readSlots(db)).map((s) => s.name));
    for (const definition of dropBefore(before).slots) {
      if (existing.has(definition.name)) continue; // recreated already
      const { sql, params } = createSlotStatement(definition);
      await db.query(sql, params);
    }
  },
};

// --------------------------------------------------------------------- create

interface CreateBefore {
  readonly created: readonly string[];
}

const createdOf = (json: Json | undefined): readonly string[] => (json as unknown as CreateBefore | null)?.created ?? [];

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

export const create: ActionHandler = {
  effects: 'external',
  reversibility: { kind: 'reversible' },
  async plan(ctx, step) {
    const connection = connectionOf(step);
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
      details: { slots: missing as unknown as Json },
    };
  },
  async apply(ctx, step, plan) {
    const db = await ctx.session(connectionOf(step));
    const planned = ((plan.details as { slots?: SlotDefinition[] } | undefined)?.slots ?? []) as SlotDefinition[];
    const existing = new Set((await readSlots(db)).map((s) => s.name));
    const prior = createdOf(ctx.priorBefore);
    const toCreate = planned.filter((d) => !existing.has(d.name));
    // Names an earlier attempt created stay ours even though they exist now.
    const before: CreateBefore = { created: [...new Set([...prior, ...toCreate.map((d) => d.name)])] };
    ctx.recordBefore(before as unknown as Json);
    for (const definition of toCreate) {
      const { sql, params } = createSlotStatement(definition);
      await db.query(sql, params);
    }
    return { before: before as unknown as Json, output: `created ${toCreate.length} slot(s)` };
  },
  async verify(ctx, step, plan) {
    const planned = ((plan.details as { slots?: SlotDefinition[] } | undefined)?.slots ?? []) as SlotDefinition[];
    const slots = await readSlots(await ctx.session(connectionOf(step)));
    const wrong = planned.filter((d) => !slots.some((s) => s.name === d.name && s.type === d.type));
    if (wrong.length > 0) throw new VerificationError(`not created: ${wrong.map((d) => d.name).join(', ')}`);
  },
  async rollback(ctx, step, before) {
    const db = await ctx.session(connectionOf(step));
    const created = new Set(createdOf(before));
    for (const slot of (await readSlots(db)).filter((s) => created.has(s.name))) {
      if (slot.active) {
        if (!ctx.force) throw new RefusedError(`slot ${slot.name} is in use (pid ${slot.activePid ?? '?'}); roll back with --force to end that session and drop it`);
        await db.query(TERMINATE_SQL, [slot.activePid]);
        await waitReleased(db, slot.name, ctx.signal);
      }
      if ((await readSlots(db)).some((s) => s.name === slot.name)) await db.query(DROP_SLOT_SQL, [slot.name]);
    }
  },
};
