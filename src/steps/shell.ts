/**
 * `shell`: one external command as an argv array (never a shell string), with
 * env, cwd and timeout. With `connection:` the command gets PGHOST, PGPORT,
 * PGDATABASE, PGUSER and PGPASSWORD for it, so no secret is written into
 * argv. Dry-run never runs it unless it says `readOnly: true`.
 */
import { z } from 'zod';
import path from 'node:path';
import { defineStep, type BaseContext, type Step } from '../step/contract.js';
import { programFinding } from '../step/check-helpers.js';

const argv = z.array(z.string()).min(1);

const config = z.object({
  command: argv.describe('argv: the program, then each argument as its own item'),
  env: z.record(z.string(), z.string()).optional().describe('extra environment variables (values are never logged)'),
  cwd: z.string().optional().describe('working directory, relative to the runbook'),
  readOnly: z.boolean().optional().describe('the command changes nothing, so dry-run runs it too'),
  rollback: argv.optional().describe('argv of a command that undoes this one'),
  stops: z
    .array(z.string().min(1))
    .optional()
    .describe('connections whose server this command stops (pg_ctl stop, systemctl stop): the run lets go of their locks first'),
});

type Config = z.output<typeof config>;

const OUTPUT_LIMIT = 16 * 1024;

async function run(ctx: BaseContext, step: Step<Config>, command: readonly string[], cwd: string | null): Promise<string> {
  const env = {
    ...(step.connection !== undefined ? ctx.connectionEnv(step.connection) : {}),
    ...step.config.env,
  };
  const result = await ctx.commands(command, {
    ...(cwd !== null ? { cwd } : {}),
    env,
    ...(step.timeoutMs !== undefined ? { timeoutMs: step.timeoutMs } : {}),
    signal: ctx.signal,
  });
  const output = [result.stdout, result.stderr].filter((s) => s.length > 0).join('\n');
  return output.length > OUTPUT_LIMIT ? `…${output.slice(-OUTPUT_LIMIT)}` : output;
}

export const shellStep = defineStep({
  kind: 'shell',
  summary: 'Run an external command (argv, env, cwd, timeout) with an optional rollback command',
  config,
  connection: { required: false, kinds: ['postgres'] },
  effects: (c) => (c.readOnly === true ? 'none' : 'external'),
  stopsServerOf: (c) => c.stops ?? [],
  validate(c, runbook) {
    return (c.stops ?? []).flatMap((name, i) =>
      runbook.connectionKind(name) === 'postgres' ? [] : [{ path: ['stops', i], message: `"${name}" is not a postgres connection of this runbook` }],
    );
  },
  // What runs: argv and the directory. Environment values stay out (they may be secrets) and come from the runbook.
  planned: z.object({ argv: z.array(z.string()).min(1), cwd: z.string().nullable() }),
  before: z.null(),
  reversibility: (c) =>
    c.rollback !== undefined
      ? { kind: 'reversible' }
      : c.readOnly === true
        ? { kind: 'nothing-to-undo' }
        : { kind: 'irreversible', reason: 'no rollback command was given' },

  async check(ctx, step) {
    const dir = ctx.resolvePath(step.config.cwd ?? '.');
    const programs = [step.config.command[0], step.config.rollback?.[0]].filter((p): p is string => p !== undefined);
    return Promise.all([...new Set(programs)].map((program) => programFinding(ctx, program.includes('/') ? path.resolve(dir, program) : program)));
  },

  async plan(ctx, step) {
    const envKeys = [...(step.connection !== undefined ? Object.keys(ctx.connectionEnv(step.connection)) : []), ...Object.keys(step.config.env ?? {})];
    const planned = { argv: [...step.config.command], cwd: step.config.cwd !== undefined ? ctx.resolvePath(step.config.cwd) : null };
    const action = {
      type: 'command' as const,
      argv: planned.argv,
      ...(planned.cwd !== null ? { cwd: planned.cwd } : {}),
      ...(envKeys.length > 0 ? { envKeys } : {}),
    };
    if (ctx.dryRun && step.config.readOnly === true) {
      return { actions: [action], planned, output: await run(ctx, step, planned.argv, planned.cwd) };
    }
    return { actions: [action], planned };
  },

  async apply(ctx, step, planned) {
    return { before: null, output: await run(ctx, step, planned.argv, planned.cwd) };
  },

  async rollback(ctx, step) {
    const cwd = step.config.cwd !== undefined ? ctx.resolvePath(step.config.cwd) : null;
    if (step.config.rollback !== undefined) await run(ctx, step, step.config.rollback, cwd);
  },

  async planRollback(ctx, step) {
    if (step.config.rollback === undefined) return { actions: [] };
    const envKeys = [...(step.connection !== undefined ? Object.keys(ctx.connectionEnv(step.connection)) : []), ...Object.keys(step.config.env ?? {})];
    return {
      actions: [
        {
          type: 'command',
          argv: step.config.rollback,
          ...(step.config.cwd !== undefined ? { cwd: ctx.resolvePath(step.config.cwd) } : {}),
          ...(envKeys.length > 0 ? { envKeys } : {}),
        },
      ],
    };
  },
});
