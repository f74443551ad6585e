/**
 * `sql`: statements on one connection, in one transaction unless
 * `transaction: false` (for VACUUM, CREATE INDEX CONCURRENTLY and the like),
 * with optional rollback statements and an optional verify query.
 */
import { z } from 'zod';
import { VerificationError } from '../errors.js';
import { defineStep, type Action } from '../step/contract.js';
import { expectSchema, firstValue, matches } from '../step/expect.js';

const statements = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'expected an SQL statement (a string) or a list of them' });

const config = z.object({
  sql: statements.describe('one statement (or a script) or a list of them, run in order'),
  transaction: z.boolean().optional().describe('run all statements in one transaction (default true)'),
  rollback: statements.optional().describe('statements that undo this step'),
  verify: z
    .strictObject({ query: z.string().min(1), expect: expectSchema })
    .optional()
    .describe('post-condition checked after apply'),
});

type Config = z.output<typeof config>;

const list = (value: string | readonly string[]): readonly string[] => (typeof value === 'string' ? [value] : value);
const inTransaction = (c: Config) => c.transaction !== false;

export const sqlStep = defineStep({
  kind: 'sql',
  summary: 'Run SQL statements, in one transaction by default, with optional rollback SQL and a verify query',
  config,
  connection: { required: true, kinds: ['postgres'] },
  effects: (c) => (inTransaction(c) ? 'transaction' : 'external'),
  // The statements, exactly as they run; rollback and verify come from the runbook, whose sha256 the journal holds.
  planned: z.object({ statements: z.array(z.string()), transaction: z.boolean() }),
  before: z.null(),
  reversibility: (c) => (c.rollback !== undefined ? { kind: 'reversible' } : { kind: 'irreversible', reason: 'no rollback SQL was given' }),

  async plan(_ctx, step) {
    const planned = { statements: [...list(step.config.sql)], transaction: inTransaction(step.config) };
    const verify = step.config.verify;
    return {
      actions: planned.statements.map((sql) => ({ type: 'sql', connection: step.connection, sql, transaction: planned.transaction })),
      planned,
      ...(verify ? { notes: [`verify: ${verify.query} = ${JSON.stringify(verify.expect)}`] } : {}),
    };
  },

  async apply(ctx, step, planned) {
    const session = ctx.tx ?? (await ctx.session(step.connection));
    for (const sql of planned.statements) await session.query(sql);
    return { before: null };
  },

  verifies: (c) => c.verify !== undefined,

  async verify(ctx, step) {
    const verify = step.config.verify;
    if (verify === undefined) return;
    const actual = await firstValue(await ctx.session(step.connection), verify.query);
    if (!matches(actual, verify.expect)) {
      throw new VerificationError(`verify query returned ${JSON.stringify(actual)}, expected ${JSON.stringify(verify.expect)}: ${verify.query}`);
    }
  },

  async rollback(ctx, step) {
    const session = ctx.tx ?? (await ctx.session(step.connection));
    for (const sql of list(step.config.rollback ?? [])) await session.query(sql);
  },

  async planRollback(_ctx, step) {
    const connection = step.connection;
    const transaction = inTransaction(step.config);
    return { actions: list(step.config.rollback ?? []).map((sql): Action => ({ type: 'sql', connection, sql, transaction })) };
  },
});
