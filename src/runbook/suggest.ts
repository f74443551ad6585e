/**
 * "did you mean": a near-miss name among the known ones, for runbooks and
 * inventories alike.
 */
import { z } from 'zod';
import type { PathKey } from './positions.js';

/** "did you mean" for near-miss keys: typos are the usual cause of unknown keys. */
export function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The keys an object of `schema` may have at `path` (array elements, records and optionals looked through); none where it is not an object. */
export function objectKeysAt(schema: z.ZodType, path: readonly PathKey[]): string[] {
  let at: z.ZodType | undefined = schema;
  for (const key of [...path, undefined]) {
    while (at instanceof z.ZodOptional || at instanceof z.ZodNullable || at instanceof z.ZodDefault) at = at.unwrap() as z.ZodType;
    if (key === undefined) break;
    if (at instanceof z.ZodObject) at = (at.shape as Record<string, z.ZodType | undefined>)[String(key)];
    else if (at instanceof z.ZodArray) at = at.element as z.ZodType;
    else if (at instanceof z.ZodRecord) at = at.valueType as z.ZodType;
    else return [];
  }
  return at instanceof z.ZodObject ? Object.keys(at.shape) : [];
}
