import { z } from 'zod';
import { buildRunbookSchema } from './load.js';
import type { KindRulesRegistry } from './kind.js';

/** The published JSON Schema of the runbook format, from the same schema that validates it. */
export function runbookJsonSchema(registry: KindRulesRegistry): Record<string, unknown> {
  const schema = z.toJSONSchema(buildRunbookSchema(registry), { io: 'input', unrepresentable: 'any' });
  return { ...schema, title: 'cutover runbook', $id: 'https://cutover.dev/schema/runbook-v1.json' };
}
