/**
 * The run lock against real PostgreSQL: keyed by the physical database, named
 * by run id, operator, host and CLI pid when it refuses, watched while held,
 * and a run that loses it stops before its next write.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LockedError, LockLostError, registry, resumeRun, runRunbook, type RunEvent } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { GATED_STEPS, GATED_TABLES, loadRunbookText } from '../helpers/runbook.js';
import { tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

for (const version of VERSIONS) {
  describe(`run lock on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let n = 0;
    async function freshDb(): Promise<string> {
      const name = `l${++n}`;
      await server.query(`CREATE DATABASE ${name}`);
      return name;
    }
    /** A short-lived client: the helper's cached ones would be ended by idle_session_timeout. */
    async function once<Row extends pg.QueryResultRow>(database: string, sql: string, params: unknown[] = []): Promise<Row[]> {
      const client = new pg.Client({ connectionString: server.urlFor(database) });
      client.on('error', () => {});
      await client.connect();
      try {
        return (await client.query<Row>(sql, params)).rows;
      } finally {
        await client.end().catch(() => {});
      }
    }
    const load = (name: string, steps: string, connections = `  db:\n    kind: postgres\n    url: ${server.urlFor(name)}\n`) => {
      return loadRunbookText(`version: 1\nname: lock test\nconnections:\n${connections}steps:\n${steps}`, { env: {} }).runbook;
    };
    const setup = (name: string) => once(name, GATED_TABLES);
    const effects = async (name: string) => (await once<{ step: string }>(name, 'SELECT step FROM effects ORDER BY step')).map((r) => r.step);

    before(async () => {
      server = await startPostgres(version);
    });
    after(async () => {
      await server.stop();
    });

    it('two connection names for one database share one lock: the run does not lock itself out', async () => {
      const name = await freshDb();
      await once(name, 'CREATE TABLE t (v text)');
      const url = server.urlFor(name);
      const runbook = load(
        name,
        `  - id: via-a
    kind: sql
    connection: a
    sql: INSERT INTO t VALUES ('a')
  - id: via-b
    kind: sql
    connection: b
    sql: INSERT INTO t VALUES ('b')
`,
        `  a: { kind: postgres, url: "${url}" }\n  b: { kind: postgres, url: "${url}?application_name=alias" }\n`,
      );
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook, { registry, stateDir: tempDir(), onEvent: (e) => events.push(e) });
      assert.equal(result.status, 'succeeded', String(result.error));
      const locked = events.filter((e) => e.type === 'target.locked');
      assert.deepEqual(
        locked.map((e) => e.type === 'target.locked' && [e.connection, e.sharedWith ?? null]),
        [
          ['a', null],
          ['b', 'a'],
        ],
      );
      assert.match(JSON.stringify(locked[0]), /system \d+, database oid \d+/);
      assert.deepEqual(await once(name, 'SELECT v FROM t ORDER BY v'), [{ v: 'a' }, { v: 'b' }]);
    });

    it('a role that may not read the control file: the lock is keyed by the server address, and two names still share it', async () => {
      const name = await freshDb();
      const role = `plain_${name}`;
      await once(
        name,
        `CREATE ROLE ${role} LOGIN; CREATE TABLE t (v text); GRANT INSERT ON t TO ${role};
         REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC`,
      );
      const url = `postgres://${role}@127.0.0.1:${server.port}/${name}`;
      const runbook = load(
        name,
        `  - id: via-a\n    kind: sql\n    connection: a\n    sql: INSERT INTO t VALUES ('a')\n  - id: via-b\n    kind: sql\n    connection: b\n    sql: INSERT INTO t VALUES ('b')\n`,
        `  a: { kind: postgres, url: "${url}" }\n  b: { kind: postgres, url: "${url}?application_name=alias" }\n`,
      );
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook, { registry, stateDir: tempDir(), onEvent: (e) => events.push(e) });
      assert.equal(result.status, 'succeeded', String(result.error));
      const locked = events.flatMap((e) => (e.type === 'target.locked' ? [[e.connection, e.database, e.sharedWith ?? null]] : []));
      const [oid] = await once<{ oid: string }>(name, 'SELECT oid::text FROM pg_database WHERE datname = current_database()');
      const physical = `server 127.0.0.1:${server.port}, database oid ${oid?.oid}`;
      assert.deepEqual(locked, [
        ['a', physical, null],
        ['b', physical, 'a'],
      ]);
    });

    it('the refusal names the holding run id, operator, host and CLI pid', async () => {
      const name = await freshDb();
      await setup(name);
      const runbook = load(name, GATED_STEPS);
      let started!: (runId: string) => void;
      const holding = new Promise<string>((resolve) => (started = resolve));
      const first = runRunbook(runbook, {
        registry,
        stateDir: tempDir(),
        operator: 'alice',
        onEvent: (e) => {
          if (e.type === 'step.started' && e.stepId === 's2') started('');
        },
      });
      await holding;
      const runA = (
        await once<{ app: string }>(name, "SELECT application_name AS app FROM pg_stat_activity WHERE application_name LIKE 'cutover/%/lock'")
      )[0]?.app.split('/')[1];
      const second = await runRunbook(runbook, { registry, stateDir: tempDir(), operator: 'bob' });
      assert.equal(second.status, 'refused');
      assert.ok(second.error instanceof LockedError);
      assert.equal(second.error.holderRunId, runA);
      assert.match(second.error.message, new RegExp(`run ${runA}, operator alice, host ${os.hostname()}, CLI pid ${process.pid}; server backend pid \\d+`));
      await once(name, 'UPDATE go SET ok = true');
      assert.equal((await first).status, 'succeeded');
    });

    it('targets are locked at once: the second held elsewhere refuses the run before any step, and the first is let go', async () => {
      const [one, two] = [await freshDb(), await freshDb()];
      await once(one, 'CREATE TABLE t (v text)');
      await once(two, 'CREATE TABLE t (v text)');
      const holder = new pg.Client({ connectionString: server.urlFor(two), application_name: 'someone else' });
      await holder.connect();
      try {
        await holder.query("SELECT pg_advisory_lock(x'637574'::bigint << 32 | x'6f766572'::bigint)");
        const runbook = load(
          one,
          `  - id: in-one\n    kind: sql\n    connection: a\n    sql: INSERT INTO t VALUES ('a')\n  - id: in-two\n    kind: sql\n    connection: b\n    sql: INSERT INTO t VALUES ('b')\n`,
          `  a: { kind: postgres, url: "${server.urlFor(one)}" }\n  b: { kind: postgres, url: "${server.urlFor(two)}" }\n`,
        );
        const result = await runRunbook(runbook, { registry, stateDir: tempDir() });
        assert.equal(result.status, 'refused');
        assert.ok(result.error instanceof LockedError);
        assert.match(result.error.message, /"b".*application_name "someone else"/s);
        assert.deepEqual(await once(one, 'SELECT v FROM t'), []);
        const left = await once<{ n: string }>(one, "SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name LIKE 'cutover/%'");
        assert.equal(left[0]?.n, '0', 'no session of the refused run stays on the first database');
      } finally {
        await holder.end();
      }
    });

    it('pg_terminate_backend on the lock session mid-step: the run stops before its next write, journaled, and resume finishes it', async () => {
      const name = await freshDb();
      await setup(name);
      const runbook = load(name, GATED_STEPS);
      const stateDir = tempDir();
      let inS2!: () => void;
      const reachedS2 = new Promise<void>((resolve) => (inS2 = resolve));
      const running = runRunbook(runbook, {
        registry,
        stateDir,
        onEvent: (e) => {
          if (e.type === 'step.started' && e.stepId === 's2') inS2();
        },
      });
      await reachedS2;
      const killed = await once<{ ok: boolean }>(
        name,
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'cutover/%/lock'",
      );
      assert.deepEqual(killed, [{ ok: true }]);
      // Were the loss unnoticed, the wait would now pass and s3 would write.
      await once(name, 'UPDATE go SET ok = true');
      const result = await running;
      assert.equal(result.status, 'stopped');
      assert.ok(result.error instanceof LockLostError, String(result.error));
      assert.match(result.error.message, /lost the cutover lock on connection "db": .*stopped before its next write/);
      assert.deepEqual(await effects(name), ['s1'], 's3 did not run');
      const journal = readFileSync(result.journalFile, 'utf8');
      assert.match(journal, /"type":"lock.lost","connection":"db"/);
      assert.match(journal, /"type":"run.stopped"/);

      const resumed = await resumeRun(result.runId, { registry, stateDir });
      assert.equal(resumed.status, 'succeeded', String(resumed.error));
      assert.deepEqual(await effects(name), ['s1', 's3']);
    });

    it('idle_session_timeout set on the database does not end the lock session; the run keeps its lock through a long wait', async () => {
      const name = await freshDb();
      await setup(name);
      await server.query(`ALTER DATABASE ${name} SET idle_session_timeout = '300ms'`);
      const runbook = load(name, GATED_STEPS);
      const events: RunEvent[] = [];
      let inS2!: () => void;
      const reachedS2 = new Promise<void>((resolve) => (inS2 = resolve));
      const running = runRunbook(runbook, {
        registry,
        stateDir: tempDir(),
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'step.started' && e.stepId === 's2') inS2();
        },
      });
      await reachedS2;
      // The lock session has now been idle well past the database's timeout.
      await until('the lock session to sit idle past idle_session_timeout', async () => {
        const rows = await once<{ idle: boolean }>(
          name,
          "SELECT state = 'idle' AND state_change < now() - interval '1 s' AS idle FROM pg_stat_activity WHERE application_name LIKE 'cutover/%/lock'",
        );
        return rows[0]?.idle === true;
      });
      const second = await runRunbook(runbook, { registry, stateDir: tempDir() });
      assert.ok(second.error instanceof LockedError, 'the lock is still held');
      await once(name, 'UPDATE go SET ok = true');
      const result = await running;
      assert.equal(result.status, 'succeeded', String(result.error));
      assert.ok(!events.some((e) => e.type === 'lock.lost'));
      assert.deepEqual(await effects(name), ['s1', 's3']);
    });

    // Last in this file: the restart also ends the helper's cached sessions.
    it('a server restart (pg_ctl restart -m fast) mid-step: the lock is lost, the run stops before its next write, resume finishes it', async () => {
      const name = await freshDb();
      await setup(name);
      const runbook = load(name, GATED_STEPS);
      const stateDir = tempDir();
      let inS2!: () => void;
      const reachedS2 = new Promise<void>((resolve) => (inS2 = resolve));
      const running = runRunbook(runbook, {
        registry,
        stateDir,
        onEvent: (e) => {
          if (e.type === 'step.started' && e.stepId === 's2') inS2();
        },
      });
      await reachedS2;
      // -l and no pipes: a restarted postmaster would otherwise hold pg_ctl's stdout open forever.
      const pgCtl = [
        path.join(server.binDir, 'pg_ctl'),
        '-D',
        server.dataDir,
        '-l',
        path.join(path.dirname(server.dataDir), 'log'),
        '-m',
        'fast',
        '-w',
        'restart',
      ];
      const options = { stdio: 'ignore' as const };
      const restart =
        process.getuid?.() === 0 ? spawnSync('runuser', ['-u', 'postgres', '--', ...pgCtl], options) : spawnSync(pgCtl[0] ?? '', pgCtl.slice(1), options);
      assert.equal(restart.status, 0, 'pg_ctl restart');
      await once(name, 'UPDATE go SET ok = true');
      const result = await running;
      assert.equal(result.status, 'stopped', String(result.error));
      assert.ok(result.error instanceof LockLostError, String(result.error));
      assert.deepEqual(await effects(name), ['s1'], 's3 did not run');
      const resumed = await resumeRun(result.runId, { registry, stateDir });
      assert.equal(resumed.status, 'succeeded', String(resumed.error));
      assert.deepEqual(await effects(name), ['s1', 's3']);
    });
  });
}
