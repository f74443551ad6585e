/**
 * upgrade-precheck against real clusters that each carry one defect, and
 * against PostgreSQL's own pg_upgrade --check (Debian's 15, 15 -> 15): every
 * defect pg_upgrade reports is also reported by the online check.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { binDir, initPostgres, startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { findingsOf, ids, plan } from '../helpers/precheck.js';
import { freePort } from '../../scripts/embedded-postgres.js';

/**
 * A C function whose library file does not exist (as after a package was
 * removed): CREATE FUNCTION loads the library, so it is created against one
 * that exists and then pointed elsewhere in the catalog.
 */
const GONE_LIBRARY = `CREATE FUNCTION gone() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c;
  UPDATE pg_proc SET probin = '$libdir/cutover_no_such_library' WHERE proname = 'gone'`;

for (const version of VERSIONS) {
  describe(`upgrade-precheck of a PostgreSQL ${version} cluster to 18`, () => {
    let fresh: TestServer;
    const clusters: TestServer[] = [];
    const cluster = async (settings: Record<string, string> = {}) => {
      const server = await startPostgres(version, settings);
      clusters.push(server);
      return server;
    };
    const newCluster = () => `  new: { kind: postgres, url: "${fresh.url}" }\n`;

    before(async () => {
      // A new 18 cluster whose data checksums differ from the old one's (18's initdb enables them by default).
      fresh = await startPostgres(18, {}, version === 18 ? ['--no-data-checksums'] : []);
    });
    after(async () => {
      await Promise.all([fresh.stop(), ...clusters.map((c) => c.stop())]);
    });

    it('a clean cluster has no error findings', async () => {
      const old = await cluster();
      const result = await plan(old, '');
      assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
      assert.deepEqual(ids(result, 'error'), []);
    });

    it('reg* columns, also inside domains and arrays, are found in the database that has them', async () => {
      const old = await cluster();
      await old.query('CREATE DATABASE app');
      await old.query('CREATE DOMAIN procs AS regprocedure; CREATE TABLE r (p regproc, q procs[], ok regclass)', [], 'app');
      const result = await plan(old, '');
      assert.equal(result.status, 'failed');
      assert.deepEqual(
        findingsOf(result)
          .filter((f) => f.id === 'reg-types')
          .map((f) => `${f.database}: ${f.objects}`),
        ['app: public.r.p, public.r.q'],
      );
    });

    it('a prepared transaction and a database that disallows connections', async () => {
      const old = await cluster({ max_prepared_transactions: '5' });
      await old.query('CREATE DATABASE closed');
      await old.query('ALTER DATABASE closed WITH ALLOW_CONNECTIONS false');
      await old.query('CREATE TABLE x (i int)');
      await old.query("BEGIN; INSERT INTO x VALUES (1); PREPARE TRANSACTION 'pending'");
      try {
        const result = await plan(old, '');
        assert.deepEqual(ids(result, 'error'), ['database-disallows-connections', 'prepared-transactions']);
        assert.equal(findingsOf(result).find((f) => f.id === 'prepared-transactions')?.objects, 'postgres: pending');
      } finally {
        await old.query("ROLLBACK PREPARED 'pending'");
      }
    });

    it('with newCluster: a library the new cluster cannot load, and data checksums that differ', async () => {
      const old = await cluster();
      await old.query(GONE_LIBRARY);
      const result = await plan(old, '    newCluster: new\n', newCluster());
      assert.deepEqual(ids(result, 'error'), ['data-checksums-differ', 'library-not-loadable']);
      assert.match(
        findingsOf(result).find((f) => f.id === 'library-not-loadable')?.objects ?? '',
        /^\$libdir\/cutover_no_such_library \(used in postgres\): could not access file/,
      );
    });

    it('a lagging logical slot: a warning, an error once writes are frozen; and a new cluster with wal_level=replica cannot take it', async () => {
      const old = await cluster({ wal_level: 'logical' });
      await old.query("SELECT pg_create_logical_replication_slot('cdc', 'pgoutput'); CREATE TABLE t (i int); INSERT INTO t VALUES (1)");
      const result = await plan(old, '    newCluster: new\n', newCluster());
      const slot = findingsOf(result).find((f) => f.id === 'logical-slots-not-caught-up');
      assert.equal(slot?.severity, 'warning');
      assert.match(slot?.objects ?? '', /^cdc \(\d+ bytes behind\)$/);
      assert.ok(ids(result, 'error').includes('new-cluster-cannot-take-slots'));
      const frozen = await plan(old, '    writesFrozen: true\n');
      assert.equal(findingsOf(frozen).find((f) => f.id === 'logical-slots-not-caught-up')?.severity, 'error');
    });
  });
}

