/**
 * compare on two real PostgreSQL servers per version: identical data compares
 * clean; a changed value, a missing row, an extra row and NULL vs '' each give
 * exactly the expected finding with its key range; a different physical order
 * gives none; a table without a key is compared by count and listed.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RunbookValidationError, parseRunbook, planRunbook, registry, runRunbook, type OracleConnection, type RunResult } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { tempDir } from '../helpers/cli.js';
import { fieldText } from '../../src/compare/locate.js';

const TABLES = ['same', 'changed', 'missing', 'extra', 'nulls', 'ordered'];

/** 5,000 rows per table; ANALYZE so the chunking sees the size (5 chunks of 1,000 with chunkRows: 1000). */
const SOURCE = `${TABLES.map((t) => `CREATE TABLE ${t} (id int PRIMARY KEY, v text, n numeric); INSERT INTO ${t} SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 5000) g;`).join('\n')}
  UPDATE nulls SET v = NULL WHERE id = 7;
  CREATE TABLE nokey (v text); INSERT INTO nokey SELECT 'x' || g FROM generate_series(1, 300) g;
  CREATE TABLE only_source (id int PRIMARY KEY);
  ANALYZE;`;

/** The same, with one difference per table; `ordered` is written in reverse, so its physical order differs. */
const TARGET = `${TABLES.map((t) => `CREATE TABLE ${t} (id int PRIMARY KEY, v text, n numeric);`).join('\n')}
  ${TABLES.filter((t) => t !== 'ordered')
    .map((t) => `INSERT INTO ${t} SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 5000) g;`)
    .join('\n')}
  INSERT INTO ordered SELECT g, 'v' || g, g / 3.0 FROM generate_series(5000, 1, -1) g;
  UPDATE changed SET v = 'changed' WHERE id = 3500;
  DELETE FROM missing WHERE id = 10;
  INSERT INTO extra VALUES (5001, 'new', 1);
  UPDATE nulls SET v = '' WHERE id = 7;
  CREATE TABLE nokey (v text); INSERT INTO nokey SELECT 'x' || g FROM generate_series(1, 300) g;
  ANALYZE;`;

const statusOf = (result: RunResult) =>
  Object.fromEntries(
    ((result.steps[0]?.plan?.tables?.[0]?.rows ?? []) as unknown as { table: string; status: string; firstDifference: string | null }[]).map((r) => [
      r.table,
      r.firstDifference ? `${r.status}: ${r.firstDifference}` : r.status,
    ]),
  );

