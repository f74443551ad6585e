/**
 * `apply` executes the planned payload it is given, and only that: every
 * statement a kind sends is recorded and compared with the payload, on a
 * real PostgreSQL 18. A kind that plans again at apply time refuses a
 * payload that no longer matches the state, before writing. Read-only
 * checks (compare, upgrade-precheck, plan-check, slots-inventory) judge in
 * their plan and execute nothing at apply: that is tested too. pgbouncer:
 * test/integration/pgbouncer.test.ts; patroni: test/integration/patroni.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg, { type QueryResultRow } from 'pg';
import type { z } from 'zod';
import { PlanDriftError } from '../../src/errors.js';
import type { ApplyContext, ConnectedStep } from '../../src/step/contract.js';
import type { Queryable } from '../../src/db/session.js';
import { sqlStep } from '../../src/steps/sql.js';
import { sequenceResetStep } from '../../src/steps/sequence-reset.js';
import { freezeWritesStep } from '../../src/steps/freeze-writes.js';
import { slotCreateStep } from '../../src/steps/slot-create.js';
import { slotDropStep } from '../../src/steps/slot-drop.js';
import { subscriptionsEnableStep } from '../../src/steps/subscriptions-enable.js';
import { subscriptionDetachStep } from '../../src/steps/subscription-detach.js';
import { subscriptionsDisableStep } from '../../src/steps/subscriptions-disable.js';
import { shellStep } from '../../src/steps/shell.js';
import { waitStep } from '../../src/steps/wait.js';
import { confirmStep } from '../../src/steps/confirm.js';
import { analyzeStep } from '../../src/steps/analyze.js';
import { compareStep } from '../../src/steps/compare.js';
import { upgradePrecheckStep } from '../../src/steps/upgrade-precheck.js';
import { planCheckStep } from '../../src/steps/plan-check.js';
import { slotsInventoryStep } from '../../src/steps/slots-inventory.js';
import { replicationCaughtUpStep } from '../../src/steps/replication-caught-up.js';
import { execaRunner } from '../../src/step/commands.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { applyContext } from '../helpers/apply-context.js';

/** A session that records every statement sent through it. */
function recording(client: pg.Client, log: string[]): Queryable {
  return {
    connectionName: 'db',
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the Queryable interface's signature
    async query<Row extends QueryResultRow>(sql: string, params?: readonly unknown[]) {
      log.push(sql);
      const result = await client.query<Row>(sql, [...(params ?? [])]);
      return { rows: result.rows, rowCount: result.rowCount ?? 0, command: result.command };
    },
    async queryMany<Row extends QueryResultRow>(statements: readonly string[]) {
      const rows: Row[][] = [];
      for (const sql of statements) {
        log.push(sql);
        rows.push((await client.query<Row>(sql)).rows);
      }
      return rows;
    },
  };
}

/** What a kind may use here: one session (and what `extra` gives); anything else is a test failure. */
function contextOn<Before>(db: Queryable, recorded: Before[], tx?: Queryable, extra: Partial<ApplyContext<Before>> = {}): ApplyContext<Before> {
  return applyContext<Before>({
    runId: 'apply-planned',
    session: async () => db,
    tx,
    recordBefore: (before) => recorded.push(before),
    ...extra,
  });
}

/** The before-state type a kind declares. */
type BeforeOf<D> = D extends { readonly before: infer S extends z.ZodType } ? z.output<S> : never;

const stepOf = <Config>(kind: string, config: Config): ConnectedStep<Config> => ({
  id: 's',
  kind,
  connection: 'db',
  retries: 0,
  idempotent: false,
  window: false,
  config,
  line: 1,
});