/** Which online finding stands for each check pg_upgrade prints. */
const ONLINE_FOR: readonly [RegExp, string][] = [
  [/prepared transactions/, 'prepared-transactions'],
  [/reg\* data types/, 'reg-types'],
  [/database connection settings/, 'database-disallows-connections'],
  [/required libraries/, 'libraries-to-verify'],
  [/install user/, 'not-install-user'],
  [/not-null constraint inconsistencies/, 'not-null-inheritance'],
];

describe("pg_upgrade --check (Debian's 15, 15 -> 15) against the online check", () => {
  let old: TestServer;
  const fixes: Record<string, () => Promise<unknown>> = {};

  before(async () => {
    old = await startPostgres(15, { max_prepared_transactions: '5' });
    await old.query('CREATE DATABASE closed');
    await old.query('ALTER DATABASE closed WITH ALLOW_CONNECTIONS false');
    await old.query(`CREATE TABLE r (p regproc); CREATE TABLE x (i int); ${GONE_LIBRARY}`);
    // On its own: in one query string with the above, the prepared transaction would hold them too.
    await old.query("BEGIN; INSERT INTO x VALUES (1); PREPARE TRANSACTION 'pending'");
    fixes['prepared-transactions'] = () => old.query("ROLLBACK PREPARED 'pending'");
    fixes['reg-types'] = () => old.query('DROP TABLE r');
    fixes['database-disallows-connections'] = () => old.query('ALTER DATABASE closed WITH ALLOW_CONNECTIONS true');
    fixes['libraries-to-verify'] = () => old.query('DROP FUNCTION gone()');
    // Debian's 15.18 has the not-null check that the 2025 minor releases added to every branch.
    await old.query('CREATE TABLE parent (a int NOT NULL); CREATE TABLE child () INHERITS (parent); ALTER TABLE child ALTER COLUMN a DROP NOT NULL');
    fixes['not-null-inheritance'] = () => old.query('ALTER TABLE child ALTER COLUMN a SET NOT NULL');
  });
  after(async () => {
    await old.stop();
  });

  it('every defect pg_upgrade reports, one run at a time, the online check reported too', async () => {
    const reported: string[] = [];
    for (let round = 0; round < 8; round++) {
      const target = await initPostgres(15);
      try {
        const runAs = process.getuid?.() === 0 ? '      runAs: [runuser, -u, postgres, --]\n' : '';
        const result = await plan(
          old,
          `    pgUpgrade:\n      oldBindir: ${binDir(15)}\n      newBindir: ${binDir(15)}\n      oldDatadir: ${old.dataDir}\n      newDatadir: ${target.dataDir}\n      user: postgres\n      oldPort: ${old.port}\n      newPort: ${await freePort()}\n      socketDir: ${old.socketDir}\n${runAs}`,
          '',
          15,
        );
        const fromPgUpgrade = findingsOf(result).filter((f) => f.id === 'pg-upgrade-check');
        if (fromPgUpgrade.length === 0) {
          assert.ok(result.steps[0]?.plan?.output?.includes('*Clusters are compatible*'), result.steps[0]?.plan?.output);
          break;
        }
        for (const f of fromPgUpgrade) {
          const online = ONLINE_FOR.find(([pattern]) => pattern.test(f.objects))?.[1];
          assert.ok(online !== undefined, `no online counterpart known for pg_upgrade's "${f.objects}"`);
          assert.ok(ids(result).includes(online), `pg_upgrade reported "${f.objects}"; the online check did not report ${online}`);
          reported.push(online);
          await fixes[online]?.();
        }
      } finally {
        target.remove();
      }
    }
    assert.deepEqual(reported.sort(), ['database-disallows-connections', 'libraries-to-verify', 'not-null-inheritance', 'prepared-transactions', 'reg-types']);
  });
});
