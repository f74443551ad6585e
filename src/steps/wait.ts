/**
 * `wait`: polls a query until its first value equals `expect`, every
 * `interval`, for at most the step's `timeout` (default 10 minutes). Reads
 * only, so dry-run shows the current value without waiting.
 */
import { done, notYet, poll } from '../poll.js';
import { z } from 'zod';
import { duration } from '../runbook/schema.js';
import { defineStep } from '../step/contract.js';
import { expectSchema, firstValue, matches } from '../step/expect.js';

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_INTERVAL_MS = 2_000;

const config = z.object({
  query: z.string().min(1).describe('a query whose first column of the first row is compared'),
  expect: expectSchema,
  interval: duration.optional().describe('time between polls (default 2s)'),
});

export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
}

export const waitStep = defineStep({
  kind: 'wait',
  summary: 'Poll a query until it returns the expected value, with interval and timeout',
  config,
  connection: { required: true, kinds: ['postgres'] },
  effects: () => 'none',
  planned: z.object({ query: z.string(), expect: expectSchema, intervalMs: z.number(), timeoutMs: z.number() }),
  before: z.null(),
  reversibility: () => ({ kind: 'nothing-to-undo' }),

  async plan(ctx, step) {
    const connection = step.connection;
    const current = await firstValue(await ctx.session(connection), step.config.query);
    const planned = {
      query: step.config.query,
      expect: step.config.expect,
      intervalMs: step.config.interval ?? DEFAULT_INTERVAL_MS,
      timeoutMs: step.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
    return {
      actions: [{ type: 'poll', connection, sql: planned.query, expect: planned.expect, intervalMs: planned.intervalMs, timeoutMs: planned.timeoutMs }],
      planned,
      changes: [{ subject: 'query result', current, desired: step.config.expect }],
    };
  },

  async apply(ctx, step, planned) {
    const session = await ctx.session(step.connection);
    const { query, expect, intervalMs, timeoutMs } = planned;
    const found = await poll(
      async (polls) => {
        const value = await firstValue(session, query);
        if (matches(value, expect)) return done(polls);
        ctx.progress(`got ${JSON.stringify(value)}, waiting for ${JSON.stringify(expect)} (poll ${polls})`);
        return notYet(value);
      },
      { intervalMs, timeoutMs, signal: ctx.signal },
    );
    if (!found.done) {
      throw new WaitTimeoutError(`timed out after ${timeoutMs}ms: last value ${JSON.stringify(found.seen)}, expected ${JSON.stringify(expect)}`);
    }
    return { before: null, output: `matched after ${found.value} poll(s)` };
  },
});
