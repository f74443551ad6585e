/**
 * One table per step kind (test/helpers/lifecycle.ts): a step on a fresh
 * database of a real PostgreSQL 18, and what the database holds after its
 * plan, its apply (the run killed right after the journal says so), its
 * verify (resumed) and its rollback. pgbouncer and patroni need their own
 * servers; their lifecycles are in pgbouncer.test.ts and patroni.test.ts
 * (plan, switch under load, rollback switching back).
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { registry } from '../../src/steps/index.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { runLifecycle, type CaseScope, type LifecycleCase } from '../helpers/lifecycle.js';

type Check = (s: CaseScope) => Promise<void>;

/** The rows of `sql` are `expected`. */
const rows =
  (sql: string, expected: readonly object[], on?: string): Check =>
  async (s) => {
    assert.deepEqual(await s.query(sql, [], on), expected, sql);
  };
const count = (table: string, n: number) => rows(`SELECT count(*)::int AS n FROM ${table}`, [{ n }]);
/** last_value/is_called, as `101/f`. */
const sequence = (name: string, value: string) => rows(`SELECT last_value || '/' || left(is_called::text, 1) AS v FROM ${name}`, [{ v: value }]);
const statsOf = (table: string, n: number) => rows(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = '${table}'`, [{ n }]);
const slots = (pattern: string, names: readonly string[]) =>
  rows(
    `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE '${pattern}' ORDER BY 1`,
    names.map((slot_name) => ({ slot_name })),
  );
const subscription = (name: string, enabled: boolean | null) =>
  rows(
    `SELECT subenabled FROM pg_subscription WHERE subname = '${name}' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    enabled === null ? [] : [{ subenabled: enabled }],
  );
