/**
 * upgrade-precheck on real old clusters, 11 to 18, each given every defect
 * its version can hold, to 18 and to 19: the exact finding ids, and none on
 * the same cluster before the defects were added. The servers start in
 * parallel and each serves all the cases of its version.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { int8PassByValue, ISN_FUNCTIONS_SQL } from '../../src/precheck/checks.js';
import type { Queryable } from '../../src/db/session.js';
import { startAll, startPostgres, type PgVersion, type TestServer } from '../helpers/pg.js';
import { findingsOf, ids, plan } from '../helpers/precheck.js';

const OLD: readonly PgVersion[] = [11, 12, 13, 14, 16, 17, 18];

/**
 * The defects, each on the versions that can hold it, in a database `app`
 * (cluster-wide ones aside), with the error finding each one must produce
 * and the targets it matters for.
 */
const DEFECTS: readonly { id: string; versions: (v: number) => boolean; targets: readonly number[]; sql: string; cluster?: true }[] = [
  { id: 'tables-with-oids', versions: (v) => v <= 11, targets: [18, 19], sql: 'CREATE TABLE legacy (i int) WITH OIDS' },
  { id: 'removed-types', versions: (v) => v <= 11, targets: [18, 19], sql: 'CREATE TABLE times (t abstime)' },
  { id: 'sql-identifier-type', versions: (v) => v <= 11, targets: [18, 19], sql: 'CREATE TABLE idents (n information_schema.sql_identifier)' },
  { id: 'aclitem-type', versions: (v) => v <= 15, targets: [18, 19], sql: 'CREATE TABLE grants (g aclitem)' },
  {
    id: 'invalid-database',
    versions: () => true,
    targets: [18, 19],
    // What an interrupted DROP DATABASE leaves (15+); pg_upgrade 18 refuses the mark on every version.
    sql: "CREATE DATABASE broken; UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'broken'",
    cluster: true,
  },
  {
    id: 'template0-allows-connections',
    versions: () => true,
    targets: [18, 19],
    sql: "UPDATE pg_database SET datallowconn = true WHERE datname = 'template0'",
    cluster: true,
  },
  {
    id: 'system-composite-types',
    versions: () => true,
    targets: [18, 19],
    sql: 'CREATE DOMAIN activity AS pg_stat_activity; CREATE TABLE snapshots (s activity)',
  },
  {
    id: 'postfix-operators',
    versions: (v) => v <= 13,
    targets: [18, 19],
    sql: `CREATE FUNCTION fact(bigint) RETURNS numeric LANGUAGE sql AS 'SELECT $1::numeric';
          CREATE OPERATOR !!! (LEFTARG = bigint, PROCEDURE = fact)`,
  },
  {
    id: 'user-encoding-conversions',
    versions: (v) => v <= 13,
    targets: [18, 19],
    sql: `CREATE CONVERSION latin_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8`,
  },
  {
    id: 'incompatible-polymorphics',
    versions: (v) => v <= 13,
    targets: [18, 19],
    sql: `CREATE AGGREGATE array_accum (anyelement) (sfunc = array_append, stype = anyarray, initcond = '{}')`,
  },
  {
    id: 'not-null-inheritance',
    // 18 refuses to drop an inherited NOT NULL.
    versions: (v) => v <= 17,
    targets: [18, 19],
    sql: 'CREATE TABLE parent (a int NOT NULL); CREATE TABLE child () INHERITS (parent); ALTER TABLE child ALTER COLUMN a DROP NOT NULL',
  },
  {
    id: 'gist-inet-ops',
    versions: () => true,
    targets: [19],
    sql: 'CREATE EXTENSION btree_gist; CREATE TABLE net (a inet); CREATE INDEX net_gist ON net USING gist (a gist_inet_ops)',
  },
  { id: 'global-names-with-newlines', versions: () => true, targets: [19], sql: 'CREATE ROLE "line\nbreak"', cluster: true },
  {
    id: 'subscription-without-origin',
    versions: (v) => v >= 17,
    targets: [18, 19],
    // Created without connecting, then its replication origin dropped by hand.
    sql: `CREATE SUBSCRIPTION orphan CONNECTION 'dbname=nowhere' PUBLICATION p WITH (connect = false); SELECT pg_replication_origin_drop('pg_' || oid) FROM pg_subscription`,
    cluster: true,
  },
  {
    id: 'reserved-slot-name',
    versions: (v) => v >= 17,
    targets: [19],
    sql: `SELECT pg_create_logical_replication_slot('pg_conflict_detection', 'pgoutput')`,
    cluster: true,
  },
];

