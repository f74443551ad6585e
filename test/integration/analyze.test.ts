/**
 * analyze against real PostgreSQL 17 and 18: onlyMissing finds exactly the
 * relations made to lack statistics; stages run three passes; jobs > 1 runs
 * several ANALYZE backends at once; copyFrom makes pg_stats on an 18 target
 * equal the source's, lists what it could not copy, and rollback clears it.
 * Autovacuum is off on every test table, so only the step analyzes.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseRunbook, planRunbook, registry, rollbackRun, runRunbook, type RunResult } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const OFF = 'WITH (autovacuum_enabled = false)';

const rowsOf = (result: RunResult) =>
  (result.steps[0]?.plan?.tables?.[0]?.rows ?? []) as unknown as { relation: string; action: string; missing: string; size: number | null }[];

for (const version of VERSIONS) {
  describe(`analyze on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let source: TestServer;
    let n = 0;
    const fresh = async (sql: string, on = server) => {
      const db = `a${++n}`;
      await on.query(`CREATE DATABASE ${db}`);
      await on.query(sql, [], db);
      return db;
    };
    const load = (db: string, fields: string, extra = '', url = server.urlFor(db)) => {
      const text = `version: 1
name: analyze
connections:
  db: { kind: postgres, url: "${url}" }
${extra}steps:
  - id: stats
    kind: analyze
    connection: db
${fields}`;
      const dir = tempDir();
      const file = path.join(dir, 'runbook.yaml');
      writeFileSync(file, text);
      return { runbook: parseRunbook(text, file, { registry, env: {} }), dir };
    };

    before(async () => {
      [server, source] = await Promise.all([startPostgres(version), startPostgres(version)]);
    });
    after(async () => {
      await Promise.all([server.stop(), source.stop()]);
    });

    it('onlyMissing finds exactly what lacks statistics, and a second run does nothing', async () => {
      const db = await fresh(`
        CREATE TABLE done (id int, v text) ${OFF}; INSERT INTO done SELECT g, 'v' || g FROM generate_series(1, 1000) g;
        CREATE TABLE gets_column (id int) ${OFF}; INSERT INTO gets_column SELECT generate_series(1, 1000);
        CREATE TABLE gets_index (id int, v text) ${OFF}; INSERT INTO gets_index SELECT g, 'V' || g FROM generate_series(1, 1000) g;
        CREATE TABLE gets_ext (a int, b int) ${OFF}; INSERT INTO gets_ext SELECT g, g % 10 FROM generate_series(1, 1000) g;
        CREATE TABLE empty_t (id int) ${OFF};
        CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
        CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (500) ${OFF};
        CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (500) TO (2000) ${OFF};
        INSERT INTO parted SELECT g, 'p' FROM generate_series(1, 1000) g;
        ANALYZE;
        CREATE TABLE brand_new (id int) ${OFF}; INSERT INTO brand_new SELECT generate_series(1, 10);
        ALTER TABLE gets_column ADD COLUMN extra int; UPDATE gets_column SET extra = id;
        CREATE INDEX gets_index_lower ON gets_index (lower(v));
        CREATE STATISTICS gets_ext_s ON a, b FROM gets_ext;
        CREATE TABLE parted_new (id int) PARTITION BY RANGE (id);
        CREATE TABLE parted_new_1 PARTITION OF parted_new FOR VALUES FROM (0) TO (100) ${OFF};
        INSERT INTO parted_new SELECT generate_series(1, 99);
        ANALYZE parted_new_1;`);
      const { runbook, dir } = load(db, '    onlyMissing: true\n    jobs: 2\n');
      const planned = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(planned.status, 'planned');
      const missing = Object.fromEntries(
        rowsOf(planned)
          .filter((r) => r.missing !== '')
          .map((r) => [r.relation, r.missing]),
      );
      assert.deepEqual(missing, {
        'public.brand_new': 'never analyzed',
        'public.gets_column': 'columns without statistics: extra',
        'public.gets_index': 'expression indexes without statistics: gets_index_lower',
        'public.gets_ext': 'extended statistics without data: gets_ext_s',
        'public.parted_new': 'never analyzed',
      });
      // Sizes are read (each opens its relation) only of what will be analyzed.
      const sized = rowsOf(planned)
        .filter((r) => typeof r.size === 'number')
        .map((r) => r.relation);
      assert.deepEqual(sized.sort(), Object.keys(missing).sort());
      // Relations, not statements: the four small ones share one ANALYZE.
      assert.equal(planned.steps[0]?.plan?.tables?.[0]?.footer, '0 to copy, 5 to analyze of 11 selected');
      const statements = (planned.steps[0]?.plan?.actions ?? []).map((a) => (a.type === 'sql' ? a.sql : ''));
      assert.ok(statements.includes(version >= 18 ? 'ANALYZE ONLY "public"."parted_new"' : 'ANALYZE "public"."parted_new"'), statements.join('\n'));
      // Small relations share a statement; the partitioned parent has its own.
      const analyzed = statements.filter((s) => s.startsWith('ANALYZE')).flatMap((s) => s.replace(/^ANALYZE /, '').split(', '));
      assert.deepEqual(analyzed.sort(), [
        '"public"."brand_new"',
        '"public"."gets_column"',
        '"public"."gets_ext"',
        '"public"."gets_index"',
        version >= 18 ? 'ONLY "public"."parted_new"' : '"public"."parted_new"',
      ]);

      assert.deepEqual(
        await server.query("SELECT reltuples FROM pg_class WHERE relname = 'brand_new'", [], db),
        [{ reltuples: -1 }],
        'a plan analyzes nothing',
      );
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const again = await planRunbook(runbook, { registry, stateDir: dir });
      assert.deepEqual(again.steps[0]?.plan?.actions, [], 'a second run right after has nothing to do');
      assert.deepEqual(again.steps[0]?.plan?.notes, ['nothing to analyze']);
    });

    it("as the tables' owner, not a superuser (pg_statistic unreadable, as on a managed service): the same lacks found, and the run verifies", async () => {
      const role = `owner_a${n + 1}`;
      const db = await fresh(`CREATE ROLE ${role} LOGIN; GRANT CREATE ON SCHEMA public TO ${role}; SET ROLE ${role};
        CREATE TABLE done (id int, v text) ${OFF}; INSERT INTO done SELECT g, 'v' || g FROM generate_series(1, 1000) g;
        CREATE TABLE gets_column (id int) ${OFF}; INSERT INTO gets_column SELECT generate_series(1, 1000);
        CREATE TABLE gets_index (id int, v text) ${OFF}; INSERT INTO gets_index SELECT g, 'V' || g FROM generate_series(1, 1000) g;
        CREATE TABLE gets_ext (a int, b int) ${OFF}; INSERT INTO gets_ext SELECT g, g % 10 FROM generate_series(1, 1000) g;
        ANALYZE;
        CREATE TABLE brand_new (id int) ${OFF}; INSERT INTO brand_new SELECT generate_series(1, 10);
        ALTER TABLE gets_column ADD COLUMN extra int; UPDATE gets_column SET extra = id;
        CREATE INDEX gets_index_lower ON gets_index (lower(v));
        CREATE STATISTICS gets_ext_s ON a, b FROM gets_ext;
        RESET ROLE;`);
      const { runbook, dir } = load(db, '    onlyMissing: true\n', '', `postgres://${role}@127.0.0.1:${server.port}/${db}`);
      const planned = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(planned.status, 'planned', JSON.stringify(planned.steps[0]?.error));
      assert.deepEqual(Object.fromEntries(rowsOf(planned).map((r) => [r.relation, r.missing])), {
        'public.brand_new': 'never analyzed',
        'public.done': '',
        'public.gets_column': 'columns without statistics: extra',
        'public.gets_index': 'expression indexes without statistics: gets_index_lower',
        'public.gets_ext': 'extended statistics without data: gets_ext_s',
      });
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const again = await planRunbook(runbook, { registry, stateDir: dir });
      assert.deepEqual(again.steps[0]?.plan?.notes, ['nothing to analyze']);
    });

    it('an include pattern that matches nothing (names are case-sensitive) blocks the plan instead of analyzing nothing', async () => {
      const db = await fresh(`CREATE SCHEMA "App Data"; CREATE TABLE "App Data"."Users" (id int) ${OFF}; INSERT INTO "App Data"."Users" VALUES (1);`);
      const { runbook, dir } = load(db, `    include: ['App Data.Users', 'app data.users']\n`);
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.deepEqual(result.steps[0]?.plan?.blockers, [
        'include pattern "app data.users" matches no relation here (patterns are schema.name, case-sensitive)',
      ]);
    });

    it('stages: three passes, statistics target 1, 10, then the default', async () => {
      const db = await fresh(`CREATE TABLE t (id int) ${OFF}; INSERT INTO t SELECT generate_series(1, 5000);`);
      const { runbook, dir } = load(db, '    stages: true\n');
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.deepEqual(
        (result.steps[0]?.plan?.actions ?? []).map((a) => (a.type === 'sql' ? a.sql : '')),
        [
          'SET default_statistics_target = 1',
          'ANALYZE "public"."t"',
          'SET default_statistics_target = 10',
          'ANALYZE "public"."t"',
          'RESET default_statistics_target',
          'ANALYZE "public"."t"',
        ],
      );
      await until('three analyzes counted', async () => {
        const [row] = await server.query<{ n: number }>("SELECT analyze_count::int AS n FROM pg_stat_user_tables WHERE relname = 't'", [], db);
        return row?.n === 3;
      });
      // The last pass used the default target: a histogram of up to 100 buckets, not 10.
      const [stats] = await server.query<{ buckets: number }>(
        "SELECT array_length(histogram_bounds, 1) AS buckets FROM pg_stats WHERE tablename = 't'",
        [],
        db,
      );
      assert.equal(stats?.buckets, 101);
    });

    it('jobs: 2 runs two ANALYZE backends at once', async () => {
      // Cost-based delay makes each ANALYZE slow enough to be seen.
      const db = await fresh(`
        CREATE TABLE big_1 (id int, v text) ${OFF}; INSERT INTO big_1 SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
        CREATE TABLE big_2 (id int, v text) ${OFF}; INSERT INTO big_2 SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;`);
      await server.query(`ALTER DATABASE ${db} SET vacuum_cost_delay = '2ms'; ALTER DATABASE ${db} SET vacuum_cost_limit = 1`);
      const { runbook, dir } = load(db, '    jobs: 2\n');
      let most = 0;
      let running = true;
      const watcher = (async () => {
        while (running) {
          const [row] = await server.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'ANALYZE %' AND state = 'active'",
            [db],
          );
          most = Math.max(most, row?.n ?? 0);
          await sleep(20);
        }
      })();
      const result = await runRunbook(runbook, { registry, stateDir: dir });
      running = false;
      await watcher;
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.equal(most, 2, 'two ANALYZE statements were seen running together');
    });

    it(`copyFrom ${version >= 18 ? 'copies pg_stats from the source, lists what it could not copy, and rollback clears it' : 'falls back to ANALYZE before PostgreSQL 18'}`, async () => {
      const schema = (idType: string) => `
        CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric) ${OFF};
        INSERT INTO orders SELECT g, (ARRAY['new','paid','shipped'])[g % 3 + 1], g % 97 FROM generate_series(1, 3000) g;
        CREATE TABLE lines (order_id int, sku text) ${OFF}; INSERT INTO lines SELECT g % 3000, 'sku-' || (g % 50) FROM generate_series(1, 6000) g;
        CREATE TABLE typed (id ${idType}) ${OFF}; INSERT INTO typed SELECT generate_series(1, 100);
        CREATE TABLE exprs (v text) ${OFF}; INSERT INTO exprs SELECT 'V' || g FROM generate_series(1, 100) g; CREATE INDEX ON exprs (lower(v));
        CREATE TABLE ext (a int, b int) ${OFF}; INSERT INTO ext SELECT g, g % 10 FROM generate_series(1, 100) g; CREATE STATISTICS ext_s ON a, b FROM ext;`;
      const sourceDb = await fresh(`${schema('int')} ANALYZE;`, source);
      const db = `a${++n}`;
      await server.query(`CREATE DATABASE ${db}`);
      await server.query(`${schema('bigint')} CREATE TABLE only_target (id int) ${OFF}; INSERT INTO only_target VALUES (1);`, [], db);
      // Two sessions: the copied relations are shared out between them, one restore statement each.
      const { runbook, dir } = load(db, '    copyFrom: src\n    jobs: 2\n', `  src: { kind: postgres, url: "${source.urlFor(sourceDb)}" }\n`);
      const outputs: string[] = [];
      const result = await runRunbook(runbook, {
        registry,
        stateDir: dir,
        onEvent: (e) => {
          if ('output' in e && typeof e.output === 'string') outputs.push(e.output);
        },
      });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const actions = Object.fromEntries(rowsOf(result).map((r) => [r.relation, r.action]));
      const statsOf = (on: TestServer, d: string) =>
        on.query(
          `SELECT attname, null_frac, n_distinct, most_common_vals::text AS mcv, histogram_bounds::text AS hist
             FROM pg_stats WHERE tablename IN ('orders', 'lines') ORDER BY tablename, attname`,
          [],
          d,
        );
      if (version >= 18) {
        assert.deepEqual(actions, {
          'public.lines': 'copy',
          'public.orders': 'copy',
          'public.typed': 'not copied (column id is integer on the source, bigint here): analyzed',
          'public.only_target': 'not copied (not on the source): analyzed',
          // Never analyzed here, so they lack only that: still not copied, or verify would find the index and the object without statistics.
          'public.exprs': 'not copied (expression index or extended statistics (PostgreSQL 18 cannot restore them)): analyzed',
          'public.ext': 'not copied (expression index or extended statistics (PostgreSQL 18 cannot restore them)): analyzed',
        });
        assert.deepEqual(await statsOf(server, db), await statsOf(source, sourceDb), 'pg_stats equal for every copied column');
        assert.equal((await statsOf(server, db)).length, 5);
        assert.match(outputs.join('\n'), /copied statistics of 2 relation\(s\), 5 column\(s\) in 2 session\(s\); 0 with warnings/);
        const back = await rollbackRun(result.runId, { registry, stateDir: dir });
        assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
        assert.deepEqual(await statsOf(server, db), [], 'rollback cleared the copied statistics');
        assert.deepEqual(await server.query("SELECT reltuples FROM pg_class WHERE relname = 'orders'", [], db), [{ reltuples: -1 }]);
      } else {
        assert.deepEqual(actions, {
          'public.lines': 'analyze',
          'public.orders': 'analyze',
          'public.typed': 'analyze',
          'public.only_target': 'analyze',
          'public.exprs': 'analyze',
          'public.ext': 'analyze',
        });
        assert.match(result.steps[0]?.plan?.notes?.[0] ?? '', /^copyFrom needs PostgreSQL 18 or later on the target \(this is 17\)/);
        assert.equal((await statsOf(server, db)).length, 5, 'analyzed instead');
      }
    });

    it(
      'copyFrom in batches over several sessions: every column of every relation has the source pg_stats row, field for field',
      { skip: version < 18 ? 'copyFrom needs PostgreSQL 18' : false },
      async () => {
        // Enough relations for 3 sessions x 2 batches each, and every kind of statistic a column can have:
        // scalars, MCVs and histograms, element statistics (arrays, tsvector), range histograms, inherited ones (partitioned).
        const tables = Array.from(
          { length: 14 },
          (_, i) => `
        CREATE TABLE w${i} (id int PRIMARY KEY, label text, amount numeric, at timestamptz, flag boolean, tags int[], doc tsvector, span int4range, extra jsonb) ${OFF};
        INSERT INTO w${i} SELECT g, 'l' || (g % (7 + ${i})), (g % 97) / 3.0, '2026-01-01'::timestamptz + g * interval '1 hour', g % 5 = 0,
            ARRAY[g % 10, g % 7], to_tsvector('simple', 'w' || (g % 13) || ' x' || (g % 3)), int4range(g, g + g % 20 + 1),
            jsonb_build_object('k', g % 4)
          FROM generate_series(1, ${500 + i * 150}) g;`,
        ).join('');
        const schema = `${tables}
        CREATE TABLE parted (id int, region text) PARTITION BY LIST (region);
        CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu') ${OFF};
        CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us') ${OFF};
        INSERT INTO parted SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 3000) g;
        CREATE TABLE analyzed_empty (id int) ${OFF};`;
        const sourceDb = await fresh(`${schema} ANALYZE;`, source);
        const db = await fresh(schema);
        const { runbook, dir } = load(db, '    copyFrom: src\n    jobs: 3\n', `  src: { kind: postgres, url: "${source.urlFor(sourceDb)}" }\n`);
        const outputs: string[] = [];
        const result = await runRunbook(runbook, {
          registry,
          stateDir: dir,
          onEvent: (e) => {
            if ('output' in e && typeof e.output === 'string') outputs.push(e.output);
          },
        });
        assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
        const actions = new Set(rowsOf(result).map((r) => r.action));
        assert.deepEqual([...actions], ['copy'], 'every relation copied, none analyzed instead');
        const stats = (on: TestServer, d: string) =>
          on.query<{ key: string; row: string }>(
            `SELECT format('%s.%s.%s/%s', schemaname, tablename, attname, inherited) AS key, s::text AS row
             FROM pg_stats s WHERE schemaname = 'public' ORDER BY 1`,
            [],
            d,
          );
        const [want, got] = await Promise.all([stats(source, sourceDb), stats(server, db)]);
        // 14 tables x 9 columns, the partitioned parent's 2 (inherited) and its partitions' 2 each.
        assert.equal(want.length, 14 * 9 + 2 + 2 * 2);
        assert.deepEqual(
          got.map((r) => r.key),
          want.map((r) => r.key),
          'the same columns have statistics',
        );
        assert.deepEqual(got, want, 'every field of every pg_stats row equal');
        const relationStats = (on: TestServer, d: string) =>
          on.query(
            `SELECT c.relname, c.relpages, c.reltuples, c.relallvisible FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`,
            [],
            d,
          );
        assert.deepEqual(await relationStats(server, db), await relationStats(source, sourceDb));
        assert.match(outputs.join('\n'), /copied statistics of 18 relation\(s\), 132 column\(s\) in 3 session\(s\); 0 with warnings/);

        // Rollback clears every batch, not only the last one recorded.
        const back = await rollbackRun(result.runId, { registry, stateDir: dir });
        assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
        assert.deepEqual(await stats(server, db), [], 'rollback cleared the statistics of every batch');
      },
    );
  });
}
