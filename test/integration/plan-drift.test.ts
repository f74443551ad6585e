/**
 * A saved plan is the planned payload, not only the statements: for each
 * kind, a plan is saved, what that kind's plan reads changes, and `run
 * --plan` stops with the difference before writing anything.
 *
 * What a kind's plan reads:
 * - the database (freeze-writes, analyze, the slot and subscription kinds):
 *   the state changes under a saved plan;
 * - only the runbook (sql, shell, wait, confirm): the saved plan names the
 *   runbook's sha256, but a `${NAME}` variable comes from the environment
 *   of the run, so the payload can change while the file does not;
 * - read-only checks (compare, upgrade-precheck, plan-check, slots-inventory,
 *   replication-caught-up): apply writes nothing, and what they judge is
 *   read when the step runs. Their promise is that a run from a saved plan
 *   judges the database as it is then, not as it was when the plan was
 *   saved: a finding that appeared since stops the run.
 * sequence-reset: test/integration/review.test.ts; pgbouncer:
 * test/integration/pgbouncer.test.ts; patroni: test/integration/patroni.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { runbookFile, runbookText } from '../helpers/runbook.js';

const LOGICAL = { wal_level: 'logical', max_replication_slots: '20', max_wal_senders: '20' };
const DRIFT = /this step planned now differs from the saved plan \(the state moved, or the plan file was edited\); nothing was done:/;

describe('run --plan stops where the planned payload drifted (PostgreSQL 18)', () => {
  let server: TestServer;
  let n = 0;
  before(async () => {
    server = await startPostgres(18, LOGICAL);
  });
  after(async () => {
    await server.stop();
  });

  /**
   * A fresh database and a runbook with one step on it (on connection `db`
   * unless `connected` is false); returns how to plan, change and run, each
   * with the environment given (the runbook's `${NAME}` variables).
   */
  async function scenario(
    step: { readonly kind: string; readonly [key: string]: unknown },
    options: { connected?: boolean; connections?: Record<string, string> } = {},
  ) {
    const db = `d${++n}`;
    await server.query(`CREATE DATABASE ${db}`);
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const { text } = runbookText({
      name: 'drift',
      connections: { db: server.urlFor(db), ...options.connections },
      steps: [{ id: 's', ...(options.connected === false ? {} : { connection: 'db' }), ...step }],
    });
    const { file: runbook } = runbookFile(text, { dir });
    const saved = path.join(dir, 'plan.json');
    return {
      db,
      dir,
      async save(env: NodeJS.ProcessEnv = {}) {
        const planned = await cutover(['plan', runbook, '--out', saved, '--state-dir', state], env);
        assert.equal(planned.code, 0, planned.stdout + planned.stderr);
      },
      async run(env: NodeJS.ProcessEnv = {}) {
        return cutover(['run', runbook, '--plan', saved, '--yes', '--state-dir', state], env);
      },
    };
  }

  it('freeze-writes: a role setting changed since the plan stops the run, naming the value', async () => {
    const s = await scenario({ kind: 'freeze-writes', roles: ['fw_app'], probe: false });
    await server.query('CREATE ROLE fw_app LOGIN');
    await s.save();
    await server.query(`ALTER ROLE fw_app IN DATABASE ${s.db} SET default_transaction_read_only = off`);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.settings\[0\]\.value: null -> "off"/);
    assert.deepEqual(
      await server.query(
        `SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'fw_app'::regrole AND setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)`,
        [s.db],
      ),
      [{ setconfig: ['default_transaction_read_only=off'] }],
      'the setting is as the other session left it: nothing was frozen',
    );
  });

  it('analyze: a relation that lost or gained statistics since the plan stops the run, naming the relation', async () => {
    const s = await scenario({ kind: 'analyze', onlyMissing: true });
    await server.query('CREATE TABLE t1 AS SELECT g AS v FROM generate_series(1, 100) g', [], s.db);
    await s.save();
    await server.query('ANALYZE t1; CREATE TABLE t2 AS SELECT g AS v FROM generate_series(1, 100) g', [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.jobs\[0\]\.relation: "public\.t1" -> "public\.t2"/);
    assert.deepEqual(await server.query("SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 't2'", [], s.db), [{ n: 0 }], 't2 was not analyzed');
  });

  it('slot-create: a slot created by someone else since the plan stops the run; none is created', async () => {
    const s = await scenario({ kind: 'slot-create', type: 'logical', slots: ['dc_a', 'dc_b'] });
    await s.save();
    await server.query("SELECT pg_create_logical_replication_slot('dc_b', 'pgoutput')", [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.slots\[1\]\.name: "dc_b" -> \(none\)/);
    assert.deepEqual(await server.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'dc_%' ORDER BY 1"), [{ slot_name: 'dc_b' }]);
    await server.query("SELECT pg_drop_replication_slot('dc_b')");
  });

  it('slot-drop: a slot recreated with other options since the plan stops the run; it is not dropped', async () => {
    const s = await scenario({ kind: 'slot-drop', type: 'physical', slots: ['dd_a'] });
    await server.query("SELECT pg_create_physical_replication_slot('dd_a', false)");
    await s.save();
    await server.query("SELECT pg_drop_replication_slot('dd_a'); SELECT pg_create_physical_replication_slot('dd_a', true)");
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.slots\[0\]\.reserveWal: false -> true/);
    assert.deepEqual(await server.query("SELECT slot_name, restart_lsn IS NOT NULL AS reserved FROM pg_replication_slots WHERE slot_name = 'dd_a'"), [
      { slot_name: 'dd_a', reserved: true },
    ]);
    await server.query("SELECT pg_drop_replication_slot('dd_a')");
  });

  it('subscriptions-enable: a subscription added since the plan stops the run; none is enabled', async () => {
    const s = await scenario({ kind: 'subscriptions-enable' });
    // Subscriptions that never connected: nothing on the other side is needed to plan them.
    const sub = (name: string) => `CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 dbname=none' PUBLICATION p WITH (connect = false)`;
    await server.query(sub('se_a'), [], s.db);
    await s.save();
    await server.query(sub('se_b'), [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.subscriptions\[1\]\.name: \(none\) -> "se_b"/);
    assert.deepEqual(
      await server.query(
        'SELECT subname, subenabled FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1',
        [],
        s.db,
      ),
      [
        { subname: 'se_a', subenabled: false },
        { subname: 'se_b', subenabled: false },
      ],
    );
  });

  it('subscriptions-disable: a subscription disabled by someone else since the plan stops the run; none is disabled', async () => {
    const s = await scenario({ kind: 'subscriptions-disable' });
    // Subscriptions that never connected, enabled: their workers retry a connection that fails, which is all this needs.
    for (const name of ['sx_a', 'sx_b']) {
      await server.query(`CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION p WITH (connect = false)`, [], s.db);
      await server.query(`ALTER SUBSCRIPTION ${name} ENABLE`, [], s.db);
    }
    await s.save();
    await server.query('ALTER SUBSCRIPTION sx_a DISABLE', [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.subscriptions\[0\]\.name: "sx_a" -> "sx_b"/);
    assert.deepEqual(
      await server.query(
        'SELECT subname, subenabled FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1',
        [],
        s.db,
      ),
      [
        { subname: 'sx_a', subenabled: false },
        { subname: 'sx_b', subenabled: true },
      ],
    );
    for (const name of ['sx_a', 'sx_b']) {
      await server.query(`ALTER SUBSCRIPTION ${name} DISABLE`, [], s.db);
      await server.query(`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`, [], s.db);
      await server.query(`DROP SUBSCRIPTION ${name}`, [], s.db);
    }
  });

  it('subscription-detach: a subscription whose slot changed since the plan stops the run; it is not dropped', async () => {
    const s = await scenario({ kind: 'subscription-detach', subscriptions: ['sd_a'] });
    await server.query(
      "CREATE SUBSCRIPTION sd_a CONNECTION 'host=127.0.0.1 dbname=none' PUBLICATION p WITH (connect = false, slot_name = 'sd_slot')",
      [],
      s.db,
    );
    await s.save();
    await server.query('ALTER SUBSCRIPTION sd_a SET (slot_name = NONE)', [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.subscriptions\[0\]\.slot: "sd_slot" -> null/);
    assert.deepEqual(
      await server.query('SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())', [], s.db),
      [{ subname: 'sd_a' }],
    );
  });

  it('sql: a ${NAME} variable whose value changed since the plan stops the run, naming the statement; nothing runs', async () => {
    const s = await scenario({ kind: 'sql', sql: "INSERT INTO t VALUES ('${TAG}')" });
    await server.query('CREATE TABLE t (v text)', [], s.db);
    await s.save({ TAG: 'reviewed' });
    const result = await s.run({ TAG: 'other' });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.statements\[0\]: "INSERT INTO t VALUES \('reviewed'\)" -> "INSERT INTO t VALUES \('other'\)"/);
    assert.deepEqual(await server.query('SELECT count(*)::int AS n FROM t', [], s.db), [{ n: 0 }], 'no statement ran');
  });

  it('shell: an argument from a variable that changed since the plan stops the run; the command does not run', async () => {
    const s = await scenario({ kind: 'shell', command: ['touch', '${OUT}'] }, { connected: false });
    const reviewed = path.join(s.dir, 'reviewed');
    const other = path.join(s.dir, 'other');
    await s.save({ OUT: reviewed });
    const result = await s.run({ OUT: other });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.argv\[1\]: ".*\/reviewed" -> ".*\/other"/);
    assert.equal(existsSync(reviewed) || existsSync(other), false, 'touch did not run');
  });

  it('wait: a query from a variable that changed since the plan stops the run, naming the query', async () => {
    const s = await scenario({ kind: 'wait', query: 'SELECT count(*) >= ${MIN} FROM t', expect: true, timeout: '5s' });
    await server.query('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', [], s.db);
    await s.save({ MIN: '1' });
    const result = await s.run({ MIN: '2' });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.query: "SELECT count\(\*\) >= 1 FROM t" -> "SELECT count\(\*\) >= 2 FROM t"/);
  });

  it('confirm: a question from a variable that changed since the plan stops the run before it is asked', async () => {
    const s = await scenario({ kind: 'confirm', message: 'Stop ${APP} now?' }, { connected: false });
    await s.save({ APP: 'shop' });
    const result = await s.run({ APP: 'billing' });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, DRIFT);
    assert.match(result.stderr, /planned\.question: "Stop shop now\?" -> "Stop billing now\?"/);
  });

  it('upgrade-precheck: a finding that appeared since the plan stops the run: the check judges the cluster as it is at run time', async () => {
    const s = await scenario({ kind: 'upgrade-precheck', targetVersion: 18 });
    await s.save();
    // A table column of a reg* type other than regclass/regtype/... : pg_upgrade cannot carry its OIDs over.
    await server.query('CREATE TABLE regs (p regproc)', [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, DRIFT, 'nothing of its payload changed: it plans nothing from the database');
    assert.match(result.stderr, /reg-types in d\d+: .*\(public\.regs\.p\)/);
    await server.query('DROP TABLE regs', [], s.db);
  });

  it('compare: a row changed since the plan fails the run: the data are compared when the step runs', async () => {
    const target = `d${n}t`;
    await server.query(`CREATE DATABASE ${target}`);
    const s = await scenario(
      { kind: 'compare', source: 'db', target: 'target', mode: 'checksum' },
      {
        connected: false,
        connections: { target: server.urlFor(target) },
      },
    );
    for (const db of [s.db, target])
      await server.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g', [], db);
    await s.save();
    await server.query("UPDATE t SET v = 'changed' WHERE id = 42", [], target);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, DRIFT);
    assert.match(result.stderr, /public\.t/);
  });

  it('plan-check: an index dropped on the target since the plan stops the run with the regression', async () => {
    const target = `d${n}t`;
    await server.query(`CREATE DATABASE ${target}`);
    const s = await scenario(
      { kind: 'plan-check', source: 'db', target: 'target', queries: { file: 'queries.sql' } },
      {
        connected: false,
        connections: { target: server.urlFor(target) },
      },
    );
    writeFileSync(path.join(s.dir, 'queries.sql'), '-- name: by id\nSELECT v FROM t WHERE id = $1;\n');
    for (const db of [s.db, target]) {
      await server.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 50000) g; ANALYZE t', [], db);
    }
    await s.save();
    await server.query('ALTER TABLE t DROP CONSTRAINT t_pkey; ANALYZE t', [], target);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, DRIFT);
    assert.match(result.stderr, /regress/);
  });

  it('slots-inventory: a run from a saved plan lists the slots as they are at run time', async () => {
    const s = await scenario({ kind: 'slots-inventory', slots: ['si_*'] });
    await server.query("SELECT pg_create_physical_replication_slot('si_a')");
    await s.save();
    await server.query("SELECT pg_create_physical_replication_slot('si_b')");
    const result = await s.run();
    assert.equal(result.code, 0, result.stderr);
    const journal = /^journal: (.+)$/m.exec(result.stdout)?.[1];
    assert.ok(journal !== undefined, result.stdout);
    assert.match(readFileSync(journal, 'utf8'), /"slot":"si_b"/, 'the journal lists the slot created after the plan was saved');
    await server.query("SELECT pg_drop_replication_slot('si_a'); SELECT pg_drop_replication_slot('si_b')");
  });

  it('replication-caught-up: a run from a saved plan waits for the slots as they are at run time, not as planned', async () => {
    const s = await scenario({ kind: 'replication-caught-up', slots: ['rc_*'], interval: '100ms', timeout: '2s' });
    await server.query("SELECT pg_create_logical_replication_slot('rc_a', 'pgoutput')", [], s.db);
    await s.save();
    await server.query("SELECT pg_create_logical_replication_slot('rc_b', 'pgoutput')", [], s.db);
    await server.query('CREATE TABLE moved (v int); INSERT INTO moved VALUES (1)', [], s.db);
    const result = await s.run();
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, DRIFT, 'its payload is the patterns, not the slots they matched');
    assert.match(result.stderr, /rc_b/, 'the slot created after the plan is waited for');
    await server.query("SELECT pg_drop_replication_slot('rc_a'); SELECT pg_drop_replication_slot('rc_b')", [], s.db);
  });
});
