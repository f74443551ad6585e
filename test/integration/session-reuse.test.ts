/**
 * A step's phases take the sessions earlier phases handed back (same
 * connection, database, access mode and statement timeout) instead of
 * connecting again, on a real PostgreSQL 18, and a session handed back is in
 * a fresh session's state: what one step set (search_path, a session
 * advisory lock, a temporary table, a role) is gone for the next. A read-only
 * phase that takes a session a writing phase handed back finds it read-only
 * at the server and one statement per message, and none of the run's
 * sessions outlives the run. The first step's plan session connects while the run
 * takes its lock, and is closed with the rest when the lock is refused.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import pg from 'pg';
import { z } from 'zod';
import { readJournal } from '../../src/audit/journal.js';
import { LOCK_KEY } from '../../src/engine/lock.js';
import { DatabaseError, defineStep } from '../../src/index.js';
import { loadRunbookText, runbookText } from '../helpers/runbook.js';
import { registry, runRunbook } from '../../src/index.js';
import { stubbornKind } from '../helpers/kinds.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

describe('sessions reused across phases on PostgreSQL 18', () => {
  let server: TestServer;

  before(async () => {
    server = await startPostgres(18);
    await server.query(`CREATE TABLE seen (step text NOT NULL, pid int NOT NULL, search_path text NOT NULL, locks int NOT NULL, temp_tables int NOT NULL, who text NOT NULL);
      CREATE ROLE someone_else NOLOGIN; GRANT INSERT ON seen TO someone_else`);
  });

  after(async () => {
    await server.stop();
  });

  beforeEach(async () => {
    await server.query('TRUNCATE seen');
  });

  /** The backend each step recorded, by step. */
  const pids = async () => new Map((await server.query<{ step: string; pid: number }>('SELECT step, pid FROM seen')).map((r) => [r.step, r.pid] as const));

  const gone = (pid: number) =>
    until(`backend ${pid} is gone`, async () => (await server.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).length === 0, 5_000);

  /** What a step's apply session looks like from inside: its backend, settings and leftovers. */
  const record = (step: string) =>
    `INSERT INTO seen SELECT '${step}', pg_backend_pid(), current_setting('search_path'),
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 4242),
       (SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = 'scratch'), current_user`;

  test('the next step takes the apply session the last one handed back, in a fresh state, and nothing stays after the run', async () => {
    const loaded = loadRunbookText(
      runbookText({
        name: 'session reuse',
        connections: { db: server.url },
        steps: [
          {
            id: 'one',
            kind: 'sql',
            connection: 'db',
            // Everything a step could leave on its session: a setting, a session lock, a temporary table, another role.
            sql: `${record('one')}; SET search_path = nowhere, public; SELECT pg_advisory_lock(4242); CREATE TEMP TABLE scratch (x int); SET ROLE someone_else`,
            rollback: 'SELECT 1',
          },
          { id: 'two', kind: 'sql', connection: 'db', sql: record('two'), rollback: 'SELECT 1' },
          {
            id: 'check',
            kind: 'wait',
            connection: 'db',
            query: "SELECT current_setting('transaction_read_only') = 'on'",
            expect: true,
            interval: '100ms',
            timeout: '5s',
          },
        ],
      }).text,
    );
    try {
      const result = await runRunbook(loaded.runbook, { registry, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error ?? result.steps.find((s) => s.error !== undefined)));
      const rows = await server.query<{ step: string; pid: number; search_path: string; locks: string; temp_tables: string; who: string }>(
        'SELECT * FROM seen ORDER BY step',
      );
      const [one, two] = rows;
      assert.ok(one !== undefined && two !== undefined);
      assert.equal(two.pid, one.pid, 'step two ran on the session step one handed back');
      assert.deepEqual(
        { search_path: two.search_path, locks: Number(two.locks), temp_tables: Number(two.temp_tables), who: two.who },
        { search_path: one.search_path, locks: 0, temp_tables: 0, who: one.who },
        'nothing step one set is left for step two',
      );
      // The wait step is read-only: its session is read-only at the server (checked in its query), though it may be the apply session.
      // Every session of the run is closed by the time it returns (its backends may take a moment to exit).
      await until(
        "the run's sessions are gone",
        async () => (await server.query("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'cutover/%'")).length === 0,
        5_000,
      );
    } finally {
      loaded.dispose();
    }
  });

  test('a session left in a transaction is closed, not handed to the next step', async () => {
    const loaded = loadRunbookText(
      runbookText({
        name: 'session left in a transaction',
        connections: { db: server.url },
        steps: [
          // Outside the engine's transaction, the step opens one of its own and never ends it.
          { id: 'one', kind: 'sql', connection: 'db', transaction: false, sql: [record('one'), 'BEGIN'], rollback: 'SELECT 1' },
          { id: 'two', kind: 'sql', connection: 'db', sql: record('two'), rollback: 'SELECT 1' },
        ],
      }).text,
    );
    try {
      const result = await runRunbook(loaded.runbook, { registry, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error ?? result.steps.find((s) => s.error !== undefined)));
      const seen = await pids();
      const one = seen.get('one');
      assert.ok(one !== undefined && seen.get('two') !== undefined);
      assert.notEqual(seen.get('two'), one, 'step two got a new session');
      await gone(one);
    } finally {
      loaded.dispose();
    }
  });

  test('the session of a step the engine stopped at its ceiling is closed, not handed to the rollback that follows', async () => {
    // Records its session's backend, then ignores its deadline until the engine stops it.
    const stubborn = stubbornKind((session) => session.query(record('two')));
    const extended = { ...registry, stubborn };
    // The same timeout everywhere, so all three phases ask for the same kind of session.
    const loaded = loadRunbookText(
      runbookText({
        name: 'session of a stopped step',
        connections: { db: server.url },
        steps: [
          { id: 'one', kind: 'sql', connection: 'db', timeout: '100ms', sql: record('one'), rollback: record('one-rollback') },
          { id: 'two', kind: 'stubborn', connection: 'db', timeout: '100ms' },
        ],
      }).text,
      { registry: extended },
    );
    try {
      const result = await runRunbook(loaded.runbook, { registry: extended, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'rolled-back', JSON.stringify(result.error));
      assert.equal(result.steps.find((s) => s.id === 'two')?.error?.name, 'StepTimeoutError');
      const seen = await pids();
      const two = seen.get('two');
      assert.ok(two !== undefined && seen.get('one-rollback') !== undefined);
      assert.equal(two, seen.get('one'), 'step two took the session step one handed back');
      assert.notEqual(seen.get('one-rollback'), two, "the rollback did not get the stopped step's session");
      await gone(two);
    } finally {
      loaded.dispose();
    }
  });

  /** `whoami`: its plan reports the backend it planned on and when that backend started. */
  const whoami = defineStep({
    kind: 'whoami',
    summary: 'reports its plan session',
    config: z.object({}),
    connection: { required: true, kinds: ['postgres'] },
    effects: () => 'none',
    reversibility: () => ({ kind: 'nothing-to-undo' }),
    planned: z.object({ pid: z.number(), backendStart: z.string() }),
    before: z.null(),
    async plan(ctx, step) {
      const db = await ctx.session(step.connection);
      const { rows } = await db.query<{ pid: number; backend_start: Date }>('SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()');
      const me = rows[0];
      assert.ok(me !== undefined);
      return { actions: [], planned: { pid: me.pid, backendStart: me.backend_start.toISOString() } };
    },
    async apply() {
      return { before: null };
    },
  });
  const withWhoami = { ...registry, whoami };
  const whoamiRunbook = () =>
    loadRunbookText(runbookText({ name: 'early session', connections: { db: server.url }, steps: [{ id: 'who', kind: 'whoami', connection: 'db' }] }).text, {
      registry: withWhoami,
    });

  test("the first step's plan session connects while the run takes its lock", async () => {
    const loaded = whoamiRunbook();
    try {
      const result = await runRunbook(loaded.runbook, { registry: withWhoami, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
      const planned = z.object({ pid: z.number(), backendStart: z.string() }).parse(result.steps[0]?.plan?.planned);
      const locked = readJournal(result.runDir).find((r) => r.event.type === 'target.locked');
      assert.ok(locked !== undefined);
      // Connected after the lock, the plan's backend would start after target.locked was journaled.
      assert.ok(
        Date.parse(planned.backendStart) < Date.parse(locked.ts),
        `the plan's backend started at ${planned.backendStart}, before the lock was journaled at ${locked.ts}`,
      );
    } finally {
      loaded.dispose();
    }
  });

  test('a run refused at its lock leaves no session behind, the early plan session included', async () => {
    const holder = new pg.Client({ connectionString: server.url });
    await holder.connect();
    const loaded = whoamiRunbook();
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [LOCK_KEY.toString()]);
      const result = await runRunbook(loaded.runbook, { registry: withWhoami, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'refused');
      await until(
        "the refused run's sessions are gone",
        async () => (await server.query('SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1', [`cutover/${result.runId}/%`])).length === 0,
        5_000,
      );
    } finally {
      loaded.dispose();
      await holder.end();
    }
  });

  test('a read-only phase on the backend a writing phase handed back cannot write, nor send several statements', async () => {
    await server.query('CREATE TABLE IF NOT EXISTS untouched (v int)');
    /** `sneaky`: its plan tries both ways of writing and reports its backend and what the server said. */
    const sneaky = defineStep({
      kind: 'sneaky',
      summary: 'a buggy kind that writes while planning',
      config: z.object({}),
      connection: { required: true, kinds: ['postgres'] },
      effects: () => 'none',
      reversibility: () => ({ kind: 'nothing-to-undo' }),
      planned: z.object({ pid: z.number(), refused: z.array(z.string()) }),
      before: z.null(),
      async plan(ctx, step) {
        const db = await ctx.session(step.connection);
        const pid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
        const refused: string[] = [];
        for (const sql of ['INSERT INTO untouched VALUES (1)', 'SET default_transaction_read_only = off; COMMIT; INSERT INTO untouched VALUES (2)']) {
          await db.query(sql).then(
            () => refused.push('written'),
            (error: unknown) => refused.push(error instanceof DatabaseError ? (error.details.sqlstate ?? error.message) : String(error)),
          );
        }
        return { actions: [], planned: { pid, refused } };
      },
      async apply() {
        return { before: null };
      },
    });
    const extended = { ...registry, sneaky };
    const loaded = loadRunbookText(
      runbookText({
        name: 'read-only after a write',
        connections: { db: server.url },
        steps: [
          { id: 'one', kind: 'sql', connection: 'db', sql: record('one'), rollback: 'SELECT 1' },
          { id: 'two', kind: 'sneaky', connection: 'db' },
        ],
      }).text,
      { registry: extended },
    );
    try {
      const result = await runRunbook(loaded.runbook, { registry: extended, stateDir: tempDir('cutover-session-reuse-') });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
      const planned = z.object({ pid: z.number(), refused: z.array(z.string()) }).parse(result.steps[1]?.plan?.planned);
      assert.equal(planned.pid, (await pids()).get('one'), "step two planned on the backend of step one's apply");
      assert.deepEqual(planned.refused, ['25006', '42601']);
      assert.deepEqual(await server.query('SELECT count(*)::int AS n FROM untouched'), [{ n: 0 }]);
    } finally {
      loaded.dispose();
    }
  });
});
