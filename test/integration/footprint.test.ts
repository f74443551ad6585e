/**
 * No object of ours in an application database: a run that writes to a
 * publisher `FOR ALL TABLES` leaves the publication's table list unchanged
 * and the subscriber applying without errors (pg_stat_subscription_stats).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registry, rollbackRun, runRunbook } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const LOGICAL = { wal_level: 'logical', max_replication_slots: '10', max_wal_senders: '10' };

for (const version of VERSIONS) {
  describe(`footprint on PostgreSQL ${version}`, () => {
    let pub: TestServer;
    let sub: TestServer;

    before(async () => {
      [pub, sub] = await Promise.all([startPostgres(version, LOGICAL), startPostgres(version, LOGICAL)]);
    });
    after(async () => {
      await sub.query('ALTER SUBSCRIPTION s DISABLE', [], 'app').catch(() => {});
      await sub.query('ALTER SUBSCRIPTION s SET (slot_name = NONE)', [], 'app').catch(() => {});
      await sub.query('DROP SUBSCRIPTION s', [], 'app').catch(() => {});
      await Promise.all([pub.stop(), sub.stop()]);
    });

    it('a run with transactional steps on a FOR ALL TABLES publisher adds nothing to the publication; the subscriber keeps applying', async () => {
      for (const server of [pub, sub]) {
        await server.query('CREATE DATABASE app');
        await server.query('CREATE TABLE t (id int PRIMARY KEY, v text)', [], 'app');
      }
      await pub.query('CREATE PUBLICATION everything FOR ALL TABLES', [], 'app');
      await sub.query(`CREATE SUBSCRIPTION s CONNECTION 'host=127.0.0.1 port=${pub.port} dbname=app user=postgres' PUBLICATION everything`, [], 'app');
      const published = async () =>
        (
          await pub.query<{ t: string }>(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_publication_tables WHERE pubname = 'everything' ORDER BY 1",
            [],
            'app',
          )
        ).map((r) => r.t);
      const tablesBefore = await published();
      assert.deepEqual(tablesBefore, ['public.t']);

      const text = `version: 1
name: footprint
connections:
  pub: { kind: postgres, url: "${pub.urlFor('app')}" }
steps:
  - id: one
    kind: sql
    connection: pub
    sql: INSERT INTO t VALUES (1, 'one')
    rollback: DELETE FROM t WHERE id = 1
  - id: two
    kind: sql
    connection: pub
    sql: INSERT INTO t VALUES (2, 'two')
    rollback: DELETE FROM t WHERE id = 2
`;
      const stateDir = tempDir();
      const result = await runRunbook(loadRunbookText(text, { env: {} }).runbook, { registry, stateDir });
      assert.equal(result.status, 'succeeded');
      const count = async () => (await sub.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], 'app'))[0]?.n;
      await until('the subscriber to apply both rows', async () => (await count()) === 2);
      assert.deepEqual(await published(), tablesBefore, 'the publication table list is unchanged');

      const undone = await rollbackRun(result.runId, { registry, stateDir });
      assert.equal(undone.status, 'rolled-back');
      await until('the subscriber to apply the rollback', async () => (await count()) === 0);
      assert.deepEqual(await published(), tablesBefore, 'still unchanged after rollback');
      assert.deepEqual(await pub.query("SELECT nspname FROM pg_namespace WHERE nspname = 'cutover'", [], 'app'), []);
      const errors = await sub.query<{ n: number }>("SELECT apply_error_count::int AS n FROM pg_stat_subscription_stats WHERE subname = 's'", [], 'app');
      assert.deepEqual(errors, [{ n: 0 }]);
    });
  });
}
