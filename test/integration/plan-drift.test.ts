/**
 * A saved plan is the planned payload, not only the statements: for each
 * kind whose payload comes from the database, a plan is saved, the state
 * that kind reads changes, and `run --plan` stops with the difference before
 * writing anything. (sequence-reset: test/integration/review.test.ts;
 * compare, upgrade-precheck, wait, slots-inventory and replication-caught-up plan no
 * payload from the database: apply executes nothing they read.)
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { postgresRunbook, runbookFile } from '../helpers/runbook.js';

const LOGICAL = { wal_level: 'logical', max_replication_slots: '20', max_wal_senders: '20' };
const DRIFT = /the state changed since the plan was saved; nothing was done:/;

describe('run --plan stops where the planned payload drifted (PostgreSQL 18)', () => {
  let server: TestServer;
  let n = 0;
  before(async () => {
    server = await startPostgres(18, LOGICAL);
  });
  after(async () => {
    await server.stop();
  });

  /** A fresh database and a runbook with one step on it; returns how to plan, change and run. */
  async function scenario(step: string) {
    const db = `d${++n}`;
    await server.query(`CREATE DATABASE ${db}`);
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const { file: runbook } = runbookFile(
      postgresRunbook({ name: 'drift', connections: { db: server.urlFor(db) }, steps: `  - id: s\n    connection: db\n${step}` }),
      { dir },
    );
    const saved = path.join(dir, 'plan.json');
    return {
      db,
      async save() {
        const planned = await cutover(['plan', runbook, '--out', saved, '--state-dir', state]);
        assert.equal(planned.code, 0, planned.stdout + planned.stderr);
      },
      async run() {
        return cutover(['run', runbook, '--plan', saved, '--yes', '--state-dir', state]);
      },
    };
  }

  it('freeze-writes: a role setting changed since the plan stops the run, naming the value', async () => {
    const s = await scenario('    kind: freeze-writes\n    roles: [fw_app]\n    probe: false\n');
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
    const s = await scenario('    kind: analyze\n    onlyMissing: true\n');
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
    const s = await scenario('    kind: slot-create\n    type: logical\n    slots: [dc_a, dc_b]\n');
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
    const s = await scenario('    kind: slot-drop\n    type: physical\n    slots: [dd_a]\n');
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
    const s = await scenario('    kind: subscriptions-enable\n');
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
    const s = await scenario('    kind: subscriptions-disable\n');
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
    const s = await scenario('    kind: subscription-detach\n    subscriptions: [sd_a]\n');
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
});
