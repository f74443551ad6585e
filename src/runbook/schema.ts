/**
 * The one source of truth for the runbook format. It yields the validated
 * TypeScript types, the validation itself, and the published JSON Schema
 * (`cutover schema`). Step kinds contribute their own fields through the
 * registry; everything here is kind-agnostic.
 */
import { z } from 'zod';
import { connectionSchema } from '../db/connection-spec.js';
import { DURATION_PATTERN, MAX_DURATION_MS, parseDuration } from './duration.js';

const DURATION_HINT = 'expected a duration such as "250ms", "30s", "2min", "5 min", "1h" or "1d" (units: us, ms, s, min or m, h, d)';

export const duration = z
  .union([z.number().int().nonnegative().max(MAX_DURATION_MS, `at most ${MAX_DURATION_MS} ms (24.8 days)`), z.string().regex(DURATION_PATTERN, DURATION_HINT)])
  .transform((value, ctx) => {
    const ms = typeof value === 'number' ? value : (parseDuration(value) ?? 0);
    if (ms > MAX_DURATION_MS) {
      ctx.issues.push({
        code: 'custom',
        input: value,
        message: `${String(value)} is more than ${MAX_DURATION_MS} ms (24.8 days), the largest timeout accepted`,
      });
      return z.NEVER;
    }
    return ms;
  })
  .describe(
    'a bare integer is milliseconds (as lock_timeout and statement_timeout take); or a string such as "250ms", "30s", "2min", "5 min", "1h", "1d" (units: us, ms, s, min or m, h, d); at most 24.8 days',
  );

const SIZE_UNITS = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 } as const;
const SIZE_PATTERN = /^(\d{1,15}(?:\.\d{1,9})?)\s*(B|kB|MB|GB|TB)$/;
/** Bytes as a JavaScript number stays exact up to 2^53-1 (8 PiB): far beyond any WAL retention. */
const MAX_BYTES = Number.MAX_SAFE_INTEGER;

/** A size in bytes, or PostgreSQL-style `512MB`, `1GB` (units of 1024). */
export const byteSize = z
  .union([
    z.number().int().nonnegative().max(MAX_BYTES, `at most ${MAX_BYTES} bytes`),
    z.string().regex(SIZE_PATTERN, 'expected a size such as "512MB" or "1GB"'),
  ])
  .transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const [, amount, unit] = SIZE_PATTERN.exec(value) ?? [];
    const bytes = Math.round(Number(amount) * SIZE_UNITS[unit as keyof typeof SIZE_UNITS]);
    if (bytes > MAX_BYTES) {
      ctx.issues.push({ code: 'custom', input: value, message: `${value} is more than ${MAX_BYTES} bytes` });
      return z.NEVER;
    }
    return bytes;
  })
  .describe('bytes, or a string such as "512MB", "1GB"');

const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-", starting with a letter or digit')
  .max(63);

export const defaultsSchema = z.strictObject({
  lockTimeout: duration.optional().describe('lock_timeout of every session (default 5s)'),
  statementTimeout: duration.optional().describe('statement_timeout of every session (default 15m)'),
  onFailure: z.enum(['rollback', 'stop']).optional().describe('what a failed step does to the run (default rollback)'),
});

/** Fields every step has, whatever its kind. */
export const baseStepShape = {
  id: identifier.describe('unique within the runbook; used in the journal and application_name'),
  description: z.string().optional(),
  connection: z.string().optional().describe('name of a connection under `connections`'),
  timeout: duration
    .optional()
    .describe(
      "upper bound for the step, enforced by the step itself (its sessions' statement_timeout, a command's timeout, a wait's deadline); the engine stops a step still running a grace later (a quarter of it, at least 5s)",
    ),
  retries: z.number().int().min(0).max(10).optional().describe('extra attempts after a failed apply'),
  confirm: z.union([z.boolean(), z.string()]).optional().describe('ask before applying this step (true, or the question to ask)'),
  window: z.boolean().optional().describe('part of the downtime window: reports project the window from the first to the last such step'),
  idempotent: z.boolean().optional().describe('safe to run again when a crash left its outcome unknown'),
} as const;

/** `stepSchema` validates one step of any registered kind (built by the registry). */
export function runbookSchema(stepSchema: z.ZodType) {
  return z.strictObject({
    $schema: z.string().optional(),
    version: z.literal(1),
    name: z.string().min(1),
    description: z.string().optional(),
    ticket: z.string().optional().describe('change ticket id, recorded in the journal'),
    notify: z
      .array(z.string().regex(/^https?:\/\/\S+$/, 'expected an http:// or https:// URL'))
      .optional()
      .describe(
        'URLs to POST a small JSON event to (run started, step failed, waiting for confirmation, run finished), with a Slack-compatible text field; a failing hook never fails the run',
      ),
    connections: z.record(identifier, connectionSchema).default({}),
    defaults: defaultsSchema.optional(),
    steps: z.array(stepSchema).min(1),
  });
}

export type Defaults = z.output<typeof defaultsSchema>;
