/**
 * What `subscriptions-disable` and `subscriptions-enable` share: one is the
 * other's undo, so they plan, apply, verify and roll back with the same
 * functions, told which way to switch; toggleStep defines either. Not a kind itself.
 */
import { z } from 'zod';
import { PlanDriftError, UsageError, VerificationError } from '../errors.js';
import {
  defineStep,
  jsonDifferences,
  type Action,
  type ApplyContext,
  type ApplyOutcome,
  type BaseContext,
  type CheckFinding,
  type ConnectedStep,
  type RollbackPlan,
  type StepPlan,
} from '../step/contract.js';
import { roleFacts } from '../step/check-helpers.js';
import type { Queryable } from '../db/session.js';
import { alterSubscription, readSubscriptions, selectSubscriptions, togglesOf, waitWorkers } from '../replication/subscriptions.js';

export const toggleConfig = z.strictObject({
  subscriptions: z.array(z.string().min(1)).optional().describe('subscription names (default all of the connected database)'),
});

type Step = ConnectedStep<z.output<typeof toggleConfig>>;

/** The subscriptions a switch changes, each with its `enabled` before: the payload, and the before-state rollback restores. */
export const toggled = z.strictObject({ subscriptions: z.array(z.strictObject({ name: z.string(), enabled: z.boolean() })) });

type Toggled = z.output<typeof toggled>;

const verbOf = (enable: boolean) => (enable ? 'enable' : 'disable');

/** ALTER SUBSCRIPTION needs its owner (or a superuser). */
export async function checkOwner(ctx: { session(connection: string): Promise<Queryable> }, step: { readonly connection: string }): Promise<CheckFinding[]> {
  const role = await roleFacts(await ctx.session(step.connection));
  return [
    role.superuser
      ? { severity: 'ok', check: 'subscription owner', message: `role ${role.role} is superuser` }
      : {
          severity: 'warning',
          check: 'subscription owner',
          message: `role ${role.role} is not superuser: it must own each subscription`,
          fix: "run as a superuser or the subscriptions' owner",
        },
  ];
}

export async function planToggle(ctx: BaseContext, step: Step, enable: boolean): Promise<StepPlan<Toggled>> {
  const connection = step.connection;
  const verb = verbOf(enable);
  const subs = await readSubscriptions(await ctx.session(connection));
  const { selected, missing } = selectSubscriptions(subs, step.config.subscriptions);
  const subscriptions = togglesOf(subs, step.config.subscriptions, enable);
  return {
    actions: subscriptions.map((s): Action => ({ type: 'sql', connection, sql: alterSubscription(s.name, enable) })),
    planned: { subscriptions },
    tables: [
      {
        title: 'subscriptions',
        columns: [
          { key: 'subscription', title: 'subscription' },
          { key: 'enabled', title: 'enabled' },
          { key: 'slot', title: 'slot' },
          { key: 'worker', title: 'apply worker' },
          { key: 'action', title: 'action' },
        ],
        rows: selected.map((s) => ({
          subscription: s.name,
          enabled: s.enabled,
          slot: s.slot,
          worker: s.workerPid === null ? 'none' : `pid ${s.workerPid}`,
          action: s.enabled === enable ? `already ${verb}d` : verb,
        })),
      },
    ],
    ...(missing.length > 0 ? { blockers: missing.map((n) => `no subscription named ${n} in this database`) } : {}),
  };
}

export async function applyToggle(ctx: ApplyContext<Toggled>, step: Step, planned: Toggled, enable: boolean): Promise<ApplyOutcome<Toggled>> {
  const tx = ctx.tx;
  if (tx === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but got none`);
  // Planned again inside the transaction: a subscription created, dropped or switched since is not what was reviewed.
  const drift = jsonDifferences(planned.subscriptions, togglesOf(await readSubscriptions(tx), step.config.subscriptions, enable), 'subscriptions');
  if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
  for (const s of planned.subscriptions) await tx.query(alterSubscription(s.name, enable));
  return { before: { subscriptions: planned.subscriptions }, output: `${verbOf(enable)}d ${planned.subscriptions.length} subscription(s)` };
}

export async function verifyToggle(ctx: BaseContext, step: Step, before: Toggled, enable: boolean): Promise<void> {
  const db = await ctx.session(step.connection);
  const names = before.subscriptions.map((s) => s.name);
  const wrong = (await readSubscriptions(db)).filter((s) => names.includes(s.name) && s.enabled !== enable);
  if (wrong.length > 0) throw new VerificationError(`not ${verbOf(enable)}d: ${wrong.map((s) => s.name).join(', ')}`);
  if (!enable) {
    // A disabled subscription's apply worker exits on its own; "disabled" means "not applying".
    const still = await waitWorkers(db, names, false, ctx.signal);
    if (still.length > 0) throw new VerificationError(`disabled, but an apply worker still runs for: ${still.join(', ')}`);
  }
}

/**
 * What rollback runs: the opposite switch, for the ones the step changed
 * that still exist. One a later step dropped (subscription-detach, which is
 * irreversible and says so) has nothing left to switch back; failing on it
 * would stop the rollback before the steps under it, the write freeze among
 * them.
 */
async function restoreStatements(db: Queryable, before: Toggled): Promise<{ statements: string[]; gone: string[] }> {
  const existing = new Set((await readSubscriptions(db)).map((s) => s.name));
  return {
    statements: before.subscriptions.filter((s) => existing.has(s.name)).map((s) => alterSubscription(s.name, s.enabled)),
    gone: before.subscriptions.filter((s) => !existing.has(s.name)).map((s) => s.name),
  };
}

export async function planRollbackToggle(ctx: BaseContext, step: Step, before: Toggled): Promise<RollbackPlan> {
  const { statements, gone } = await restoreStatements(await ctx.session(step.connection), before);
  return {
    actions: statements.map((sql): Action => ({ type: 'sql', connection: step.connection, sql })),
    ...(gone.length > 0 ? { notes: gone.map((name) => `subscription ${name} no longer exists (a later step dropped it?): nothing to switch back`) } : {}),
  };
}

/** Puts each subscription that still exists back as it was. */
export async function rollbackToggle(ctx: ApplyContext<Toggled>, step: Step, before: Toggled): Promise<void> {
  const tx = ctx.tx;
  if (tx === undefined) throw new UsageError(`step "${step.id}" runs in a transaction but got none`);
  for (const sql of (await restoreStatements(tx, before)).statements) await tx.query(sql);
}

/** One of the two switch kinds: its name, the `replication-slots` action it replaces, its summary, and which way it switches. */
export function toggleStep(spec: { readonly kind: string; readonly action: string; readonly summary: string; readonly enable: boolean }) {
  const { enable } = spec;
  return defineStep({
    kind: spec.kind,
    replaces: { kind: 'replication-slots', key: 'action', value: spec.action },
    summary: spec.summary,
    config: toggleConfig,
    connection: { required: true, kinds: ['postgres'] },
    planned: toggled,
    before: toggled,
    effects: () => 'transaction',
    idempotent: true,
    reversibility: () => ({ kind: 'reversible' }),
    check: checkOwner,
    plan: (ctx, step) => planToggle(ctx, step, enable),
    apply: (ctx, step, planned) => applyToggle(ctx, step, planned, enable),
    verify: (ctx, step, _planned, before) => verifyToggle(ctx, step, before, enable),
    planRollback: planRollbackToggle,
    rollback: rollbackToggle,
  });
}