for (const version of VERSIONS) {
  describe(`compare on PostgreSQL ${version}`, () => {
    let source: TestServer;
    let target: TestServer;
    let n = 0;
    const fresh = async (sourceSql: string, targetSql: string) => {
      const db = `c${++n}`;
      await Promise.all([source.query(`CREATE DATABASE ${db}`), target.query(`CREATE DATABASE ${db}`)]);
      await Promise.all([source.query(sourceSql, [], db), target.query(targetSql, [], db)]);
      return db;
    };
    const load = (db: string, fields: string) => {
      const text = `version: 1
name: compare
connections:
  source: { kind: postgres, url: "${source.urlFor(db)}" }
  target: { kind: postgres, url: "${target.urlFor(db)}" }
steps:
  - id: compare
    kind: compare
    source: source
    target: target
${fields}`;
      const dir = tempDir();
      const file = path.join(dir, 'runbook.yaml');
      writeFileSync(file, text);
      return { runbook: parseRunbook(text, file, { registry, env: {} }), dir };
    };

    before(async () => {
      [source, target] = await Promise.all([startPostgres(version), startPostgres(version)]);
    });
    after(async () => {
      await Promise.all([source.stop(), target.stop()]);
    });

    it('identical data compares clean, by checksum and by count', async () => {
      const same = `CREATE TABLE a (id bigint PRIMARY KEY, v text); INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
        CREATE TABLE b (k text PRIMARY KEY, at timestamptz); INSERT INTO b SELECT 'k' || g, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
        ANALYZE;`;
      const db = await fresh(same, same);
      for (const mode of ['checksum', 'counts']) {
        const { runbook, dir } = load(db, `    mode: ${mode}\n    chunkRows: 1000\n    jobs: 2\n`);
        const result = await runRunbook(runbook, { registry, stateDir: dir });
        assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
        assert.deepEqual(statusOf(result), { 'public.a': 'ok', 'public.b': 'ok' });
      }
    });

    it('checksum: equal data is equal when the servers print dates, times, intervals and bytea differently', async () => {
      const same = `CREATE TABLE t (id int PRIMARY KEY, at timestamptz, d date, ts timestamp, i interval, b bytea);
        INSERT INTO t SELECT g, '2026-01-01 00:00:00+00'::timestamptz + g * interval '7 hours', '2026-01-01'::date + g,
          '2026-01-01'::timestamp + g * interval '1 minute', g * interval '1 day 3 hours', decode(md5(g::text), 'hex')
          FROM generate_series(1, 3000) g;`;
      const db = await fresh(same, same);
      await target.query(
        `ALTER DATABASE ${db} SET timezone = 'Asia/Tokyo'; ALTER DATABASE ${db} SET datestyle = 'SQL, DMY';
         ALTER DATABASE ${db} SET intervalstyle = 'sql_standard'; ALTER DATABASE ${db} SET bytea_output = 'escape'`,
      );
      const { runbook, dir } = load(db, '    mode: checksum\n    chunkRows: 1000\n    jobs: 2\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
      assert.deepEqual(statusOf(result), { 'public.t': 'ok' });
    });

    it('an include pattern that matches no table blocks the step: comparing nothing is not equal', async () => {
      const same = 'CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1);';
      const db = await fresh(same, same);
      const { runbook, dir } = load(db, "    mode: counts\n    include: ['public.orders', 'public.Orders']\n");
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.deepEqual(result.steps[0]?.plan?.blockers, ['include pattern "public.Orders" matches no table here (patterns are schema.name, case-sensitive)']);
    });

    it('checksum: each difference is found down to its row; physical order alone is no difference', async () => {
      const db = await fresh(SOURCE, TARGET);
      const { runbook, dir } = load(db, '    mode: checksum\n    chunkRows: 1000\n    jobs: 3\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.deepEqual(statusOf(result), {
        'public.same': 'ok',
        'public.changed': 'checksum-differs: id=3500 different',
        'public.missing': 'count-differs: id=10 missing on target',
        'public.extra': 'count-differs: id=5001 missing on source',
        'public.nulls': 'checksum-differs: id=7 different',
        'public.ordered': 'ok',
        'public.nokey': 'count-only',
        'public.only_source': 'missing-on-target',
      });
      assert.deepEqual(result.steps[0]?.plan?.notes, ['compared by count only (no key to chunk by): public.nokey']);
      assert.equal(result.steps[0]?.error?.name, 'PlanBlockedError');
      assert.match(result.steps[0]?.error?.message ?? '', /public\.changed: checksum-differs \(source 5000, target 5000\): id=3500 different/);
    });

    it('names and keys that need quoting read as PostgreSQL writes them: "Mixed Case"."Order Lines", "K"="key 7"', async () => {
      const table = `CREATE SCHEMA "Mixed Case"; CREATE TABLE "Mixed Case"."Order Lines" ("K" text PRIMARY KEY, v int);
        INSERT INTO "Mixed Case"."Order Lines" SELECT 'key ' || g, g FROM generate_series(1, 50) g;
        INSERT INTO "Mixed Case"."Order Lines" VALUES ('plain', 0), ('', 0), ('say "hi"', 0), ('a,b', 0);`;
      const db = await fresh(table, `${table} UPDATE "Mixed Case"."Order Lines" SET v = -1 WHERE "K" IN ('key 7', 'plain', '', 'say "hi"', 'a,b');`);
      const { runbook, dir } = load(db, '    mode: checksum\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      const keys = (result.steps[0]?.plan?.tables?.[1]?.rows ?? []).map((r) => `${r['table'] as string} ${r['key'] as string}`);
      const table_ = '"Mixed Case"."Order Lines"';
      assert.deepEqual(
        keys.sort(),
        [`${table_} "K"=""`, `${table_} "K"="a,b"`, `${table_} "K"="key 7"`, `${table_} "K"="say ""hi"""`, `${table_} "K"=plain`].sort(),
      );
      // As PostgreSQL quotes a field of a row: the text after "K"= is what ROW(value)::text holds between its parentheses.
      for (const value of ['key 7', 'plain', '', 'say "hi"', 'a,b', 'back\\slash']) {
        const [row] = await source.query<{ t: string }>('SELECT ROW($1::text)::text AS t', [value], db);
        assert.equal(fieldText(value), row?.t.slice(1, -1), value);
      }
    });

    it('checksum right after a load, without statistics: names exactly the differing rows and their kind', async () => {
      // autovacuum off: no ANALYZE may run behind the test's back; reltuples stays -1 (or 0) on both sides.
      const load300k = (order: 'asc' | 'desc') =>
        `CREATE TABLE big (id bigint PRIMARY KEY, v text, n numeric) WITH (autovacuum_enabled = off);
         INSERT INTO big SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 300000) g;
         CREATE TABLE shuffled (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
         INSERT INTO shuffled SELECT g, 'v' || g FROM generate_series(1, 50000) g ORDER BY g ${order === 'asc' ? '' : 'DESC'};
         CREATE TABLE words (k text PRIMARY KEY, v int) WITH (autovacuum_enabled = off);
         INSERT INTO words SELECT 'key-' || lpad(g::text, 6, '0'), g FROM generate_series(1, 20000) g;
         CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b)) WITH (autovacuum_enabled = off);
         INSERT INTO pairs SELECT g % 10, g, 'x' FROM generate_series(1, 20000) g;`;
      const db = await fresh(
        load300k('asc'),
        `${load300k('desc')}
         UPDATE big SET v = 'changed' WHERE id = 123457;
         DELETE FROM big WHERE id = 250001;
         INSERT INTO big VALUES (300001, 'extra', 1);
         UPDATE words SET v = -1 WHERE k = 'key-012345';
         DELETE FROM words WHERE k = 'key-000002';
         UPDATE pairs SET v = 'y' WHERE a = 3 AND b = 17773;`,
      );
      const statistics = await Promise.all(
        [source, target].map((server) => server.query("SELECT reltuples::int8 AS n FROM pg_class WHERE relname = 'big'", [], db)),
      );
      assert.ok(
        statistics.every((rows) => Number(rows[0]?.['n']) <= 0),
        `no statistics expected: ${JSON.stringify(statistics)}`,
      );

      const { runbook, dir } = load(db, '    mode: checksum\n    jobs: 2\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.deepEqual(statusOf(result), {
        'public.big': 'checksum-differs: id=123457 different, id=250001 missing on target, id=300001 missing on source',
        'public.pairs': 'checksum-differs: (a, b)=(3,17773) different',
        'public.shuffled': 'ok',
        'public.words': 'count-differs: k=key-000002 missing on target, k=key-012345 different',
      });
      const listed = [...((result.steps[0]?.plan?.tables?.[1]?.rows ?? []) as { table: string; key: string }[])];
      listed.sort((a, b) => a.table.localeCompare(b.table) || a.key.localeCompare(b.key));
      assert.deepEqual(listed, [
        { table: 'public.big', key: 'id=123457', difference: 'different' },
        { table: 'public.big', key: 'id=250001', difference: 'missing-on-target' },
        { table: 'public.big', key: 'id=300001', difference: 'missing-on-source' },
        { table: 'public.pairs', key: '(a, b)=(3,17773)', difference: 'different' },
        { table: 'public.words', key: 'k=key-000002', difference: 'missing-on-target' },
        { table: 'public.words', key: 'k=key-012345', difference: 'different' },
      ]);
      assert.match(
        result.steps[0]?.error?.message ?? '',
        /public\.big: checksum-differs \(source 300000, target 300000\): id=123457 different, id=250001 missing on target, id=300001 missing on source/,
      );
    });

    it('checksum: at most maxReportedRows rows are listed per table, the rest counted by kind', async () => {
      const table = `CREATE TABLE t (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off); INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g;`;
      const db = await fresh(table, `${table} UPDATE t SET v = 0 WHERE id IN (5, 500, 5000, 15000); DELETE FROM t WHERE id = 19999;`);
      const { runbook, dir } = load(db, '    mode: checksum\n    bisectRows: 100\n    maxReportedRows: 2\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.deepEqual(statusOf(result), {
        'public.t': 'count-differs: id=5 different, id=500 different, and 3 more (in all 4 different, 1 missing on target)',
      });
      assert.equal(result.steps[0]?.plan?.tables?.[1]?.rows.length, 2);
    });

    it('counts: only what changes a count is found; tolerance allows a small difference', async () => {
      const db = await fresh(SOURCE, TARGET);
      const strict = load(db, '    mode: counts\n');
      assert.deepEqual(statusOf(await planRunbook(strict.runbook, { registry, stateDir: strict.dir })), {
        'public.same': 'ok',
        'public.changed': 'ok',
        'public.missing': 'count-differs',
        'public.extra': 'count-differs',
        'public.nulls': 'ok',
        'public.ordered': 'ok',
        'public.nokey': 'ok',
        'public.only_source': 'missing-on-target',
      });
      const lenient = load(db, '    tolerance: 1\n    exclude: [public.only_source]\n');
      const result = await planRunbook(lenient.runbook, { registry, stateDir: lenient.dir });
      assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
    });

    it('counts against an Oracle source through an injected connection: UPPER names fold to lower', async () => {
      const db = `c${++n}`;
      await target.query(`CREATE DATABASE ${db}`);
      await target.query(
        `CREATE SCHEMA hr; CREATE TABLE hr.emp (id int); INSERT INTO hr.emp SELECT generate_series(1, 42);
         CREATE TABLE hr."Dept" (id int); INSERT INTO hr."Dept" VALUES (1), (2);`,
        [],
        db,
      );
      const sent: string[] = [];
      const fake: OracleConnection = {
        async execute(sql, binds) {
          sent.push(sql.replace(/\s+/g, ' ').trim() + (Object.keys(binds).length ? ` ${JSON.stringify(binds)}` : ''));
          if (sql.includes('all_tables')) {
            return {
              rows: [
                { OWNER: 'HR', TABLE_NAME: 'EMP', NUM_ROWS: '40', BLOCKS: '5' },
                { OWNER: 'HR', TABLE_NAME: 'Dept', NUM_ROWS: '2', BLOCKS: '1' },
              ],
            };
          }
          return { rows: [{ N: sql.includes('"EMP"') ? '42' : '3' }] };
        },
        async close() {},
      };
      const text = `version: 1
name: from oracle
connections:
  ora: { kind: oracle, connectString: "db:1521/ORCL", user: hr }
  target: { kind: postgres, url: "${target.urlFor(db)}" }
steps:
  - id: compare
    kind: compare
    source: ora
    target: target
    schemas: { HR: hr }
`;
      const dir = tempDir();
      const file = path.join(dir, 'runbook.yaml');
      writeFileSync(file, text);
      const result = await planRunbook(parseRunbook(text, file, { registry, env: {} }), { registry, stateDir: dir, oracle: async () => fake });
      assert.deepEqual(statusOf(result), { 'hr.emp': 'ok', 'hr."Dept"': 'count-differs' });
      assert.deepEqual(sent.slice(1), ['SELECT TO_CHAR(COUNT(*)) AS "N" FROM "HR"."EMP"', 'SELECT TO_CHAR(COUNT(*)) AS "N" FROM "HR"."Dept"']);
      assert.match(sent[0] ?? '', /FROM all_tables WHERE owner IN \(:o0\).* \{"o0":"HR"\}$/);
    });

    it('a checksum with an Oracle source is refused at validation', () => {
      assert.throws(
        () =>
          parseRunbook(
            `version: 1
name: x
connections:
  ora: { kind: oracle, connectString: "db:1521/ORCL", user: hr }
  pg: { kind: postgres, url: "postgres://x@h/db" }
steps:
  - id: compare
    kind: compare
    source: ora
    target: pg
    mode: checksum
`,
            'r.yaml',
            { registry, env: {} },
          ),
        (error: unknown) =>
          error instanceof RunbookValidationError &&
          error.issues[0]?.path === 'steps[0].mode' &&
          error.issues[0].position.line === 11 &&
          error.issues[0].message.startsWith('step "compare": checksum needs PostgreSQL on both sides'),
      );
    });
  });
}