describe('apply executes exactly the planned payload (PostgreSQL 18)', () => {
  let server: TestServer;
  let client: pg.Client;
  before(async () => {
    server = await startPostgres(18, { wal_level: 'logical' });
    await server.query('CREATE DATABASE ap');
    client = new pg.Client({ connectionString: server.urlFor('ap') });
    await client.connect();
  });
  after(async () => {
    await client.end();
    await server.stop();
  });

  it('sql: runs the payload statements, not the runbook ones', async () => {
    await client.query('CREATE TABLE t (v int)');
    const log: string[] = [];
    const step = stepOf('sql', sqlStep.config.parse({ sql: 'INSERT INTO t VALUES (1)', transaction: false }));
    const statements = ['INSERT INTO t VALUES (2)', 'INSERT INTO t VALUES (3)'];
    await sqlStep.apply(contextOn(recording(client, log), []), step, { statements, transaction: false });
    assert.deepEqual(log, statements);
    assert.deepEqual((await client.query('SELECT v FROM t ORDER BY v')).rows, [{ v: 2 }, { v: 3 }]);
  });

  it('sequence-reset: moves the sequences of the payload and no other, in one statement', async () => {
    await client.query(`CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a VALUES (10);
                        CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b VALUES (20);`);
    const step = stepOf('sequence-reset', sequenceResetStep.config.parse({ from: 'data', include: ['public.a_id_seq', 'public.b_id_seq'] }));
    const plan = await sequenceResetStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(
      plan.planned.changes.map((c) => [c.name, c.next]),
      [
        ['a_id_seq', '11'],
        ['b_id_seq', '21'],
      ],
    );
    const only = { changes: plan.planned.changes.filter((c) => c.name === 'a_id_seq') };
    const log: string[] = [];
    const recorded: BeforeOf<typeof sequenceResetStep>[] = [];
    await sequenceResetStep.apply(contextOn(recording(client, log), recorded), step, only);
    assert.equal(log.length, 1, 'one set-based statement');
    assert.deepEqual(plan.actions[0]?.type === 'sql' ? plan.actions[0].sql : undefined, log[0]);
    assert.deepEqual(recorded, [{ sequences: only.changes }], 'the before-state names the planned sequence only');
    assert.deepEqual((await client.query("SELECT nextval('a_id_seq')::int AS a, nextval('b_id_seq')::int AS b")).rows, [{ a: 11, b: 1 }]);
  });

  it('freeze-writes: the statements sent are the planned ones; a payload the state no longer matches is refused before any write', async () => {
    await client.query('CREATE ROLE ap_a LOGIN; CREATE ROLE ap_b LOGIN');
    const step = stepOf('freeze-writes', freezeWritesStep.config.parse({ roles: ['ap_a', 'ap_b'], probe: false }));
    const plan = await freezeWritesStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(plan.planned.roles, ['ap_a', 'ap_b']);

    const stale = { ...plan.planned, settings: plan.planned.settings.filter((s) => s.role === 'ap_a') };
    const refusedLog: string[] = [];
    const none: BeforeOf<typeof freezeWritesStep>[] = [];
    await assert.rejects(freezeWritesStep.apply(contextOn(recording(client, refusedLog), none), step, stale), (error: unknown) => {
      assert.ok(error instanceof PlanDriftError);
      assert.match(error.message, /^the state changed since the plan of this step; nothing was done:\n {2}settings\[1\]\.role: \(none\) -> "ap_b"/);
      return true;
    });
    assert.deepEqual(
      refusedLog.filter((sql) => !/^\s*SELECT/.test(sql)),
      [],
      'nothing but reads before the refusal',
    );

    const log: string[] = [];
    const recorded: BeforeOf<typeof freezeWritesStep>[] = [];
    await freezeWritesStep.apply(contextOn(recording(client, log), recorded), step, plan.planned);
    const writes = log.filter((sql) => !/^\s*SELECT (r|rolname|current_database|pid)/.test(sql) && !['BEGIN', 'COMMIT'].includes(sql));
    assert.deepEqual(
      writes,
      plan.actions.map((a) => (a.type === 'sql' ? a.sql : a.type)),
    );
    assert.deepEqual(recorded, [{ settings: plan.planned.settings, logins: [], probe: null }]);
    await client.query('ALTER ROLE ap_a IN DATABASE ap RESET ALL; ALTER ROLE ap_b IN DATABASE ap RESET ALL');
  });

  const slotNames = async () =>
    (await client.query<{ name: string }>("SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE 'ap\\_%' ORDER BY 1")).rows.map(
      (r) => r.name,
    );
  const writesOf = (log: readonly string[]) => log.filter((sql) => /pg_create_|pg_drop_|^ALTER|^DROP/.test(sql));
  const sqlOf = (actions: readonly { readonly type: string; readonly sql?: string }[]) => actions.map((a) => a.sql ?? a.type);

  it('slot-create: creates the slots of the payload and no other; one created since the plan is refused before any write', async () => {
    const step = stepOf('slot-create', slotCreateStep.config.parse({ slots: ['ap_a', 'ap_b'], type: 'physical' }));
    const plan = await slotCreateStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(
      plan.planned.slots.map((d) => d.name),
      ['ap_a', 'ap_b'],
    );
    const log: string[] = [];
    const recorded: BeforeOf<typeof slotCreateStep>[] = [];
    await slotCreateStep.apply(contextOn(recording(client, log), recorded), step, { slots: plan.planned.slots.filter((d) => d.name === 'ap_b') });
    assert.deepEqual(writesOf(log), [sqlOf(plan.actions)[1]]);
    assert.deepEqual(recorded, [{ created: ['ap_b'] }]);
    assert.deepEqual(await slotNames(), ['ap_b']);

    const refusedLog: string[] = [];
    await assert.rejects(slotCreateStep.apply(contextOn(recording(client, refusedLog), []), step, plan.planned), (error: unknown) => {
      assert.ok(error instanceof PlanDriftError);
      assert.match(error.message, /\n {2}ap_b: \(none\) -> exists$/);
      return true;
    });
    assert.deepEqual(writesOf(refusedLog), [], 'nothing but reads before the refusal');
    assert.deepEqual(await slotNames(), ['ap_b']);
    await client.query("SELECT pg_drop_replication_slot('ap_b')");
  });

  it('slot-drop: drops the slots of the payload and no other, though the pattern selects more', async () => {
    await client.query("SELECT pg_create_physical_replication_slot('ap_x'), pg_create_physical_replication_slot('ap_y')");
    const step = stepOf('slot-drop', slotDropStep.config.parse({ slots: ['ap_*'], type: 'physical' }));
    const plan = await slotDropStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(
      plan.planned.slots.map((d) => d.name),
      ['ap_x', 'ap_y'],
    );
    const only = { ...plan.planned, slots: plan.planned.slots.filter((d) => d.name === 'ap_y') };
    const log: string[] = [];
    const recorded: BeforeOf<typeof slotDropStep>[] = [];
    await slotDropStep.apply(contextOn(recording(client, log), recorded), step, only);
    assert.deepEqual(writesOf(log), [sqlOf(plan.actions)[1]]);
    assert.deepEqual(recorded, [{ slots: only.slots }]);
    assert.deepEqual(await slotNames(), ['ap_x']);
    await client.query("SELECT pg_drop_replication_slot('ap_x')");
  });

  it('subscriptions-enable: the statements sent are the planned ones, in its transaction; a stale payload is refused before any write', async () => {
    // Subscriptions that never connected: created disabled, nothing on the other side is needed.
    for (const name of ['ap_s1', 'ap_s2']) {
      await client.query(`CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 dbname=none' PUBLICATION p WITH (connect = false)`);
    }
    const step = stepOf('subscriptions-enable', subscriptionsEnableStep.config.parse({}));
    const plan = await subscriptionsEnableStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(plan.planned, {
      subscriptions: [
        { name: 'ap_s1', enabled: false },
        { name: 'ap_s2', enabled: false },
      ],
    });

    const refusedLog: string[] = [];
    const stale = { subscriptions: plan.planned.subscriptions.slice(0, 1) };
    await assert.rejects(subscriptionsEnableStep.apply(contextOn(recording(client, []), [], recording(client, refusedLog)), step, stale), (error: unknown) => {
      assert.ok(error instanceof PlanDriftError);
      assert.match(error.message, /subscriptions\[1\]\.name: \(none\) -> "ap_s2"/);
      return true;
    });
    assert.deepEqual(writesOf(refusedLog), []);

    const log: string[] = [];
    await client.query('BEGIN');
    const outcome = await subscriptionsEnableStep.apply(contextOn(recording(client, []), [], recording(client, log)), step, plan.planned);
    // Enabling a subscription that cannot connect is fine in the catalog; roll the transaction back so no worker starts.
    await client.query('ROLLBACK');
    assert.deepEqual(writesOf(log), sqlOf(plan.actions));
    assert.deepEqual(outcome.before, plan.planned);
  });

  it('subscription-detach: detaches what the payload names, with the planned statements, and touches no publisher it does not name', async () => {
    const step = stepOf('subscription-detach', subscriptionDetachStep.config.parse({ subscriptions: ['ap_s1', 'ap_s2'] }));
    const plan = await subscriptionDetachStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(plan.planned, {
      subscriptions: [
        { name: 'ap_s1', slot: 'ap_s1' },
        { name: 'ap_s2', slot: 'ap_s2' },
      ],
      publisher: null,
    });
    const log: string[] = [];
    const recorded: BeforeOf<typeof subscriptionDetachStep>[] = [];
    await subscriptionDetachStep.apply(contextOn(recording(client, log), recorded), step, plan.planned);
    assert.deepEqual(writesOf(log), sqlOf(plan.actions));
    assert.deepEqual(recorded, [{ subscriptions: plan.planned.subscriptions }]);
    assert.deepEqual((await client.query("SELECT subname FROM pg_subscription WHERE subname LIKE 'ap\\_%'")).rows, []);
  });

  it('shell: runs the payload argv in the payload directory, not the runbook command', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-ap-'));
    const step = stepOf('shell', shellStep.config.parse({ command: ['touch', 'from-runbook'] }));
    const ran: (readonly [readonly string[], string | undefined])[] = [];
    const ctx = contextOn<null>(recording(client, []), [], undefined, {
      commands: async (argv, options) => {
        ran.push([argv, options.cwd]);
        return execaRunner(argv, options);
      },
    });
    await shellStep.apply(ctx, step, { argv: ['touch', 'from-payload'], cwd: dir });
    assert.deepEqual(ran, [[['touch', 'from-payload'], dir]]);
    assert.deepEqual(readdirSync(dir), ['from-payload']);
  });

  it('wait: polls the payload query, not the runbook one', async () => {
    const step = stepOf('wait', waitStep.config.parse({ query: 'SELECT false', expect: true }));
    const log: string[] = [];
    await waitStep.apply(contextOn(recording(client, log), []), step, { query: 'SELECT 1 = 1', expect: true, intervalMs: 10, timeoutMs: 5_000 });
    assert.deepEqual(log, ['SELECT 1 = 1']);
  });

  it('confirm: asks the payload question, not the runbook one', async () => {
    const asked: string[] = [];
    const step = stepOf('confirm', confirmStep.config.parse({ message: 'From the runbook?' }));
    const ctx = contextOn<null>(recording(client, []), [], undefined, {
      confirm: async (question) => {
        asked.push(question);
        return true;
      },
    });
    await confirmStep.apply(ctx, step, { question: 'From the payload?' });
    assert.deepEqual(asked, ['From the payload?']);
  });

  it('analyze: analyzes the relations of the payload and no other, though the runbook selects more', async () => {
    await client.query('CREATE TABLE an_a AS SELECT g AS v FROM generate_series(1, 100) g; CREATE TABLE an_b AS SELECT g AS v FROM generate_series(1, 100) g');
    // The payload of a plan that selected an_a only; the runbook's step selects both.
    const narrow = await analyzeStep.plan(contextOn(recording(client, []), []), stepOf('analyze', analyzeStep.config.parse({ include: ['public.an_a'] })));
    const step = stepOf('analyze', analyzeStep.config.parse({ include: ['public.an_*'] }));
    const only = narrow.planned;
    assert.deepEqual(
      only.jobs.map((j) => j.relation),
      ['public.an_a'],
    );
    const log: string[] = [];
    await analyzeStep.apply(contextOn(recording(client, log), []), step, only);
    assert.deepEqual(
      log.filter((sql) => /\bANALYZE\b/i.test(sql)),
      only.jobs.map((j) => j.sql),
    );
    assert.deepEqual((await client.query("SELECT tablename, count(*)::int AS n FROM pg_stats WHERE tablename LIKE 'an\\_%' GROUP BY 1 ORDER BY 1")).rows, [
      { tablename: 'an_a', n: 1 },
    ]);
  });

  it('subscriptions-disable: the statements sent are the planned ones, in its transaction; a stale payload is refused before any write', async () => {
    // Subscriptions that never connected, enabled: their workers retry a connection that fails.
    for (const name of ['apd_1', 'apd_2']) {
      await client.query(`CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION p WITH (connect = false)`);
      await client.query(`ALTER SUBSCRIPTION ${name} ENABLE`);
    }
    const step = stepOf('subscriptions-disable', subscriptionsDisableStep.config.parse({ subscriptions: ['apd_1', 'apd_2'] }));
    const plan = await subscriptionsDisableStep.plan(contextOn(recording(client, []), []), step);
    assert.deepEqual(plan.planned, {
      subscriptions: [
        { name: 'apd_1', enabled: true },
        { name: 'apd_2', enabled: true },
      ],
    });
    const refusedLog: string[] = [];
    const stale = { subscriptions: plan.planned.subscriptions.slice(1) };
    await assert.rejects(subscriptionsDisableStep.apply(contextOn(recording(client, []), [], recording(client, refusedLog)), step, stale), PlanDriftError);
    assert.deepEqual(writesOf(refusedLog), []);

    const log: string[] = [];
    await client.query('BEGIN');
    await subscriptionsDisableStep.apply(contextOn(recording(client, []), [], recording(client, log)), step, plan.planned);
    await client.query('COMMIT');
    assert.deepEqual(writesOf(log), sqlOf(plan.actions));
    assert.deepEqual((await client.query("SELECT subname, subenabled FROM pg_subscription WHERE subname LIKE 'apd\\_%' ORDER BY 1")).rows, [
      { subname: 'apd_1', subenabled: false },
      { subname: 'apd_2', subenabled: false },
    ]);
    for (const name of ['apd_1', 'apd_2']) await client.query(`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE); DROP SUBSCRIPTION ${name}`);
  });

  it('compare, upgrade-precheck, plan-check, slots-inventory: they judge in the plan; apply sends nothing', async () => {
    const cases = [
      () => compareStep.apply(contextOn(recording(client, log), []), stepOf('compare', compareStep.config.parse({ source: 'db', target: 'db' })), null),
      () =>
        upgradePrecheckStep.apply(
          contextOn(recording(client, log), []),
          stepOf('upgrade-precheck', upgradePrecheckStep.config.parse({ targetVersion: 18 })),
          null,
        ),
      () =>
        planCheckStep.apply(
          contextOn(recording(client, log), []),
          stepOf('plan-check', planCheckStep.config.parse({ source: 'db', target: 'db', queries: { topStatements: 5 } })),
          null,
        ),
      () => slotsInventoryStep.apply(contextOn(recording(client, log), []), stepOf('slots-inventory', slotsInventoryStep.config.parse({})), null),
    ];
    const log: string[] = [];
    for (const apply of cases) assert.deepEqual(await apply(), { before: null });
    assert.deepEqual(log, []);
  });

  it('replication-caught-up: waits for the slots of the payload only, with reads only', async () => {
    for (const slot of ['aprc_1', 'aprc_2']) await client.query(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
    // WAL after the slots: neither has a consumer to confirm it, so both stay behind.
    await client.query('CREATE TABLE aprc_moved (v int); INSERT INTO aprc_moved VALUES (1)');
    const step = stepOf('replication-caught-up', replicationCaughtUpStep.config.parse({ slots: ['aprc_*'] }));
    const log: string[] = [];
    await assert.rejects(
      replicationCaughtUpStep.apply(contextOn(recording(client, log), []), step, { standbys: null, slots: ['aprc_1'], intervalMs: 50, timeoutMs: 300 }),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /aprc_1/);
        assert.doesNotMatch(error.message, /aprc_2/);
        return true;
      },
    );
    assert.ok(log.length > 0);
    assert.deepEqual(
      log.filter((sql) => !/^\s*SELECT\b/i.test(sql) && !/^\s*WITH\b/i.test(sql)),
      [],
      'reads only',
    );
    for (const slot of ['aprc_1', 'aprc_2']) await client.query(`SELECT pg_drop_replication_slot('${slot}')`);
  });
});
