/**
 * Completion markers: a `transaction` step's effects and its marker row are
 * committed together, so after a crash the database itself says whether the
 * step happened. The table lives in a small `cutover` schema in the target
 * database, created on the first run that needs it.
 */
import type { Queryable } from '../db/session.js';
import type { Json } from './step.js';

export const MARKER_SCHEMA_SQL = [
  'CREATE SCHEMA IF NOT EXISTS cutover',
  `CREATE TABLE IF NOT EXISTS cutover.applied_steps (
     run_id         text        NOT NULL,
     step_id        text        NOT NULL,
     before_state   jsonb,
     applied_at     timestamptz NOT NULL DEFAULT now(),
     rolled_back_at timestamptz,
     PRIMARY KEY (run_id, step_id)
   )`,
];

export async function ensureMarkerTable(session: Queryable): Promise<void> {
  for (const sql of MARKER_SCHEMA_SQL) await session.query(sql);
}

export async function writeMarker(tx: Queryable, runId: string, stepId: string, before: Json): Promise<void> {
  // A step re-applied after a rollback in the same run replaces its marker.
  await tx.query(
    `INSERT INTO cutover.applied_steps (run_id, step_id, before_state) VALUES ($1, $2, $3::jsonb)
     ON CONFLICT (run_id, step_id) DO UPDATE SET before_state = EXCLUDED.before_state, applied_at = now(), rolled_back_at = NULL`,
    [runId, stepId, JSON.stringify(before)],
  );
}

export async function markRolledBack(tx: Queryable, runId: string, stepId: string): Promise<void> {
  await tx.query('UPDATE cutover.applied_steps SET rolled_back_at = now() WHERE run_id = $1 AND step_id = $2', [
    runId,
    stepId,
  ]);
}

export interface Marker {
  readonly before: Json;
  readonly rolledBack: boolean;
}

export async function readMarker(session: Queryable, runId: string, stepId: string): Promise<Marker | undefined> {
  const exists = await session.query<{ present: boolean }>(
    "SELECT to_regclass('cutover.applied_steps') IS NOT NULL AS present",
  );
  if (exists.rows[0]?.present !== true) return undefined;
  const { rows } = await session.query<{ before_state: Json; rolled_back: boolean }>(
    'SELECT before_state, rolled_back_at IS NOT NULL AS rolled_back FROM cutover.applied_steps WHERE run_id = $1 AND step_id = $2',
    [runId, stepId],
  );
  const row = rows[0];
  return row === undefined ? undefined : { before: row.before_state, rolledBack: row.rolled_back };
}
