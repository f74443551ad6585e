/** The runbook's connections, resolved: where each server is, which credentials it uses, and which secrets that found. */
import { resolveConnection, type ResolvedConnection } from '../db/connections.js';
import type { Runbook } from './load.js';

export function resolveAll(runbook: Runbook): Map<string, ResolvedConnection> {
  return new Map(Object.entries(runbook.connections).map(([name, spec]) => [name, resolveConnection(name, spec, { baseDir: runbook.dir })]));
}
