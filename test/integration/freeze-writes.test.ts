/**
 * freeze-writes against real PostgreSQL 17 and 18, with an application
 * writing from another process: after the step its writes fail with 25006
 * and no row lands; an idle-in-transaction session is gone; the runbook's own
 * role and a replication connection are untouched; rollback restores every
 * setting exactly and the writes come back. The last test freezes and then
 * waits for a logical subscriber: the runbook's "writes are frozen" point.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import pg from 'pg';
import { jsonText, planRunbook, registry, rollbackRun, runRunbook } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { until } from '../helpers/wait.js';

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'writer.js');

/** The writer process and what it printed, one line per attempt. */
function startWriter(url: string): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, [WRITER, url, '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { child, lines };
}

for (const version of VERSIONS) {
  describe(`freeze-writes on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let n = 0;
    const children: ChildProcess[] = [];
    const clients: pg.Client[] = [];

    /** A database with table t and three login roles of its own: app, app2 (with settings of its own), repl. */
    async function setup(): Promise<{ db: string; app: string; app2: string; repl: string }> {
      const i = ++n;
      const db = `f${i}`;
      const [app, app2, repl] = [`app_${i}`, `app2_${i}`, `repl_${i}`];
      await server.query(`CREATE DATABASE ${db}`);
      await server.query(
        `CREATE ROLE ${app} LOGIN; CREATE ROLE ${app2} LOGIN; CREATE ROLE ${repl} LOGIN REPLICATION;
         ALTER ROLE ${app2} SET default_transaction_read_only = off;
         ALTER ROLE ${app2} IN DATABASE ${db} SET default_transaction_read_only = off;`,
      );
      await server.query(
        `CREATE TABLE t (id bigserial PRIMARY KEY, v text);
         GRANT INSERT, SELECT ON t TO ${app}, ${app2}; GRANT USAGE ON SEQUENCE t_id_seq TO ${app}, ${app2};`,
        [],
        db,
      );
      return { db, app, app2, repl };
    }
    const urlAs = (db: string, role: string) => server.urlFor(db).replace('postgres@', `${role}@`);
    const connect = async (db: string, role: string, extra: pg.ClientConfig = {}) => {
      const client = new pg.Client({ connectionString: urlAs(db, role), ...extra });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    const count = async (db: string) => (await server.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], db))[0]?.n ?? -1;
    const settings = async () =>
      server.query(
        `SELECT setrole::regrole::text AS role, COALESCE(d.datname, '(all)') AS db, setconfig
           FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1, 2`,
      );
    const load = (text: string) => loadRunbookText(text, { env: {} });
    const runbookFor = (db: string, step: string) =>
      load(`version: 1
name: freeze
connections:
  source: { kind: postgres, url: "${server.urlFor(db)}" }
steps:
  - id: freeze
    kind: freeze-writes
    connection: source
${step}`);

    before(async () => {
      server = await startPostgres(version, { wal_level: 'logical' });
    });
    afterEach(async () => {
      for (const child of children.splice(0)) child.kill();
      await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
    });
    after(async () => {
      await server.stop();
    });

    it('the plan lists roles, sessions and statements, and changes nothing', async () => {
      const { db, app, repl } = await setup();
      const idle = await connect(db, app, { application_name: 'billing-worker' });
      const before = await settings();
      const { runbook, dir } = runbookFor(db, `    exempt: [${repl}]\n`);
      const planned = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(planned.status, 'planned');
      const plan = planned.steps[0]?.plan;
      const roles = (plan?.tables?.[0]?.rows ?? []).map((r) => `${jsonText(r['role'])}@${jsonText(r['database'])}: ${jsonText(r['current'])}`);
      assert.ok(roles.includes(`${app}@${db}: (not set)`), roles.join('\n'));
      assert.ok(!roles.some((r) => r.startsWith('postgres@')), 'the runbook role (a superuser) is not frozen');
      const sessions = plan?.tables?.[1]?.rows ?? [];
      assert.ok(sessions.some((s) => s['application_name'] === 'billing-worker' && s['client'] === '127.0.0.1/32' && s['role'] === app));
      assert.ok(plan?.actions.some((a) => a.type === 'sql' && a.sql === `ALTER ROLE "${app}" IN DATABASE "${db}" SET default_transaction_read_only = on`));
      assert.match(plan?.notes?.[0] ?? '', new RegExp(`^not frozen: .*postgres \\(the runbook's own role\\).*${repl} \\(replication\\)`));
      assert.deepEqual(await settings(), before, 'a plan writes nothing');
      await idle.query('SELECT 1');
    });

    it('stops writes from another process, ends idle transactions, spares its own role and replication, and rollback restores everything exactly', async () => {
      const { db, app, app2, repl } = await setup();
      const writer = startWriter(urlAs(db, app));
      children.push(writer.child);
      await until('the writer to write', async () => writer.lines.filter((l) => l === 'ok').length >= 5);
      const idle = await connect(db, app2);
      await idle.query('BEGIN');
      await idle.query("INSERT INTO t (v) VALUES ('never committed')");
      const walsender = await connect(db, repl, { replication: 'database' } as pg.ClientConfig);
      const own = await connect(db, 'postgres');
      const original = await settings();

      const { runbook, dir } = runbookFor(db, `    roles: [${app}, ${app2}, ${repl}]\n    exempt: [${repl}]\n`);
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));

      const frozenAt = writer.lines.length;
      await until('the writer to see read-only errors', async () => writer.lines.slice(frozenAt).includes('25006'));
      const rows = await count(db);
      const attempted = writer.lines.length;
      await until('ten more write attempts', async () => writer.lines.length >= attempted + 10);
      assert.equal(await count(db), rows, 'no new row lands once frozen');
      assert.deepEqual([...new Set(writer.lines.slice(frozenAt + 5))], ['25006'], 'every write after the freeze fails read-only');
      await assert.rejects(idle.query('SELECT 1'), 'the idle-in-transaction session was terminated');
      assert.deepEqual(await server.query("SELECT count(*)::int AS n FROM t WHERE v = 'never committed'", [], db), [{ n: 0 }]);
      assert.deepEqual(
        await server.query('SELECT backend_type FROM pg_stat_activity WHERE usename = $1', [repl]),
        [{ backend_type: 'walsender' }],
        'the replication connection is untouched',
      );
      await own.query("INSERT INTO t (v) VALUES ('the runbook role still writes')");
      await walsender.end();

      const back = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
      assert.deepEqual(await settings(), original, 'every setting is as it was, including "not set" and a role setting of its own');
      const restoredAt = writer.lines.length;
      await until('the writer to write again', async () => writer.lines.slice(restoredAt).includes('ok'));
    });

    it('blockConnections sets NOLOGIN, so the writer cannot even reconnect; rollback gives LOGIN back', async () => {
      const { db, app } = await setup();
      const writer = startWriter(urlAs(db, app));
      children.push(writer.child);
      await until('the writer to write', async () => writer.lines.includes('ok'));
      const { runbook, dir } = runbookFor(db, `    roles: [${app}]\n    blockConnections: true\n`);
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const frozenAt = writer.lines.length;
      await until('the writer to be refused at login', async () => writer.lines.slice(frozenAt).includes('28000'));
      assert.deepEqual(await server.query('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [app]), [{ rolcanlogin: false }]);
      const back = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
      assert.deepEqual(await server.query('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [app]), [{ rolcanlogin: true }]);
      const restoredAt = writer.lines.length;
      await until('the writer to write again', async () => writer.lines.slice(restoredAt).includes('ok'));
    });

    it('freeze, then replication-caught-up: every row written before the freeze reached the subscriber', async () => {
      const { db, app } = await setup();
      const subscriber = await startPostgres(version, { wal_level: 'logical' });
      try {
        await subscriber.query(`CREATE DATABASE ${db}`);
        await subscriber.query('CREATE TABLE t (id bigserial PRIMARY KEY, v text)', [], db);
        await server.query('CREATE PUBLICATION p FOR TABLE t', [], db);
        await subscriber.query(`CREATE SUBSCRIPTION s_${db} CONNECTION 'host=127.0.0.1 port=${server.port} dbname=${db} user=postgres' PUBLICATION p`, [], db);
        const writer = startWriter(urlAs(db, app));
        children.push(writer.child);
        await until('rows flowing', async () => writer.lines.filter((l) => l === 'ok').length >= 20);
        const { runbook, dir } = load(`version: 1
name: freeze and wait
connections:
  source: { kind: postgres, url: "${server.urlFor(db)}" }
steps:
  - id: freeze
    kind: freeze-writes
    connection: source
    roles: [${app}]
  - id: caught-up
    kind: replication-caught-up
    connection: source
    slots: [s_${db}]
    timeout: 60s
`);
        const result = await runRunbook(runbook, { registry, stateDir: dir });
        assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
        const onSource = await count(db);
        const onTarget = (await subscriber.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], db))[0]?.n;
        assert.ok(onSource > 20);
        assert.equal(onTarget, onSource, 'the subscriber has every row the source has');
        await subscriber.query(`ALTER SUBSCRIPTION s_${db} DISABLE`, [], db);
        await subscriber.query(`ALTER SUBSCRIPTION s_${db} SET (slot_name = NONE)`, [], db);
        await subscriber.query(`DROP SUBSCRIPTION s_${db}`, [], db);
        await until('slot released', async () => (await server.query<{ a: boolean }>('SELECT active AS a FROM pg_replication_slots')).every((r) => !r.a));
        await server.query(`SELECT pg_drop_replication_slot('s_${db}')`);
      } finally {
        await subscriber.stop();
      }
    });
  });
}
