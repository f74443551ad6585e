/**
 * The engine against real PostgreSQL 17 and 18: dry runs write nothing,
 * failures roll back in reverse order, crash-at-commit is reconciled from the
 * marker table, concurrent runs are refused, secrets never reach the journal.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import {
  LockedError,
  defineStep,
  journalFile,
  planRunbook,
  registry,
  resumeRun,
  rollbackRun,
  runRunbook,
  verifyJournal,
  type RunEvent,
  type StepDefinition,
} from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { tempDir } from '../helpers/cli.js';

function runbookText(url: string, steps: string, defaults = ''): string {
  return `version: 1
name: engine test
connections:
  db:
    kind: postgres
    url: ${url}
${defaults}
steps:
${steps}`;
}

for (const version of VERSIONS) {
  describe(`engine on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let db = 0;
    /** A fresh database per test, so tests do not see each other's state. */
    async function freshDb(): Promise<string> {
      const name = `t${++db}`;
      await server.query(`CREATE DATABASE ${name}`);
      return name;
    }
    /** Written to a file because resume and rollback re-read the runbook from disk. */
    const load = (text: string, extra = registry) => loadRunbookText(text, { registry: extra, env: {} }).runbook;

    before(async () => {
      server = await startPostgres(version);
    });
    after(async () => {
      await server.stop();
    });

    it('plan writes nothing: catalog, data and sequences are unchanged and no cutover schema appears', async () => {
      const name = await freshDb();
      await server.query(`CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a'), ('b');`, [], name);
      const snapshot = async () =>
        JSON.stringify(
          await server.query(
            `SELECT (SELECT string_agg(format('%s.%s:%s', n.nspname, c.relname, c.relkind), ',' ORDER BY 1)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) AS relations,
                    (SELECT string_agg(format('%s.%s', attrelid::regclass, attname), ',' ORDER BY 1)
                       FROM pg_attribute WHERE attrelid >= 16384 AND attnum > 0 AND NOT attisdropped) AS columns,
                    (SELECT string_agg(nspname, ',' ORDER BY 1) FROM pg_namespace) AS schemas,
                    (SELECT string_agg(format('%s=%s', id, v), ',' ORDER BY id) FROM t) AS data,
                    (SELECT format('%s/%s', last_value, is_called) FROM t_id_seq) AS seq`,
            [],
            name,
          ),
        );
      const beforeState = await snapshot();
      const runbook = load(
        runbookText(
          server.urlFor(name),
          `  - id: add
    kind: sql
    connection: db
    sql: ["ALTER TABLE t ADD COLUMN w int", "INSERT INTO t (v) VALUES ('c')", "SELECT setval('t_id_seq', 100)"]
    rollback: ALTER TABLE t DROP COLUMN w
  - id: drop
    kind: sql
    connection: db
    sql: DROP TABLE t`,
        ),
      );
      const result = await planRunbook(runbook, { registry, stateDir: tempDir() });
      assert.equal(result.status, 'planned');
      assert.deepEqual(
        result.steps.map((s) => [s.id, s.status, s.plan?.actions.length]),
        [
          ['add', 'planned', 3],
          ['drop', 'planned', 1],
        ],
      );
      assert.equal(await snapshot(), beforeState);
    });

    it('plan sessions are read-only at the server: a step that tries to write in plan gets SQLSTATE 25006', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v int)', [], name);
      const sneaky: StepDefinition = defineStep({
        kind: 'sneaky',
        summary: 'a buggy kind that writes while planning',
        config: z.object({}),
        connection: { required: true, kinds: ['postgres'] },
        effects: () => 'transaction',
        reversibility: () => ({ kind: 'nothing-to-undo' }),
        planned: z.null(),
        before: z.null(),
        async plan(ctx, step) {
          await (await ctx.session(step.connection ?? '')).query('INSERT INTO t VALUES (1)');
          return { actions: [], planned: null };
        },
        async apply() {
          return { before: null };
        },
      });
      const extended = { ...registry, sneaky };
      const runbook = load(runbookText(server.urlFor(name), '  - id: s\n    kind: sneaky\n    connection: db'), extended);
      const result = await planRunbook(runbook, { registry: extended, stateDir: tempDir() });
      assert.equal(result.status, 'failed');
      assert.equal(result.steps[0]?.error?.sqlstate, '25006');
      assert.deepEqual(await server.query('SELECT count(*)::int AS n FROM t', [], name), [{ n: 0 }]);
    });

    it('a failing step rolls back the applied steps in reverse order, from the journal', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE log (n serial, what text)', [], name);
      const step = (id: string) => `  - id: ${id}
    kind: sql
    connection: db
    sql: INSERT INTO log (what) VALUES ('do ${id}')
    rollback: INSERT INTO log (what) VALUES ('undo ${id}')`;
      const runbook = load(
        runbookText(
          server.urlFor(name),
          `${step('a')}\n${step('b')}\n  - id: boom\n    kind: sql\n    connection: db\n    sql: SELECT 1/0\n    rollback: SELECT 1\n${step('never')}`,
        ),
      );
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook, { registry, stateDir: tempDir(), onEvent: (e) => events.push(e) });
      assert.equal(result.status, 'rolled-back');
      assert.equal(result.steps.find((s) => s.id === 'boom')?.error?.sqlstate, '22012');
      const log = await server.query<{ what: string }>('SELECT what FROM log ORDER BY n', [], name);
      assert.deepEqual(
        log.map((r) => r.what),
        ['do a', 'do b', 'undo b', 'undo a'],
      );
      const rollbackStart = events.find((e) => e.type === 'rollback.started');
      assert.deepEqual(rollbackStart?.type === 'rollback.started' && rollbackStart.steps, ['b', 'a']);
      assert.equal(result.steps.find((s) => s.id === 'never')?.status, 'pending');
      assert.ok(verifyJournal(result.runDir).ok);
    });

    it('onFailure: stop leaves applied steps in place; cutover rollback undoes them later', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const runbook = load(
        runbookText(
          server.urlFor(name),
          `  - id: a
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('a')
    rollback: DELETE FROM t WHERE v = 'a'
  - id: fails
    kind: sql
    connection: db
    sql: INSERT INTO missing_table VALUES (1)`,
          'defaults:\n  onFailure: stop',
        ),
      );
      const stateDir = tempDir();
      const result = await runRunbook(runbook, { registry, stateDir });
      assert.equal(result.status, 'failed');
      assert.equal(result.steps[1]?.error?.sqlstate, '42P01');
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), [{ v: 'a' }]);
      const undone = await rollbackRun(result.runId, { registry, stateDir });
      assert.equal(undone.status, 'rolled-back');
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), []);
    });

    it('a verification that failed under onFailure: stop is checked again by resume, never re-applied; the run succeeds only once it passes', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const { runbook, dir } = loadRunbookText(
        runbookText(
          server.urlFor(name),
          `  - id: mark
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('mark')
    rollback: DELETE FROM t WHERE v = 'mark'
    verify:
      query: SELECT count(*) FROM t WHERE v = 'checked'
      expect: 1
  - id: after
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('after')`,
          'defaults:\n  onFailure: stop',
        ),
        { name: 'r.yaml', env: {} },
      );
      const stateDir = path.join(dir, 'state');
      const first = await runRunbook(runbook, { registry, stateDir });
      assert.equal(first.status, 'failed');
      assert.deepEqual(
        first.steps.map((s) => [s.id, s.status, s.applied ?? false]),
        [
          ['mark', 'failed', true],
          ['after', 'pending', false],
        ],
      );
      // Nothing fixed: resume verifies again and stops again; the INSERT is not repeated.
      const again = await resumeRun(first.runId, { registry, stateDir });
      assert.equal(again.status, 'failed');
      assert.equal(again.steps[0]?.error?.message, 'verify query returned "0", expected 1: SELECT count(*) FROM t WHERE v = \'checked\'');
      assert.deepEqual(await server.query('SELECT v FROM t ORDER BY v', [], name), [{ v: 'mark' }]);
      // The cause fixed by hand: resume verifies, passes, and goes on.
      await server.query("INSERT INTO t VALUES ('checked')", [], name);
      const fixed = await resumeRun(first.runId, { registry, stateDir });
      assert.equal(fixed.status, 'succeeded');
      assert.deepEqual(
        fixed.steps.map((s) => [s.id, s.status]),
        [
          ['mark', 'completed'],
          ['after', 'completed'],
        ],
      );
      assert.deepEqual(await server.query('SELECT v FROM t ORDER BY v', [], name), [{ v: 'after' }, { v: 'checked' }, { v: 'mark' }]);
    });

    /** A two-step runbook file whose first step ran alone, so the test can cut its journal as a crash would. */
    async function ranOnce(): Promise<{ name: string; stateDir: string; runId: string; runDir: string; lines: string[] }> {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const { runbook, dir } = loadRunbookText(
        runbookText(
          server.urlFor(name),
          `  - id: once
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('once')
    rollback: DELETE FROM t WHERE v = 'once'
  - id: twice-not
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('second')`,
        ),
        { name: 'r.yaml', env: {} },
      );
      const stateDir = path.join(dir, 'state');
      const first = await runRunbook(runbook, { registry, stateDir, only: ['once'] });
      assert.equal(first.status, 'succeeded');
      const lines = readFileSync(journalFile(first.runDir), 'utf8').split('\n');
      return { name, stateDir, runId: first.runId, runDir: first.runDir, lines };
    }

    it('crash after COMMIT but before the journal line: resume asks pg_xact_status and does not apply again', async () => {
      const { name, stateDir, runId, runDir, lines } = await ranOnce();
      // Cut the journal right after "step.committing" of `once`: exactly what a kill -9
      // between the database COMMIT and the fsync of "step.applied" leaves behind.
      const at = lines.findIndex((l) => l.includes('"type":"step.committing"'));
      assert.ok(at > 0, 'the transaction id is journaled before COMMIT');
      writeFileSync(journalFile(runDir), `${lines.slice(0, at + 1).join('\n')}\n`);
      assert.ok(verifyJournal(runDir).ok, 'a truncated chain is still a valid chain');

      const resumed = await resumeRun(runId, { registry, stateDir });
      assert.equal(resumed.status, 'succeeded');
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), [{ v: 'once' }]);
      const journal = readFileSync(journalFile(runDir), 'utf8');
      assert.match(
        journal,
        /"type":"step.reconciled","stepId":"once","phase":"apply","outcome":"done","reason":"its apply transaction \d+ committed \(pg_xact_status\)"/,
      );
      // The before-state journaled with the transaction id came back, so rollback still works.
      const undone = await rollbackRun(runId, { registry, stateDir });
      assert.equal(undone.status, 'rolled-back');
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), []);
      const schemas = await server.query("SELECT nspname FROM pg_namespace WHERE nspname = 'cutover'", [], name);
      assert.deepEqual(schemas, [], 'no cutover schema in the application database');
    });

    it("a database that holds cutover 0.1's marker table: a run journaled without transaction ids is reconciled from its row", async () => {
      const { name, stateDir, runId, runDir, lines } = await ranOnce();
      await server.query(
        `CREATE SCHEMA cutover;
         CREATE TABLE cutover.applied_steps (run_id text NOT NULL, step_id text NOT NULL, before_state jsonb,
           applied_at timestamptz NOT NULL DEFAULT now(), rolled_back_at timestamptz, PRIMARY KEY (run_id, step_id));
         INSERT INTO cutover.applied_steps (run_id, step_id, before_state) VALUES ('${runId}', 'once', 'null')`,
        [],
        name,
      );
      // A 0.1 journal ends at "step.started" when the crash came after COMMIT.
      const at = lines.findIndex((l) => l.includes('"type":"step.started"'));
      writeFileSync(journalFile(runDir), `${lines.slice(0, at + 1).join('\n')}\n`);
      const resumed = await resumeRun(runId, { registry, stateDir });
      assert.equal(resumed.status, 'succeeded');
      assert.deepEqual(await server.query('SELECT v FROM t ORDER BY v', [], name), [{ v: 'once' }]);
      assert.match(readFileSync(journalFile(runDir), 'utf8'), /"outcome":"done","reason":"its transaction committed \(cutover 0.1 marker row found\)"/);
    });

    it('a second run against the same database is refused at once, naming the holder', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE gate (open boolean); INSERT INTO gate VALUES (false)', [], name);
      const waiting = load(
        runbookText(
          server.urlFor(name),
          `  - id: hold
    kind: wait
    connection: db
    query: SELECT open FROM gate
    expect: true
    interval: 100ms
    timeout: 30s`,
        ),
      );
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const first = runRunbook(waiting, {
        registry,
        stateDir: tempDir(),
        onEvent: (e) => {
          if (e.type === 'target.locked') locked();
        },
      });
      await isLocked;
      // The first run holds the lock until the gate opens, and the gate opens only
      // after the second run returned: a second run that waited would time out the first.
      const second = await runRunbook(waiting, { registry, stateDir: tempDir() });
      assert.equal(second.status, 'refused', 'a run refused at the lock is journaled as refused, never resumable');
      assert.ok(second.error instanceof LockedError);
      assert.match(readFileSync(second.journalFile, 'utf8'), /"type":"run.refused"/);
      assert.match(second.error.holder, /application_name "cutover\/\d{8}T\d{9}Z-[0-9a-f]{4}\/lock"/);
      await server.query('UPDATE gate SET open = true', [], name);
      assert.equal((await first).status, 'succeeded');
    });

    it('sessions carry application_name, lock_timeout and statement_timeout from the runbook', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE seen (app text, lock text, stmt text, ro text)', [], name);
      const runbook = load(
        runbookText(
          server.urlFor(name),
          `  - id: look
    kind: sql
    connection: db
    sql: >-
      INSERT INTO seen SELECT current_setting('application_name'), current_setting('lock_timeout'),
      current_setting('statement_timeout'), current_setting('default_transaction_read_only')`,
          'defaults:\n  lockTimeout: 3s\n  statementTimeout: 2m',
        ),
      );
      const result = await runRunbook(runbook, { registry, stateDir: tempDir() });
      assert.equal(result.status, 'succeeded');
      assert.deepEqual(await server.query('SELECT * FROM seen', [], name), [{ app: `cutover/${result.runId}/look`, lock: '3s', stmt: '2min', ro: 'off' }]);
    });

    it('passwords never reach the journal, even when a statement or error echoes them', async () => {
      const name = await freshDb();
      const secret = 'S3cret-pa55word';
      const url = server.urlFor(name).replace('postgres@', `postgres:${secret}@`);
      const runbook = load(
        runbookText(
          url,
          `  - id: echo
    kind: sql
    connection: db
    sql: SELECT '${secret}'::int`,
        ),
      );
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook, { registry, stateDir: tempDir(), onEvent: (e) => events.push(e) });
      assert.equal(result.status, 'rolled-back');
      const journal = readFileSync(result.journalFile, 'utf8');
      assert.ok(!journal.includes(secret), 'journal holds the password');
      assert.ok(!JSON.stringify(events).includes(secret), 'an event handed to subscribers holds the password');
      assert.match(journal, /\[redacted\]/);
      assert.match(journal, /"target":"postgres@127\.0\.0\.1:\d+\/t\d+"/);
    });
  });
}
