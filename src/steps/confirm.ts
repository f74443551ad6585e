/**
 * `confirm`: a manual gate. Passes when a person says yes at the prompt, or
 * when the run was started with --yes; with neither (no TTY, no --yes) the run
 * stops before it, resumable, instead of guessing.
 */
import { z } from 'zod';
import { ConfirmationDeclinedError } from '../errors.js';
import { defineStep } from '../step/contract.js';

const config = z.object({
  message: z.string().min(1).describe('the question asked, e.g. "Application servers stopped?"'),
});

export const confirmStep = defineStep({
  kind: 'confirm',
  summary: 'A manual gate: asks a question and passes only on yes (or --yes)',
  config,
  connection: { required: false, kinds: [] },
  effects: () => 'none',
  planned: z.object({ question: z.string() }),
  before: z.null(),
  reversibility: () => ({ kind: 'nothing-to-undo' }),

  async plan(_ctx, step) {
    const question = step.config.message;
    return { actions: [{ type: 'prompt', question }], planned: { question } };
  },

  async apply(ctx, step, planned) {
    if (!(await ctx.confirm(planned.question))) {
      throw new ConfirmationDeclinedError(step.id, planned.question);
    }
    return { before: null };
  },
});
