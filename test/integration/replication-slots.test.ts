/**
 * The replication kinds (slots-inventory, replication-caught-up, slot-drop,
 * slot-create, subscriptions-disable/-enable, subscription-detach) on real
 * logical replication: two PostgreSQL servers per
 * version (wal_level=logical), a publication, a subscription, rows flowing.
 * Every test ends by checking the exact set of slots on the publisher, so no
 * step leaves a slot the runbook did not ask for.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  RunbookValidationError,
  parseRunbook,
  planRunbook,
  preflight,
  previewRollback,
  registry,
  rollbackRun,
  runRunbook,
  type RunEvent,
  type RunResult,
} from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const LOGICAL = { wal_level: 'logical', max_replication_slots: '20', max_wal_senders: '20' };

/** What `rollback --dry-run` shows for each step of a run: statement and parameters, newest step first. */
const previewOf = async (runId: string, stateDir: string) =>
  (await previewRollback(runId, { registry, stateDir })).steps.map((s) => ({
    id: s.id,
    actions: (s.plan?.actions ?? []).map((a) => (a.type === 'sql' ? [a.sql, ...(a.params ?? [])] : [a.type])),
    notes: s.plan?.notes ?? [],
  }));

const rowsOf = (result: RunResult, index = 0) => (result.steps[index]?.plan?.tables?.[0]?.rows ?? []) as unknown as Record<string, unknown>[];

