/**
 * Lifecycle tables (in the manner of pgroll's tests): a case is one step on a
 * fresh database, and assertions on the real database after each phase. The
 * phases are driven through the CLI as a user drives them, and the boundary
 * between apply and verify is a real one: the run is killed (failpoint
 * `after:step.applied@s`) right after the journal says the step applied, and
 * `cutover resume` verifies. So every case also proves that a crash there
 * neither repeats the apply nor skips the verify.
 *
 *   cutover plan            -> afterPlan      (a dry run: nothing changed)
 *   cutover run, killed     -> afterApply     (applied, not yet verified)
 *   cutover resume          -> afterVerify    (defaults to afterApply's checks)
 *   cutover rollback        -> afterRollback  (undone, nothing to undo, or irreversible)
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import type pg from 'pg';
import type { TestServer } from '../../scripts/embedded-postgres.js';
import { cutover, tempDir, type CliResult } from './cli.js';
import { runbookFile, runbookText } from './runbook.js';

/** What a case's checks get: its database, its runbook's directory. */
export interface CaseScope {
  /** A statement on the case's database (`on`: another database of the server). */
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], on?: string): Promise<Row[]>;
  /** The case's database. */
  readonly db: string;
  /** The runbook's directory: files the step reads or writes. */
  readonly dir: string;
}

type Check = (scope: CaseScope) => Promise<void>;

export interface LifecycleCase {
  readonly name: string;
  /** The step's keys; its id is `s` and its connection `db` (the case's database) unless `connected` is false. */
  readonly step: { readonly kind: string; readonly [key: string]: unknown };
  readonly connected?: boolean;
  /** More databases on the server, each a connection of the same name. */
  readonly databases?: readonly string[];
  readonly setup?: Check;
  readonly afterPlan: Check;
  readonly afterApply: Check;
  readonly afterVerify?: Check;
  /**
   * What `cutover rollback` says of the step: `undone` (it ran its undo),
   * `nothing-to-undo` (skipped: the step changed nothing to undo), or
   * `irreversible` (skipped, and the run needs a person: exit 3).
   */
  readonly rollback: 'undone' | 'nothing-to-undo' | 'irreversible';
  readonly afterRollback: Check;
}

let serial = 0;

const shown = (r: CliResult) => `exit ${String(r.code)}\n${r.stdout}${r.stderr}`;

export async function runLifecycle(server: TestServer, c: LifecycleCase): Promise<void> {
  const n = ++serial;
  const db = `lc${n}`;
  const extra = Object.fromEntries((c.databases ?? []).map((name) => [name, `lc${n}_${name}`]));
  for (const name of [db, ...Object.values(extra)]) await server.query(`CREATE DATABASE ${name}`);
  const dir = tempDir('cutover-lifecycle-');
  const state = path.join(dir, 'state');
  const scope: CaseScope = {
    db,
    dir,
    query: (sql, params, on) => server.query(sql, params, on === undefined ? db : (extra[on] ?? on)),
  };
  const { text } = runbookText({
    name: `lifecycle ${c.step.kind}`,
    connections: {
      db: server.urlFor(db),
      ...Object.fromEntries(Object.entries(extra).map(([name, database]) => [name, server.urlFor(database)])),
    },
    steps: [{ id: 's', ...(c.connected === false ? {} : { connection: 'db' }), ...c.step }],
  });
  const { file } = runbookFile(text, { dir });
  await c.setup?.(scope);

  const planned = await cutover(['plan', file, '--state-dir', state]);
  assert.equal(planned.code, 0, `plan: ${shown(planned)}`);
  await c.afterPlan(scope);

  const crashed = await cutover(['run', file, '--yes', '--state-dir', state], { CUTOVER_FAILPOINT: 'after:step.applied@s' });
  assert.equal(crashed.code, null, `run, killed after apply: ${shown(crashed)}`);
  await c.afterApply(scope);

  const resumed = await cutover(['resume', '--last', '--yes', '--state-dir', state]);
  assert.equal(resumed.code, 0, `resume: ${shown(resumed)}`);
  await (c.afterVerify ?? c.afterApply)(scope);

  const back = await cutover(['rollback', '--last', '--yes', '--state-dir', state]);
  const said = `${back.stdout}${back.stderr}`;
  assert.equal(back.code, c.rollback === 'irreversible' ? 3 : 0, `rollback: ${shown(back)}`);
  if (c.rollback === 'undone') assert.doesNotMatch(said, /undo s \[SKIPPED/, `rollback: ${shown(back)}`);
  if (c.rollback === 'nothing-to-undo') assert.match(said, /undo s \[SKIPPED: nothing to undo\]/, `rollback: ${shown(back)}`);
  if (c.rollback === 'irreversible') assert.match(said, /undo s \[SKIPPED: IRREVERSIBLE/, `rollback: ${shown(back)}`);
  await c.afterRollback(scope);

  const audit = await cutover(['audit', 'verify', '--last', '--state-dir', state]);
  assert.equal(audit.code, 0, `audit verify: ${shown(audit)}`);
}
