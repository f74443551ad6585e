/**
 * How `expect:` values compare with what a query returned. The driver hands
 * back bigint and numeric as strings, so numbers compare numerically and
 * everything else compares as text; null matches only SQL NULL.
 */
import { z } from 'zod';
import type { Queryable } from '../db/session.js';
import type { Json } from './contract.js';

export const expectSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]).describe('the value the first column of the first row must equal');

export type Expected = z.output<typeof expectSchema>;

export function matches(actual: unknown, expected: Expected): boolean {
  if (expected === null) return actual === null || actual === undefined;
  if (actual === null || actual === undefined) return false;
  if (typeof expected === 'number') return Number(actual) === expected;
  if (typeof expected === 'boolean') return actual === expected || textOf(actual) === (expected ? 't' : 'f');
  return textOf(actual) === expected;
}

/** A value read from the server as text: what psql would print for scalars, JSON for arrays and objects. */
function textOf(value: unknown): string {
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** First column of the first row (undefined when there is no row), as JSON. */
export async function firstValue(session: Queryable, sql: string): Promise<Json> {
  const result = await session.query(sql);
  const row = result.rows[0];
  if (row === undefined) return null;
  const value: unknown = Object.values(row)[0];
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Date) return value.toISOString();
  return JSON.parse(JSON.stringify(value)) as Json;
}
