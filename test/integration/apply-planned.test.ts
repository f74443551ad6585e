/**
 * `apply` executes the planned payload it is given, and only that: every
 * statement a kind sends is recorded and compared with the payload, on a
 * real PostgreSQL 18. A kind that plans again at apply time refuses a
 * payload that no longer matches the state, before writing.
 */
import assert from 'node:assert/strict';
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
import { startPostgres, type TestServer } from '../helpers/pg.js';

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

/** What a kind may use here: one session; anything else is a test failure. */
function contextOn<Before>(db: Queryable, recorded: Before[], tx?: Queryable): ApplyContext<Before> {
  const unused = (): never => {
    throw new Error('not used by this test');
  };
  return {
    runId: 'apply-planned',
    dryRun: false,
    signal: new AbortController().signal,
    session: async () => db,
    resolved: unused,
    sessionIn: unused,
    sessionAs: unused,
    oracle: unused,
    resolvePath: (file) => file,
    connectionEnv: () => ({}),
    commands: unused,
    progress: () => {},
    tx,
    confirm: async () => true,
    recordBefore: (before) => recorded.push(before),
    priorBefore: undefined,
    force: false,
  };
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
    server = await startPostgres(18);
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
});
