/**
 * `replication-caught-up`: after writes stopped, wait until every consumer
 * has confirmed the WAL position of the moment the step starts: logical
 * slots by confirmed_flush_lsn, or physical standbys by replay_lsn. It waits
 * for the insert position, so a commit made with synchronous_commit off
 * counts too. It reads only; it fails naming the laggards at its timeout.
 */
import { done, notYet, poll } from '../poll.js';
import { z } from 'zod';
import { defineStep, type CheckFinding } from '../step/contract.js';
import { duration } from '../runbook/schema.js';
import { formatBytes } from '../replication/slots.js';
import { CatchUpTimeoutError, SLOT_POSITIONS_SQL, STANDBY_POSITIONS_SQL, behindText, positions, type Watched } from '../replication/positions.js';

export const DEFAULT_WAIT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_INTERVAL_MS = 500;

const config = z.strictObject({
  slots: z.array(z.string().min(1)).optional().describe('logical slot names or patterns (* and ?) to wait for (default all logical slots)'),
  standbys: z.array(z.string().min(1)).optional().describe('wait for these physical standbys (application_name patterns) instead of slots'),
  interval: duration.optional().describe('time between polls (default 500ms); `timeout` bounds the wait (default 10m)'),
});

/** Whom to wait for, how often to look and for how long: all that apply polls with. */
const planned = z.strictObject({
  standbys: z.array(z.string()).nullable(),
  slots: z.array(z.string()),
  intervalMs: z.number().int().nonnegative(),
  timeoutMs: z.number().int().nonnegative(),
});

const watchedOf = (p: z.output<typeof planned>): Watched => (p.standbys !== null ? { standbys: p.standbys } : { slots: p.slots });

export const replicationCaughtUpStep = defineStep({
  kind: 'replication-caught-up',
  replaces: { kind: 'replication-slots', key: 'action', value: 'assert-caught-up' },
  summary: 'Wait until every logical slot (or physical standby) has confirmed the WAL position of the moment the step starts',
  config,
  connection: { required: true, kinds: ['postgres'] },
  validate: (c) =>
    c.standbys !== undefined && c.slots !== undefined ? [{ path: ['standbys'], message: 'wait for slots or for standbys, not both in one step' }] : [],
  planned,
  before: z.null(),
  effects: () => 'none',
  idempotent: true,
  reversibility: () => ({ kind: 'nothing-to-undo' }),
  // What would make the wait fail, found before the run starts (before a freeze stops the application for nothing).
  async check(ctx, step) {
    const watched: Watched = step.config.standbys !== undefined ? { standbys: step.config.standbys } : { slots: step.config.slots ?? [] };
    const { positions: now, unmatched } = await positions(await ctx.session(step.connection), watched);
    const what = 'standbys' in watched ? 'standby' : 'slot';
    const findings: CheckFinding[] = unmatched.map((name) => ({
      severity: 'error',
      check: `${what}s to wait for`,
      message: `no ${what} named ${name}${'standbys' in watched ? ' is streaming' : ''}`,
      fix: `correct the name; if a step before this one ${'standbys' in watched ? 'starts it' : 'creates it'}, start with --ignore-check`,
    }));
    for (const p of now.filter((x) => x.inactive === true))
      findings.push({
        severity: 'warning',
        check: `${what}s to wait for`,
        message: `slot ${p.name} is inactive: no process reads it, so it will not catch up by waiting`,
        fix: 'enable its subscription (or start its consumer) before this step runs',
      });
    if (findings.length === 0)
      findings.push({
        severity: 'ok',
        check: `${what}s to wait for`,
        message: now.length === 0 ? `no ${what}s selected` : `${now.length} ${what}(s)${'standbys' in watched ? ' streaming' : ', each read by a process'}`,
      });
    return findings;
  },
  async plan(ctx, step) {
    const payload = {
      standbys: step.config.standbys ?? null,
      slots: step.config.slots ?? [],
      intervalMs: step.config.interval ?? DEFAULT_INTERVAL_MS,
      timeoutMs: step.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS,
    };
    const { target, positions: now, unmatched } = await positions(await ctx.session(step.connection), watchedOf(payload));
    const standbys = payload.standbys !== null;
    const what = standbys ? 'standby' : 'slot';
    return {
      planned: payload,
      actions: [
        {
          type: 'poll',
          connection: step.connection,
          // $1 is pg_current_wal_insert_lsn() as read when the step starts.
          sql: standbys ? STANDBY_POSITIONS_SQL : SLOT_POSITIONS_SQL,
          expect: 'behind <= 0 for every selected one',
          intervalMs: payload.intervalMs,
          timeoutMs: payload.timeoutMs,
        },
      ],
      tables: [
        {
          title: `${what}s to wait for (behind the current WAL position ${target})`,
          columns: [
            { key: 'name', title: what },
            { key: 'lsn', title: standbys ? 'replay_lsn' : 'confirmed_flush_lsn' },
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
    const { target, positions: first } = await positions(db, watching);
    const found = await poll(
      async (attempt) => {
        const watched = attempt === 1 ? first : (await positions(db, watching, target)).positions;
        const laggards = watched.filter((p) => p.behind === null || p.behind > 0);
        if (laggards.length === 0) return done(watched.length);
        ctx.progress(`waiting for ${target}: ${laggards.map(behindText).join(', ')}`);
        return notYet(laggards);
      },
      { intervalMs, timeoutMs, signal: ctx.signal },
    );
    if (!found.done) throw new CatchUpTimeoutError(target, timeoutMs, found.seen);
    return {
      before: null,
      output: `${found.value} caught up with ${target} after ${Date.now() - started}ms`,
      details: { lsn: target, waitedMs: Date.now() - started },
    };
  },
});