for (const version of VERSIONS) {
  describe(`replication kinds on PostgreSQL ${version}`, () => {
    let pub: TestServer;
    let sub: TestServer;
    let n = 0;
    let db = '';

    /** A database pair with table t published from pub and subscribed on sub as subscription/slot `s_<db>`. */
    async function pair(): Promise<string> {
      db = `r${++n}`;
      for (const server of [pub, sub]) {
        await server.query(`CREATE DATABASE ${db}`);
        await server.query('CREATE TABLE t (id int PRIMARY KEY, v text)', [], db);
      }
      await pub.query(`INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g; CREATE PUBLICATION p FOR TABLE t`, [], db);
      await sub.query(`CREATE SUBSCRIPTION s_${db} CONNECTION 'host=127.0.0.1 port=${pub.port} dbname=${db} user=postgres' PUBLICATION p`, [], db);
      await until('initial sync', async () => (await sub.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], db))[0]?.n === 10);
      await until('slot active', async () => (await slotNames()).includes(`s_${db}`));
      return db;
    }
    const slotNames = async () => (await pub.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1')).map((r) => r.slot_name);
    const slotActive = async (name: string) =>
      (await pub.query<{ a: boolean }>('SELECT active AS a FROM pg_replication_slots WHERE slot_name = $1', [name]))[0]?.a === true;
    /** DISABLE only asks the apply worker to stop: wait until its walsender let go of the slot. */
    const stopSubscriber = async () => {
      await sub.query(`ALTER SUBSCRIPTION s_${db} DISABLE`, [], db);
      await until('the walsender to stop', async () => !(await slotActive(`s_${db}`)));
    };
    const count = async (server: TestServer) => (await server.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], db))[0]?.n;

    const load = (steps: string) => {
      const text = `version: 1
name: slots
connections:
  pub: { kind: postgres, url: "${pub.urlFor(db)}" }
  sub: { kind: postgres, url: "${sub.urlFor(db)}" }
steps:
${steps}`;
      const dir = tempDir();
      const file = path.join(dir, 'runbook.yaml');
      writeFileSync(file, text);
      return { runbook: parseRunbook(text, file, { registry, env: {} }), dir };
    };

    before(async () => {
      [pub, sub] = await Promise.all([startPostgres(version, LOGICAL), startPostgres(version, LOGICAL)]);
    });
    afterEach(async () => {
      // Tear down what the test set up: its subscription (which drops its slot) and nothing else.
      if (db === '') return;
      const subs = await sub.query<{ subname: string }>('SELECT subname FROM pg_subscription');
      for (const { subname } of subs) {
        await sub.query(`ALTER SUBSCRIPTION ${subname} DISABLE`, [], db).catch(() => {});
        await sub.query(`ALTER SUBSCRIPTION ${subname} SET (slot_name = NONE)`, [], db).catch(() => {});
        await sub.query(`DROP SUBSCRIPTION ${subname}`, [], db).catch(() => {});
      }
      for (const name of await slotNames()) {
        await until(
          `slot ${name} released`,
          async () => (await pub.query<{ a: boolean }>('SELECT active AS a FROM pg_replication_slots WHERE slot_name = $1', [name]))[0]?.a !== true,
        );
        await pub.query('SELECT pg_drop_replication_slot($1)', [name]);
      }
      db = '';
    });
    after(async () => {
      await Promise.all([pub.stop(), sub.stop()]);
    });

    it('slots-inventory lists the slot with plugin, activity and lag, and flags an inactive one', async () => {
      await pair();
      await pub.query("SELECT pg_create_physical_replication_slot('spare', true)");
      const { runbook, dir } = load('  - id: look\n    kind: slots-inventory\n    connection: pub\n    retainedWarning: 1kB\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'planned');
      const rows = rowsOf(result);
      const subscription = rows.find((r) => r['slot'] === `s_${db}`);
      assert.equal(subscription?.['type'], 'logical');
      assert.equal(subscription?.['plugin'], 'pgoutput');
      assert.equal(subscription?.['database'], db);
      assert.match(String(subscription?.['active']), /^pid \d+$/);
      assert.equal(typeof subscription?.['lagBytes'], 'number');
      const spare = rows.find((r) => r['slot'] === 'spare');
      assert.equal(spare?.['type'], 'physical');
      assert.match(String(spare?.['flags']), /^inactive, retains > 1\.0 kB$/);
      assert.deepEqual(await slotNames(), [`s_${db}`, 'spare']);
    });

    it('replication-caught-up waits while changes are still on their way and passes once they arrived', async () => {
      await pair();
      await stopSubscriber();
      await pub.query(`INSERT INTO t SELECT g, 'y' FROM generate_series(11, 2000) g`, [], db);
      const { runbook, dir } = load(`  - id: caught-up\n    kind: replication-caught-up\n    connection: pub\n    slots: [s_${db}]\n    timeout: 60s\n`);
      const progress: string[] = [];
      const running = runRunbook(runbook, {
        registry,
        stateDir: dir,
        onEvent: (e: RunEvent) => e.type === 'step.progress' && progress.push(e.message),
      });
      await until('the step to report lag', async () => progress.length > 0);
      assert.match(progress[0] ?? '', new RegExp(`s_${db} (\\d+(\\.\\d)? [kM]?B behind|\\(never confirmed\\))`));
      await sub.query(`ALTER SUBSCRIPTION s_${db} ENABLE`, [], db);
      const result = await running;
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.equal(await count(sub), 2000, 'every row written before the step arrived');
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });

    it('replication-caught-up fails on timeout naming the slot when the subscriber is stopped, and says the slot is inactive', async () => {
      await pair();
      await stopSubscriber();
      await pub.query(`INSERT INTO t VALUES (100, 'late')`, [], db);
      const { runbook, dir } = load(`  - id: caught-up\n    kind: replication-caught-up\n    connection: pub\n    timeout: 2s\n    interval: 200ms\n`);
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'rolled-back');
      assert.equal(result.steps[0]?.error?.name, 'CatchUpTimeoutError');
      assert.match(result.steps[0]?.error?.message ?? '', new RegExp(`^not caught up with [0-9A-F]+/[0-9A-F]+ after 2000ms: s_${db} \\d+`));
      // The subscriber is stopped: waiting cannot help, and the message says so.
      assert.match(
        result.steps[0]?.error?.message ?? '',
        /behind \(inactive: no process reads this slot, so it will not catch up by waiting; is its subscription disabled\?\)$/,
      );
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });

    it('replication-caught-up checked before the run: a named slot that does not exist is an error, an inactive one a warning', async () => {
      await pair();
      await stopSubscriber();
      const { runbook } = load(`  - id: caught-up\n    kind: replication-caught-up\n    connection: pub\n    slots: [s_${db}, no_such_slot, "other_*"]\n`);
      const check = await preflight(runbook, { registry });
      assert.equal(check.ok, false);
      assert.deepEqual(
        check.steps[0]?.findings.map((f) => [f.severity, f.message]),
        [
          ['error', 'no slot named no_such_slot'],
          ['warning', `slot s_${db} is inactive: no process reads it, so it will not catch up by waiting`],
        ],
      );
      await sub.query(`ALTER SUBSCRIPTION s_${db} ENABLE`, [], db);
      await until('the walsender to start', () => slotActive(`s_${db}`));
      const fine = load(`  - id: caught-up\n    kind: replication-caught-up\n    connection: pub\n    slots: [s_${db}]\n`);
      assert.deepEqual(
        (await preflight(fine.runbook, { registry })).steps[0]?.findings.map((f) => [f.severity, f.message]),
        [['ok', '1 slot(s), each read by a process']],
      );
    });

    it('replication-caught-up on standbys names a standby that is not connected', async () => {
      await pair();
      const { runbook, dir } = load('  - id: standbys\n    kind: replication-caught-up\n    connection: pub\n    standbys: [replica1]\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.steps[0]?.error?.message, 'plan blocked:\n  - no standby named replica1');
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });

    it('a logical slot drop without acceptPositionLoss is rejected at validation', () => {
      db = '';
      assert.throws(
        () => load('  - id: drop\n    kind: slot-drop\n    connection: pub\n    slots: [s_x]\n'),
        (error: unknown) =>
          error instanceof RunbookValidationError &&
          error.issues.length === 1 &&
          error.issues[0]?.path === 'steps[0].acceptPositionLoss' &&
          error.issues[0].position.line === 7 &&
          /^step "[^"]*": dropping a logical slot loses its position/.test(error.issues[0].message),
      );
    });

    it('slot-drop refuses an active slot, terminates its walsender with terminate: true, and rollback recreates it', async () => {
      await pair();
      const slot = `s_${db}`;
      const refused = load(`  - id: drop\n    kind: slot-drop\n    connection: pub\n    slots: [${slot}]\n    acceptPositionLoss: true\n`);
      const blocked = await runRunbook(refused.runbook, { registry, stateDir: refused.dir });
      assert.equal(blocked.steps[0]?.error?.name, 'PlanBlockedError');
      assert.match(blocked.steps[0]?.error?.message ?? '', new RegExp(`${slot} is active \\(pid \\d+\\); set terminate: true`));
      assert.deepEqual(await slotNames(), [slot]);

      const forced = load(`  - id: drop\n    kind: slot-drop\n    connection: pub\n    slots: [${slot}]\n    acceptPositionLoss: true\n    terminate: true\n`);
      const planned = await planRunbook(forced.runbook, { registry, stateDir: forced.dir });
      assert.match(planned.steps[0]?.plan?.notes?.[0] ?? '', /^position loss \(accepted by acceptPositionLoss\): rollback recreates s_r\d+ /);
      // The apply worker retries only after wal_retrieve_retry_interval (5s), so the terminated slot stays free to drop.
      const dropped = await runRunbook(forced.runbook, { registry, stateDir: forced.dir });
      assert.equal(dropped.status, 'succeeded', JSON.stringify(dropped.steps));
      assert.deepEqual(await slotNames(), []);

      assert.deepEqual(await previewOf(dropped.runId, forced.dir), [
        {
          id: 'drop',
          actions: [
            ['SELECT pg_create_logical_replication_slot(slot_name => $1, plugin => $2, twophase => $3) IS NOT NULL AS created', slot, 'pgoutput', false],
          ],
          notes: [`${slot}: recreated at the WAL position of the rollback, not where dropped`],
        },
      ]);
      assert.deepEqual(await slotNames(), [], 'the preview changed nothing');
      const back = await rollbackRun(dropped.runId, { registry, stateDir: forced.dir });
      assert.equal(back.status, 'rolled-back');
      assert.deepEqual(await pub.query(`SELECT slot_name, slot_type, plugin, database FROM pg_replication_slots`), [
        { slot_name: slot, slot_type: 'logical', plugin: 'pgoutput', database: db },
      ]);
      // The subscription streams again through the recreated slot (from its new position).
      await pub.query(`INSERT INTO t VALUES (500, 'after')`, [], db);
      await until('row through the recreated slot', async () => (await count(sub)) === 11);
      assert.deepEqual(await slotNames(), [slot]);
    });

    it('slot-create makes physical and logical slots; rollback drops exactly those', async () => {
      await pair();
      const { runbook, dir } = load(`  - id: fallback
    kind: slot-create
    connection: pub
    type: logical
    slots: [fallback_l]
  - id: standby
    kind: slot-create
    connection: pub
    type: physical
    slots: [fallback_p]
`);
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.deepEqual(await pub.query(`SELECT slot_name, slot_type, plugin FROM pg_replication_slots ORDER BY 1`), [
        { slot_name: 'fallback_l', slot_type: 'logical', plugin: 'pgoutput' },
        { slot_name: 'fallback_p', slot_type: 'physical', plugin: null },
        { slot_name: `s_${db}`, slot_type: 'logical', plugin: 'pgoutput' },
      ]);
      const drop = 'SELECT pg_drop_replication_slot($1) IS NULL AS dropped';
      assert.deepEqual(await previewOf(result.runId, dir), [
        { id: 'standby', actions: [[drop, 'fallback_p']], notes: [] },
        { id: 'fallback', actions: [[drop, 'fallback_l']], notes: [] },
      ]);
      // A consumer on the created slot: the rollback refuses without --force, and its preview says so, as a blocker.
      await sub.query(
        `CREATE SUBSCRIPTION s2_${db} CONNECTION 'host=127.0.0.1 port=${pub.port} dbname=${db} user=postgres' PUBLICATION p WITH (create_slot = false, slot_name = 'fallback_l', copy_data = false)`,
        [],
        db,
      );
      await until('fallback_l in use', () => slotActive('fallback_l'));
      const strict = (await previewRollback(result.runId, { registry, stateDir: dir })).steps.find((st) => st.id === 'fallback');
      assert.deepEqual(strict?.plan?.actions, []);
      assert.match(strict?.plan?.blockers?.[0] ?? '', /^slot fallback_l is in use \(pid \d+\): the rollback refuses; with --force it ends that session first$/);
      const forced = (await previewRollback(result.runId, { registry, stateDir: dir, force: true })).steps.find((st) => st.id === 'fallback');
      assert.deepEqual(
        forced?.plan?.actions.map((a) => (a.type === 'sql' ? a.sql.split(' ')[1] : a.type)),
        ['pg_terminate_backend($1)', 'pg_drop_replication_slot($1)'],
      );
      await sub.query(`ALTER SUBSCRIPTION s2_${db} DISABLE`, [], db);
      await sub.query(`ALTER SUBSCRIPTION s2_${db} SET (slot_name = NONE)`, [], db);
      await sub.query(`DROP SUBSCRIPTION s2_${db}`, [], db);
      await until('fallback_l released', async () => !(await slotActive('fallback_l')));
      const back = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back');
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });

    it('subscriptions-disable stops the apply worker; rollback enables it again; enable round-trips too', async () => {
      await pair();
      const { runbook, dir } = load('  - id: off\n    kind: subscriptions-disable\n    connection: sub\n');
      const off = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(off.status, 'succeeded', JSON.stringify(off.steps));
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: false }]);
      // With the apply worker gone nothing streams from the slot, so the row cannot arrive.
      await until('the walsender to stop', async () => !(await slotActive(`s_${db}`)));
      await pub.query(`INSERT INTO t VALUES (200, 'held back')`, [], db);
      assert.equal(await count(sub), 10, 'nothing is applied while disabled');

      assert.deepEqual(await previewOf(off.runId, dir), [{ id: 'off', actions: [[`ALTER SUBSCRIPTION "s_${db}" ENABLE`]], notes: [] }]);
      const back = await rollbackRun(off.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back');
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: true }]);
      await until('the held-back row', async () => (await count(sub)) === 11);

      await sub.query(`ALTER SUBSCRIPTION s_${db} DISABLE`, [], db);
      const enable = load(`  - id: on\n    kind: subscriptions-enable\n    connection: sub\n    subscriptions: [s_${db}]\n`);
      const on = await runRunbook(enable.runbook, { registry, stateDir: enable.dir });
      assert.equal(on.status, 'succeeded');
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: true }]);
      const undone = await rollbackRun(on.runId, { registry, stateDir: enable.dir });
      assert.equal(undone.status, 'rolled-back');
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: false }]);
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });

    it('subscription-detach with dropRemoteSlot leaves no subscription and no slot behind', async () => {
      await pair();
      const { runbook, dir } = load(`  - id: detach
    kind: subscription-detach
    connection: sub
    subscriptions: [s_${db}]
    dropRemoteSlot: true
    publisher: pub
`);
      const planned = await planRunbook(runbook, { registry, stateDir: dir });
      assert.deepEqual(
        planned.steps[0]?.plan?.actions.map((a) => (a.type === 'sql' ? `${a.connection}: ${a.sql}` : a.type)),
        [
          `sub: ALTER SUBSCRIPTION "s_${db}" DISABLE`,
          `sub: ALTER SUBSCRIPTION "s_${db}" SET (slot_name = NONE)`,
          `sub: DROP SUBSCRIPTION "s_${db}"`,
          'pub: SELECT pg_drop_replication_slot($1) IS NULL AS dropped',
        ],
      );
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.deepEqual(await sub.query('SELECT subname FROM pg_subscription'), []);
      assert.deepEqual(await slotNames(), []);
    });

    it('rollback after disable then detach: the subscription is gone, so there is nothing to enable; the rollback goes on to the steps under it and ends needs-attention for the detach', async () => {
      await pair();
      const { runbook, dir } = load(`  - id: mark
    kind: sql
    connection: pub
    sql: CREATE TABLE mark (id int)
    rollback: DROP TABLE mark
  - id: off
    kind: subscriptions-disable
    connection: sub
  - id: detach
    kind: subscription-detach
    connection: sub
    subscriptions: [s_${db}]
    dropRemoteSlot: true
    publisher: pub
`);
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const preview = await previewOf(result.runId, dir);
      assert.deepEqual(
        preview.find((s) => s.id === 'off'),
        { id: 'off', actions: [], notes: [`subscription s_${db} no longer exists (a later step dropped it?): nothing to switch back`] },
      );
      const back = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'needs-attention');
      assert.deepEqual(
        back.steps.map((s) => [s.id, s.status]),
        [
          ['mark', 'rolled-back'],
          ['off', 'rolled-back'],
          ['detach', 'rollback-skipped'],
        ],
      );
      assert.deepEqual(await pub.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'mark'", [], db), [{ n: 0 }], 'the step under it was undone');
    });

    it('a runbook in the old form (kind: replication-slots, action:) still validates, plans, runs and rolls back, saying which kind to write', async () => {
      await pair();
      const dir = tempDir();
      const lines = [
        'version: 1',
        'name: old form',
        'connections:',
        `  pub: { kind: postgres, url: "${pub.urlFor(db)}" }`,
        `  sub: { kind: postgres, url: "${sub.urlFor(db)}" }`,
        'steps:',
        '  - id: off',
        '    kind: replication-slots',
        '    connection: sub',
        '    action: disable-subscriptions',
        '  - id: spare',
        '    kind: replication-slots',
        '    connection: pub',
        '    action: create',
        '    type: physical',
        '    slots: [spare_old_form]',
      ];
      const file = path.join(dir, 'old-form.yaml');
      writeFileSync(file, `${lines.join('\n')}\n`);
      const note = (line: number, id: string, action: string, kind: string) =>
        `deprecated: ${file}:${line}:11: steps[${id === 'off' ? 0 : 1}].kind: step "${id}": kind: replication-slots with action: ${action} is deprecated and runs as kind: ${kind}; write "kind: ${kind}" without "action"`;
      const expected = [note(8, 'off', 'disable-subscriptions', 'subscriptions-disable'), note(12, 'spare', 'create', 'slot-create')];

      const validated = await cutover(['validate', file]);
      assert.equal(validated.code, 0, validated.stderr);
      assert.deepEqual(validated.stderr.trim().split('\n'), expected);
      assert.match(validated.stdout, /2 step\(s\): off \[subscriptions-disable\], spare \[slot-create\]/);
      const json = JSON.parse((await cutover(['validate', file, '--json'])).stdout) as { deprecations: { line: number; column: number; path: string }[] };
      assert.deepEqual(
        json.deprecations.map((d) => [d.line, d.column, d.path]),
        [
          [8, 11, 'steps[0].kind'],
          [12, 11, 'steps[1].kind'],
        ],
      );

      const state = path.join(dir, 'state');
      const planned = await cutover(['plan', file, '--state-dir', state]);
      assert.equal(planned.code, 0, planned.stderr);
      assert.deepEqual(planned.stderr.split('\n').slice(0, 2), expected, 'the notes come first, before the check table');

      const checked = await cutover(['check', file]);
      assert.equal(checked.code, 0, checked.stderr);
      assert.deepEqual(checked.stderr.trim().split('\n'), expected);

      const ran = await cutover(['run', file, '--yes', '--state-dir', state]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual(ran.stderr.split('\n').slice(0, 2), expected);
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: false }]);
      assert.deepEqual(await slotNames(), [`s_${db}`, 'spare_old_form']);
      const undone = await cutover(['rollback', '--last', '--yes', '--state-dir', state]);
      assert.equal(undone.code, 0, undone.stderr);
      assert.deepEqual(await sub.query('SELECT subenabled FROM pg_subscription', [], db), [{ subenabled: true }]);
      assert.deepEqual(await slotNames(), [`s_${db}`]);
    });
  });
}