/** Objects each finding must name, on every version that holds the defect. */
const OBJECTS: Readonly<Record<string, string>> = {
  'tables-with-oids': 'public.legacy',
  'removed-types': 'public.times.t',
  'sql-identifier-type': 'public.idents.n',
  'system-composite-types': 'public.snapshots.s',
  'aclitem-type': 'public.grants.g',
  'invalid-database': 'broken',
  'template0-allows-connections': 'template0',
  'postfix-operators': 'public.!!!(bigint, NONE)',
  'user-encoding-conversions': 'public.latin_to_utf8',
  'incompatible-polymorphics': 'aggregate public.array_accum(anyelement)',
  'not-null-inheritance': 'public.child.a (parent public.parent)',
  'gist-inet-ops': 'public.net_gist (on public.net, gist_inet_ops)',
  'global-names-with-newlines': 'role "line\\nbreak"',
  'reserved-slot-name': 'pg_conflict_detection',
  'subscription-without-origin': 'postgres: orphan',
};

const expected = (version: number, target: number) =>
  DEFECTS.filter((d) => d.versions(version) && d.targets.includes(target))
    .map((d) => d.id)
    .sort();

describe('upgrade-precheck on real old clusters (11 to 18)', () => {
  const servers = new Map<PgVersion, TestServer>();
  let fresh: TestServer;

  before(async () => {
    const started = await startAll([
      ...OLD.map((version) => ({ version, settings: version >= 17 ? { wal_level: 'logical' } : {} })),
      // The new cluster: 18 without data checksums, like the old ones, with
      // another WAL segment size (pg_upgrade stops on it) and another locale
      // provider (pg_upgrade 16+ carries the old one over, so no finding).
      // It takes no replication origin, so no subscription can come across.
      {
        version: 18,
        settings: { max_prepared_transactions: '2', max_active_replication_origins: '0' },
        initdbArgs: ['--no-data-checksums', '--wal-segsize=32', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'],
      },
    ]);
    const last = started.pop();
    assert.ok(last);
    fresh = last;
    started.forEach((s) => servers.set(s.version, s));
  });
  after(async () => {
    await Promise.all([...servers.values(), fresh].filter((s) => s !== undefined).map((s) => s.stop()));
  });

  for (const version of OLD) {
    it(`PostgreSQL ${version}: a clean cluster has no error to 18 or to 19, then each defect it can hold is found with its objects`, async () => {
      const old = servers.get(version);
      assert.ok(old);
      for (const target of [18, 19]) {
        const clean = await plan(old, '', '', target);
        assert.equal(clean.status, 'planned', JSON.stringify(clean.steps[0]?.error));
        assert.deepEqual(ids(clean, 'error'), [], `clean ${version} -> ${target}`);
      }

      await old.query('CREATE DATABASE app');
      for (const d of DEFECTS.filter((x) => x.versions(version))) {
        for (const statement of d.sql.split('; ')) await old.query(statement, [], d.cluster ? 'postgres' : 'app');
      }

      for (const target of [18, 19]) {
        const result = await plan(old, '', '', target);
        assert.equal(result.status, 'failed');
        assert.deepEqual(ids(result, 'error'), expected(version, target), `${version} -> ${target}`);
        for (const id of expected(version, target)) {
          const f = findingsOf(result).find((x) => x.id === id);
          assert.equal(f?.objects, OBJECTS[id], `${id} on ${version}`);
          assert.equal(f?.database, DEFECTS.find((d) => d.id === id)?.cluster ? null : 'app', `${id} on ${version}`);
        }
      }
    });
  }

  it('PostgreSQL 17 to 18 (Unicode 15.1 to 16.0): relations using Unicode-dependent functions are a warning, the same under the C collation are not', async () => {
    const old = servers.get(17);
    assert.ok(old);
    await old.query('CREATE DATABASE uni');
    await old.query(
      `CREATE TABLE words (w text);
       CREATE INDEX words_nfc ON words (normalize(w, NFC));
       CREATE INDEX words_lower ON words (lower(w COLLATE pg_c_utf8));
       CREATE INDEX words_lower_c ON words (lower(w COLLATE "C"));
       CREATE TABLE checked (t text CHECK (upper(t COLLATE pg_c_utf8) <> ''));
       CREATE TABLE plain (t text CHECK (upper(t COLLATE "C") <> ''))`,
      [],
      'uni',
    );
    const result = await plan(old, '    newCluster: new\n', `  new: { kind: postgres, url: "${fresh.url}" }\n`);
    const unicode = findingsOf(result).filter((f) => f.id === 'unicode-dependent-objects');
    assert.deepEqual(
      unicode.map((f) => [f.severity, f.database, f.objects]),
      [['warning', 'uni', 'public.checked, public.words_lower, public.words_nfc']],
    );
    assert.match(unicode[0]?.message ?? '', /the Unicode version changes from 15\.1 to 16\.0$/);
    // Without newCluster: 18's Unicode version is known here, 19's is not, so it counts as a change.
    const messageFor = async (target: number) => findingsOf(await plan(old, '', '', target)).find((f) => f.id === 'unicode-dependent-objects')?.message;
    assert.match((await messageFor(18)) ?? '', /from 15\.1 to 16\.0$/);
    assert.match((await messageFor(19)) ?? '', /from 15\.1 to the new release's \(unknown here; give newCluster to compare\)$/);
  });

  it('with newCluster: a second role and an existing tablespace directory in the new cluster are errors', async () => {
    const old = servers.get(16);
    assert.ok(old);
    // The location belongs to the server's OS user, as CREATE TABLESPACE requires.
    const owner = statSync(old.dataDir);
    const location = path.join(path.dirname(old.dataDir), 'ts');
    mkdirSync(location);
    chownSync(location, owner.uid, owner.gid);
    await old.query(`CREATE TABLESPACE cold LOCATION '${location}'`);
    const [control] = await fresh.query<{ catalog: number }>('SELECT catalog_version_no AS catalog FROM pg_control_system()');
    const leftOver = path.join(location, `PG_18_${control?.catalog}`);
    mkdirSync(leftOver);
    chownSync(leftOver, owner.uid, owner.gid);
    await fresh.query('CREATE ROLE app_owner');
    await fresh.query('CREATE TABLE leftover (i int)');
    await fresh.query("BEGIN; INSERT INTO leftover VALUES (1); PREPARE TRANSACTION 'pending'");

    const result = await plan(old, '    newCluster: new\n', `  new: { kind: postgres, url: "${fresh.url}" }\n`);
    // The 16 cluster carries its defects from the case above.
    assert.deepEqual(
      ids(result, 'error'),
      [
        ...expected(16, 18),
        'control-data-differs',
        'new-cluster-has-other-roles',
        'new-cluster-not-empty',
        'new-cluster-prepared-transactions',
        'new-cluster-tablespace-dir-exists',
      ].sort(),
    );
    assert.equal(findingsOf(result).find((f) => f.id === 'control-data-differs')?.objects, 'bytes_per_wal_segment: 16777216 -> 33554432');
    assert.equal(findingsOf(result).find((f) => f.id === 'new-cluster-tablespace-dir-exists')?.objects, leftOver);
    assert.equal(findingsOf(result).find((f) => f.id === 'new-cluster-has-other-roles')?.objects, 'app_owner');
    assert.equal(findingsOf(result).find((f) => f.id === 'new-cluster-prepared-transactions')?.objects, 'pending');
    await fresh.query("ROLLBACK PREPARED 'pending'");
  });

  it('a user without pg_stat_file (not superuser, not pg_read_server_files) gets a warning that the tablespace directories were not looked at', async () => {
    const old = servers.get(16);
    assert.ok(old);
    // The 16 cluster has a tablespace from the case above.
    await old.query('CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher');
    const result = await plan(
      { ...old, url: old.url.replace('postgres@', 'watcher@') },
      '    newCluster: new\n',
      `  new: { kind: postgres, url: "${fresh.url}" }\n`,
    );
    const f = findingsOf(result).find((x) => x.id === 'tablespace-dirs-not-checked');
    assert.deepEqual([f?.severity, f?.objects], ['warning', 'permission denied for function pg_stat_file']);
    assert.equal(
      findingsOf(result).find((x) => x.id === 'new-cluster-tablespace-dir-exists'),
      undefined,
    );
  });

  it('the new cluster and logical replication: wal_level replica is enough for 19, not for 18; an existing pg_conflict_detection slot stops 19; no origin for the subscription', async () => {
    const old = servers.get(17);
    assert.ok(old);
    // The 17 cluster holds a logical slot and a subscription from the case above; an 18 server stands in for the new cluster of both targets.
    const findings = async (target: number) => findingsOf(await plan(old, '    newCluster: new\n', `  new: { kind: postgres, url: "${fresh.url}" }\n`, target));
    const slotProblems = async (target: number) => (await findings(target)).find((f) => f.id === 'new-cluster-cannot-take-slots')?.objects;
    const to18 = await findings(18);
    assert.equal(to18.find((f) => f.id === 'new-cluster-cannot-take-slots')?.objects, 'wal_level is replica, must be logical');
    assert.equal(to18.find((f) => f.id === 'new-cluster-cannot-take-subscriptions')?.objects, '0 < 1');
    assert.equal((await findings(19)).find((f) => f.id === 'new-cluster-version')?.objects, '18');
    assert.equal(await slotProblems(19), undefined);
    await fresh.query("SELECT pg_create_physical_replication_slot('pg_conflict_detection')");
    assert.equal(await slotProblems(19), 'the new cluster already has a pg_conflict_detection slot');
  });

  it('run as another superuser than the install user: not-install-user, a warning naming it', async () => {
    const old = servers.get(14);
    assert.ok(old);
    await old.query('CREATE ROLE admin SUPERUSER LOGIN');
    const result = await plan({ ...old, url: old.url.replace('postgres@', 'admin@') }, '');
    const f = findingsOf(result).find((x) => x.id === 'not-install-user');
    assert.deepEqual([f?.severity, f?.objects], ['warning', 'admin']);
  });

  it('to 15, whose pg_upgrade still compares locales: a new cluster of another encoding is template1-locale-differs', async () => {
    const old = servers.get(14);
    assert.ok(old);
    const debian = await startPostgres(15, {}, ['-E', 'SQL_ASCII']);
    try {
      const result = await plan(old, '    newCluster: new\n', `  new: { kind: postgres, url: "${debian.url}" }\n`, 15);
      assert.equal(findingsOf(result).find((f) => f.id === 'template1-locale-differs')?.objects, 'encoding: "UTF8" -> "SQL_ASCII"');
    } finally {
      await debian.stop();
    }
  });

  it('an old cluster newer than targetVersion is an error finding of its own, and nothing else is checked', async () => {
    const old = servers.get(17);
    assert.ok(old);
    const found = findingsOf(await plan(old, '', '', 16));
    assert.deepEqual(
      found.filter((f) => f.id === 'old-cluster-newer').map((f) => [f.severity, f.objects]),
      [['error', '17']],
    );
    // Only what is read before the versions are compared (this cluster keeps what earlier cases left in it).
    const before = new Set([
      'database-disallows-connections',
      'invalid-database',
      'not-install-user',
      'template0-allows-connections',
      'prepared-transactions',
      'long-running-transactions',
    ]);
    assert.deepEqual(
      found.map((f) => f.id).filter((id) => id !== 'old-cluster-newer' && !before.has(id)),
      [],
    );
  });

  it("contrib/isn's functions are what the pass-by-value check lists (a mismatch needs a 32-bit build, which is not here)", async () => {
    const old = servers.get(14);
    assert.ok(old);
    await old.query('CREATE DATABASE codes');
    await old.query('CREATE EXTENSION isn', [], 'codes');
    const codes: Queryable = {
      connectionName: 'old',
      query: async (sql, params) => {
        const rows = await old.query(sql, params === undefined ? undefined : [...params], 'codes');
        return { rows, rowCount: rows.length, command: 'SELECT' };
      },
      queryMany: () => Promise.reject(new Error('not used')),
    } as Queryable;
    assert.equal(await int8PassByValue(codes), true);
    const { rows } = await codes.query<{ object: string }>(ISN_FUNCTIONS_SQL);
    assert.ok(
      rows.some((r) => r.object === 'public.isbn13_in(cstring)'),
      rows.map((r) => r.object).join(', '),
    );
    assert.ok(rows.every((r) => r.object.startsWith('public.')));
  });

  it('PostgreSQL 17: a logical slot that lost its WAL is invalid-logical-slots, an error', async () => {
    const old = servers.get(17);
    assert.ok(old);
    await old.query("SELECT pg_drop_replication_slot('pg_conflict_detection')");
    await old.query("SELECT pg_create_logical_replication_slot('cdc_lost', 'pgoutput')");
    // Keep at most 1 MB of WAL for slots, then write and switch past it: the next checkpoint invalidates the slot.
    await old.query("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    await old.query('SELECT pg_reload_conf()');
    await old.query('CREATE TABLE burn (x text)');
    for (let i = 0; i < 3; i++) {
      await old.query("INSERT INTO burn SELECT repeat('x', 500) FROM generate_series(1, 5000)");
      await old.query('SELECT pg_switch_wal()');
    }
    await old.query('CHECKPOINT');
    const result = await plan(old, '');
    const invalid = findingsOf(result).find((f) => f.id === 'invalid-logical-slots');
    assert.deepEqual([invalid?.severity, invalid?.objects], ['error', 'cdc_lost']);
  });
});
