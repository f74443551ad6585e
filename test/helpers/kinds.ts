/**
 * Step kinds that only tests register: they break the contract on purpose,
 * to show what the engine does then.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineStep, type StepDefinition } from '../../src/index.js';
import type { Queryable } from '../../src/db/session.js';

/**
 * `stubborn`: ignores its deadline and waits until the engine stops it at
 * its ceiling. With `first`, its apply first runs that on a session of the
 * step's connection (to record which backend it had, say).
 */
export function stubbornKind(first?: (session: Queryable) => Promise<unknown>): StepDefinition {
  return defineStep({
    kind: 'stubborn',
    summary: 'a kind that waits on nothing but the engine',
    config: z.object({}),
    connection: { required: false, kinds: ['postgres'] },
    effects: () => 'external',
    reversibility: () => ({ kind: 'nothing-to-undo' }),
    planned: z.null(),
    before: z.null(),
    async plan() {
      return { actions: [], planned: null };
    },
    async apply(ctx, step) {
      if (first !== undefined && step.connection !== undefined) await first(await ctx.session(step.connection));
      await sleep(60_000, undefined, { signal: ctx.signal });
      return { before: null };
    },
  });
}