const frozen = (role: string, setting: readonly string[] | null) =>
  rows(
    `SELECT setconfig FROM pg_db_role_setting WHERE setrole = '${role}'::regrole AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    setting === null ? [] : [{ setconfig: setting }],
  );
/** A set-up of one statement (several, separated by semicolons) on the case's database. */
const exec =
  (sql: string): Check =>
  async (s) => {
    await s.query(sql);
  };
const made =
  (exists: boolean): Check =>
  async (s) => {
    assert.equal(existsSync(path.join(s.dir, 'made')), exists);
  };
/** The same check after every phase: a kind that reads only. */
const unchanged = (check: Check) => ({ afterPlan: check, afterApply: check, rollback: 'nothing-to-undo' as const, afterRollback: check });
const fake = (name: string, options: string) =>
  `CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION p WITH (connect = false${options})`;

const TABLES: Readonly<Record<string, readonly LifecycleCase[]>> = {
  sql: [
    {
      name: 'a row inserted; its rollback statement deletes it',
      step: { kind: 'sql', sql: "INSERT INTO t VALUES ('s')", rollback: "DELETE FROM t WHERE v = 's'" },
      setup: exec('CREATE TABLE t (v text)'),
      afterPlan: count('t', 0),
      afterApply: count('t', 1),
      rollback: 'undone',
      afterRollback: count('t', 0),
    },
  ],
  'sequence-reset': [
    {
      name: 'a sequence behind its data is moved past it with setval; rollback puts it back',
      step: { kind: 'sequence-reset', from: 'data', include: ['public.t_id_seq'] },
      setup: exec('CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)'),
      afterPlan: sequence('t_id_seq', '1/f'),
      afterApply: sequence('t_id_seq', '101/f'),
      rollback: 'undone',
      afterRollback: sequence('t_id_seq', '1/f'),
    },
    {
      name: 'a sequence already past its data is left alone',
      step: { kind: 'sequence-reset', from: 'data', include: ['public.t_id_seq'] },
      setup: exec("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100); SELECT setval('t_id_seq', 500)"),
      // Its rollback runs, and has nothing of its own to put back.
      ...unchanged(sequence('t_id_seq', '500/t')),
      rollback: 'undone',
    },
  ],
  'freeze-writes': [
    {
      name: "the role's sessions in this database default to read-only; rollback removes the setting",
      step: { kind: 'freeze-writes', roles: ['lc_app'], probe: false },
      setup: exec("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lc_app') THEN CREATE ROLE lc_app LOGIN; END IF; END $$"),
      afterPlan: frozen('lc_app', null),
      afterApply: frozen('lc_app', ['default_transaction_read_only=on']),
      rollback: 'undone',
      afterRollback: frozen('lc_app', null),
    },
  ],
  analyze: [
    {
      name: 'a table without statistics gets them; ANALYZE is not undone',
      step: { kind: 'analyze', onlyMissing: true },
      setup: exec('CREATE TABLE t AS SELECT g AS v FROM generate_series(1, 100) g'),
      afterPlan: statsOf('t', 0),
      afterApply: statsOf('t', 1),
      rollback: 'nothing-to-undo',
      afterRollback: statsOf('t', 1),
    },
  ],
  'slot-create': [
    {
      name: 'a logical slot is created; rollback drops it',
      step: { kind: 'slot-create', type: 'logical', slots: ['lc_created'] },
      afterPlan: slots('lc_created', []),
      afterApply: slots('lc_created', ['lc_created']),
      rollback: 'undone',
      afterRollback: slots('lc_created', []),
    },
  ],
  'slot-drop': [
    {
      name: 'a physical slot is dropped; rollback creates it again',
      step: { kind: 'slot-drop', type: 'physical', slots: ['lc_dropped'] },
      setup: exec("SELECT pg_create_physical_replication_slot('lc_dropped')"),
      afterPlan: slots('lc_dropped', ['lc_dropped']),
      afterApply: slots('lc_dropped', []),
      rollback: 'undone',
      afterRollback: async (s) => {
        await slots('lc_dropped', ['lc_dropped'])(s);
        await s.query("SELECT pg_drop_replication_slot('lc_dropped')");
      },
    },
  ],
  'slots-inventory': [
    {
      name: 'reads only',
      step: { kind: 'slots-inventory' },
      setup: exec("SELECT pg_create_physical_replication_slot('lc_listed')"),
      ...unchanged(slots('lc_listed', ['lc_listed'])),
      afterRollback: async (s) => {
        await slots('lc_listed', ['lc_listed'])(s);
        await s.query("SELECT pg_drop_replication_slot('lc_listed')");
      },
    },
  ],
  'replication-caught-up': [
    {
      name: 'no slot selected: caught up at once; reads only',
      step: { kind: 'replication-caught-up', slots: ['lc_none_*'], timeout: '5s' },
      ...unchanged(slots('lc_none_%', [])),
    },
  ],
  'subscriptions-enable': [
    {
      name: 'a disabled subscription is enabled; rollback disables it',
      step: { kind: 'subscriptions-enable', subscriptions: ['lc_sub'] },
      setup: exec(fake('lc_sub', '')),
      afterPlan: subscription('lc_sub', false),
      afterApply: subscription('lc_sub', true),
      rollback: 'undone',
      afterRollback: subscription('lc_sub', false),
    },
    {
      name: 'an enabled subscription is left alone',
      step: { kind: 'subscriptions-enable', subscriptions: ['lc_sub'] },
      setup: async (s) => {
        await s.query(fake('lc_sub', ''));
        await s.query('ALTER SUBSCRIPTION lc_sub ENABLE');
      },
      ...unchanged(subscription('lc_sub', true)),
      rollback: 'undone',
      afterRollback: async (s) => {
        await subscription('lc_sub', true)(s);
        await s.query('ALTER SUBSCRIPTION lc_sub DISABLE');
      },
    },
  ],
  'subscriptions-disable': [
    {
      name: 'an enabled subscription is disabled (verify waits for its worker to exit); rollback enables it',
      step: { kind: 'subscriptions-disable', subscriptions: ['lc_sub'] },
      setup: async (s) => {
        await s.query(fake('lc_sub', ''));
        await s.query('ALTER SUBSCRIPTION lc_sub ENABLE');
      },
      afterPlan: subscription('lc_sub', true),
      afterApply: subscription('lc_sub', false),
      afterVerify: async (s) => {
        await subscription('lc_sub', false)(s);
        await rows("SELECT count(*)::int AS n FROM pg_stat_subscription WHERE subname = 'lc_sub' AND pid IS NOT NULL", [{ n: 0 }])(s);
      },
      rollback: 'undone',
      afterRollback: async (s) => {
        await subscription('lc_sub', true)(s);
        await s.query('ALTER SUBSCRIPTION lc_sub DISABLE');
      },
    },
  ],
  'subscription-detach': [
    {
      name: 'a subscription is dropped without touching its publisher; irreversible, and rollback says so',
      step: { kind: 'subscription-detach', subscriptions: ['lc_sub'] },
      setup: exec(fake('lc_sub', ", slot_name = 'lc_detached'")),
      afterPlan: subscription('lc_sub', false),
      afterApply: subscription('lc_sub', null),
      rollback: 'irreversible',
      afterRollback: subscription('lc_sub', null),
    },
  ],
  compare: [
    {
      name: 'equal tables: reads only',
      step: { kind: 'compare', source: 'db', target: 'copy', mode: 'checksum' },
      connected: false,
      databases: ['copy'],
      setup: async (s) => {
        for (const on of [undefined, 'copy'])
          await s.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g', [], on);
      },
      ...unchanged(count('t', 100)),
    },
  ],
  'upgrade-precheck': [
    {
      name: 'a clean database: reads only',
      step: { kind: 'upgrade-precheck', targetVersion: 18 },
      setup: exec('CREATE TABLE t (v int)'),
      ...unchanged(count('t', 0)),
    },
  ],
  'plan-check': [
    {
      name: 'the same plan on both sides: reads only',
      step: { kind: 'plan-check', source: 'db', target: 'copy', queries: { file: 'queries.sql' } },
      connected: false,
      databases: ['copy'],
      setup: async (s) => {
        writeFileSync(path.join(s.dir, 'queries.sql'), '-- name: by id\nSELECT v FROM t WHERE id = $1;\n');
        for (const on of [undefined, 'copy']) await s.query('CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 1); ANALYZE t', [], on);
      },
      ...unchanged(count('t', 1)),
    },
  ],
  wait: [
    {
      name: 'a query already true: reads only',
      step: { kind: 'wait', query: 'SELECT count(*) > 0 FROM t', expect: true, timeout: '5s' },
      setup: exec('CREATE TABLE t (v int); INSERT INTO t VALUES (1)'),
      ...unchanged(count('t', 1)),
    },
  ],
  shell: [
    {
      name: 'a command makes a file; its rollback command removes it',
      step: { kind: 'shell', command: ['touch', 'made'], rollback: ['rm', 'made'], cwd: '.' },
      connected: false,
      afterPlan: made(false),
      afterApply: made(true),
      rollback: 'undone',
      afterRollback: made(false),
    },
  ],
  confirm: [
    {
      name: 'answered by --yes: changes nothing',
      step: { kind: 'confirm', message: 'Go?' },
      connected: false,
      setup: exec('CREATE TABLE t (v int)'),
      ...unchanged(count('t', 0)),
    },
  ],
};

describe('each kind, phase by phase, on PostgreSQL 18', () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(18, { wal_level: 'logical', max_replication_slots: '10' });
  });
  after(async () => {
    await server.stop();
  });

  it('every kind has a table here, but pgbouncer and patroni (their own servers, their own files)', () => {
    assert.deepEqual([...Object.keys(TABLES), 'pgbouncer', 'patroni'].sort(), Object.keys(registry).sort());
  });

  for (const [kind, cases] of Object.entries(TABLES)) {
    for (const c of cases) {
      it(`${kind}: ${c.name}`, async () => {
        await runLifecycle(server, c);
      });
    }
  }
});
