/**
 * plan-check on real PostgreSQL 17 -> 18, both with pg_stat_statements: a
 * workload of 20 query shapes runs on the source, and targets are built (a)
 * the same, (b) without one index, (c) without statistics on one large table
 * until an analyze step, (d) without a function. Tables hold at most 30,000
 * rows, so ANALYZE reads every row and both sides get the same statistics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { jsonText, planRunbook, registry, runRunbook, type RunResult } from '../../src/index.js';
import { preflight } from '../../src/engine/preflight.js';
import { startAll, type TestServer } from '../helpers/pg.js';
import { loadRunbookText, postgresRunbook } from '../helpers/runbook.js';
import { tempDir, writeRunbook } from '../helpers/cli.js';

const SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
  CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL UNIQUE, category text NOT NULL, price numeric(10, 2) NOT NULL);
  CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, created date NOT NULL, status text NOT NULL, amount numeric(10, 2) NOT NULL);
  CREATE TABLE items (order_id bigint NOT NULL REFERENCES orders, product_id int NOT NULL REFERENCES products, qty int NOT NULL, PRIMARY KEY (order_id, product_id));
  CREATE INDEX orders_customer ON orders (customer_id);
  CREATE INDEX orders_created ON orders (created);
  CREATE INDEX products_category ON products (category);
  CREATE FUNCTION order_total(o bigint) RETURNS numeric LANGUAGE sql STABLE AS 'SELECT sum(i.qty * p.price) FROM items i JOIN products p ON p.id = i.product_id WHERE i.order_id = o';`;

const DATA = `
  INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4] FROM generate_series(1, 2000) g;
  INSERT INTO products SELECT g, 'SKU-' || g, 'cat' || (g % 40), 1 + (g % 97) FROM generate_series(1, 1000) g;
  INSERT INTO orders SELECT g, 1 + (g * 7) % 2000, date '2026-01-01' + (g % 300), (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], (g % 500) / 10.0 FROM generate_series(1, 30000) g;
  INSERT INTO items SELECT 1 + (g % 30000), 1 + (g * 13) % 1000, 1 + g % 5 FROM generate_series(1, 30000) g ON CONFLICT DO NOTHING;`;

/** Twenty query shapes the application runs, with parameters the way a driver sends them. */
const WORKLOAD: readonly [string, readonly unknown[]][] = [
  ['SELECT * FROM orders WHERE customer_id = $1', [17]],
  ['SELECT id, amount FROM orders WHERE customer_id = $1 ORDER BY created DESC LIMIT 10', [42]],
  ['SELECT count(*) FROM orders WHERE customer_id = $1 AND status = $2', [5, 'paid']],
  ['SELECT * FROM orders WHERE id = $1', [123]],
  ['SELECT * FROM customers WHERE id = $1', [9]],
  ['SELECT * FROM products WHERE sku = $1', ['SKU-7']],
  ['SELECT id, price FROM products WHERE category = $1', ['cat3']],
  ['SELECT * FROM orders WHERE created = $1', ['2026-03-01']],
  ['SELECT count(*) FROM orders WHERE created BETWEEN $1 AND $2', ['2026-02-01', '2026-02-07']],
  ['SELECT status, count(*) FROM orders GROUP BY status', []],
  ['SELECT region, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY region', []],
  ['SELECT i.product_id, i.qty FROM items i WHERE i.order_id = $1', [77]],
  ['SELECT p.sku, i.qty FROM items i JOIN products p ON p.id = i.product_id WHERE i.order_id = $1', [88]],
  ['SELECT c.name, o.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1', [33]],
  ['SELECT max(amount) FROM orders', []],
  ['SELECT * FROM orders ORDER BY created DESC LIMIT 20', []],
  ['SELECT count(*) FROM items', []],
  ['SELECT category, count(*) FROM products GROUP BY category ORDER BY 2 DESC', []],
  ['SELECT order_total($1)', [55]],
  ['SELECT o.id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.order_id = o.id) LIMIT 5', []],
];

describe('plan-check on PostgreSQL 17 -> 18 with pg_stat_statements', () => {
  let source!: TestServer;
  let target!: TestServer;

  before(async () => {
    const settings = { shared_preload_libraries: 'pg_stat_statements', autovacuum: 'off', 'pg_stat_statements.track': 'top' };
    const servers = await startAll([
      { version: 17, settings },
      { version: 18, settings },
    ]);
    [source, target] = servers as [TestServer, TestServer];
    await source.query('CREATE DATABASE shop');
    await source.query(`CREATE EXTENSION pg_stat_statements; ${SCHEMA} ${DATA} ANALYZE`, [], 'shop');
    await source.release('shop');
    // The application runs as its own role; statements of the runbook's role (postgres here) are left out by default.
    await source.query('CREATE ROLE shop_app LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO shop_app', [], 'shop');
    await source.release('shop');
    const client = new pg.Client({ connectionString: source.urlFor('shop').replace('//postgres@', '//shop_app@') });
    await client.connect();
    for (let round = 0; round < 3; round++) for (const [sql, params] of WORKLOAD) await client.query(sql, [...params]);
    await client.end();
    for (const db of ['same', 'noindex', 'nostats', 'nofunc', 'fromfile']) {
      await target.query(`CREATE DATABASE ${db}`);
      await target.query(`${SCHEMA} ${DATA}`, [], db);
    }
    await target.query('ANALYZE', [], 'same');
    await target.query('ANALYZE', [], 'fromfile');
    await target.query('DROP INDEX orders_customer; ANALYZE', [], 'noindex');
    // Everything analyzed but orders, as after a load that nothing analyzed yet.
    await target.query('ANALYZE customers; ANALYZE products; ANALYZE items', [], 'nostats');
    await target.query('DROP FUNCTION order_total(bigint); ANALYZE', [], 'nofunc');
    for (const db of ['same', 'noindex', 'nostats', 'nofunc', 'fromfile']) await target.release(db);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  /** The plan-check step without its queries line. */
  const PLANS_STEP = '  - id: plans\n    kind: plan-check\n    source: old\n    target: new\n';
  const runbook = (db: string, fields = '    queries: { topStatements: 20 }\n', extra = '') =>
    loadRunbookText(
      postgresRunbook({
        name: 'plan-check',
        connections: { old: source.urlFor('shop'), new: target.urlFor(db) },
        steps: `${extra}${PLANS_STEP}${fields}`,
      }),
      { name: 'r.yaml' },
    );
  interface Judged {
    readonly query: string;
    readonly sql: string;
    readonly verdict: string;
    readonly reasons: readonly string[];
    readonly sourceShape: readonly string[];
  }
  /** The step's table rows: what --json and reports carry beside the columns shown. */
  const judged = (result: RunResult, id = 'plans'): Judged[] =>
    (result.steps.find((s) => s.id === id)?.plan?.tables?.[0]?.rows ?? []).map((row) => ({
      query: jsonText(row['name']),
      sql: jsonText(row['sql']),
      verdict: jsonText(row['verdict']),
      reasons: Array.isArray(row['reasons']) ? row['reasons'].map(String) : [],
      sourceShape: Array.isArray(row['sourceShape']) ? row['sourceShape'].map(String) : [],
    }));
  const verdicts = (rows: readonly Judged[]) => rows.map((r) => [r.sql, r.verdict]);

  it('(a) the same indexes and statistics: all 19 shapes that read tables plan the same or better', async () => {
    const { runbook: r, dir } = runbook('same');
    const result = await planRunbook(r, { registry, stateDir: dir });
    assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
    const rows = judged(result);
    assert.equal(rows.length, 19, JSON.stringify(verdicts(rows)));
    // The function call scans no table; it is compared only by whether the target can plan it at all (see (d)).
    const skipped = result.steps[0]?.plan?.tables?.[1]?.rows.map((row) => [jsonText(row['query']).replace(/^queryid -?\d+: /, ''), row['reason']]) ?? [];
    assert.deepEqual(
      skipped.filter(([q]) => jsonText(q).startsWith('SELECT order_total')),
      [['SELECT order_total($1)', 'reads no table, and plans on the target']],
    );
    // The set-up's DDL and inserts ran as postgres, the runbook's own role: left out, and the plan says so.
    assert.deepEqual(
      skipped.filter(([q]) => /^(CREATE|INSERT|ANALYZE)/.test(jsonText(q))),
      [],
    );
    assert.ok(
      result.steps[0]?.plan?.notes?.includes(
        'statements run by postgres (the role this runbook connects as) are left out; name queries.roles to choose whose statements count',
      ),
    );
    for (const row of rows) assert.ok(row.verdict === 'same' || row.verdict === 'improved', `${row.sql}: ${row.verdict} ${row.reasons.join('; ')}`);
  });

  it('a role in queries.roles that does not exist blocks the plan: a typo would compare nothing and pass', async () => {
    const { runbook: r, dir } = runbook('same', '    queries: { topStatements: 20, roles: [postgres, shop_ap] }\n');
    const result = await planRunbook(r, { registry, stateDir: dir });
    assert.equal(result.status, 'failed');
    assert.equal(result.steps[0]?.plan?.blockers?.join('\n'), 'queries.roles: no role "shop_ap" on the source');
  });

  it('(b) one index missing: exactly the queries that used it regress, naming the index', async () => {
    const { runbook: r, dir } = runbook('noindex');
    const result = await planRunbook(r, { registry, stateDir: dir });
    assert.equal(result.status, 'failed');
    const rows = judged(result);
    const usedIt = rows.filter((row) => row.sourceShape.some((s) => s.includes('using public.orders(customer_id)'))).map((row) => row.sql);
    assert.ok(usedIt.length >= 2, `the workload uses orders(customer_id): ${JSON.stringify(usedIt)}`);
    assert.deepEqual(
      rows
        .filter((row) => row.verdict === 'regressed')
        .map((row) => row.sql)
        .sort(),
      [...usedIt].sort(),
      JSON.stringify(verdicts(rows)),
    );
    for (const row of rows.filter((x) => x.verdict === 'regressed')) {
      assert.ok(
        row.reasons.some((why) => /where the source used index public\.orders\(customer_id\)/.test(why) || /cost/.test(why)),
        row.reasons.join('; '),
      );
    }
    assert.match(result.steps[0]?.error?.message ?? '', /regressed: .*public\.orders\(customer_id\)/);
  });

  it('(c) no statistics on orders: the queries on it are flagged; after the analyze step every one is the same', async () => {
    const { runbook: r, dir } = runbook('nostats');
    const before = await planRunbook(r, { registry, stateDir: dir });
    const all = judged(before);
    const flagged = all.filter((row) => row.reasons.some((why) => why.includes('public.orders has no statistics on the target')));
    assert.ok(flagged.length >= 5, JSON.stringify(verdicts(all)));
    for (const row of flagged) assert.equal(row.verdict, 'regressed');
    assert.ok(
      all.every((row) => flagged.includes(row) || !row.sourceShape.some((s) => s.includes('public.orders'))),
      'only queries on orders are flagged',
    );
    const { runbook: withAnalyze, dir: dir2 } = runbook(
      'nostats',
      '    queries: { topStatements: 20 }\n',
      '  - id: statistics\n    kind: analyze\n    connection: new\n    onlyMissing: true\n',
    );
    const run = await runRunbook(withAnalyze, { registry, stateDir: dir2 });
    assert.equal(run.status, 'succeeded', JSON.stringify(run.steps.map((s) => s.error)));
    const rows = judged(run);
    assert.equal(rows.length, 19);
    for (const row of rows) assert.ok(row.verdict === 'same' || row.verdict === 'improved', `${row.sql}: ${row.verdict} ${row.reasons.join('; ')}`);
  });

  it('(d) a function missing on the target: that query is an error, with the SQLSTATE', async () => {
    const { runbook: r, dir } = runbook('nofunc', '    queries: { topStatements: 20 }\n    failOn: error\n');
    const result = await planRunbook(r, { registry, stateDir: dir });
    assert.equal(result.status, 'failed');
    const errors = judged(result).filter((row) => row.verdict === 'error');
    assert.deepEqual(
      errors.map((row) => row.sql),
      ['SELECT order_total($1)'],
    );
    assert.match(errors[0]?.reasons[0] ?? '', /does not plan on the target: function order_total\(unknown\) does not exist \(SQLSTATE 42883\)/);
  });

  it('a query file: $n parameters plan as a generic plan on both sides; statements that write or lock are skipped, never run', async () => {
    const dir = tempDir();
    writeRunbook(
      dir,
      'queries.sql',
      `-- name: recent-orders
SELECT id, amount FROM orders WHERE customer_id = $1 AND created > $2 ORDER BY created DESC;
-- name: purge
WITH gone AS (DELETE FROM orders WHERE id = $1 RETURNING id) SELECT count(*) FROM gone;
-- name: mark-paid
UPDATE orders SET status = 'paid' WHERE id = $1;
-- name: lock-one
SELECT * FROM orders WHERE id = $1 FOR UPDATE;
`,
    );
    const text = postgresRunbook({
      name: 'plan-check file',
      connections: { old: source.urlFor('shop'), new: target.urlFor('fromfile') },
      steps: `${PLANS_STEP}    queries: { file: queries.sql }\n`,
    });
    const { runbook: fromFile } = loadRunbookText(text, { dir, name: 'r.yaml' });
    const rowsBefore = await source.query<{ n: number; paid: number }>(
      "SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'paid')::int AS paid FROM orders",
      [],
      'shop',
    );
    const result = await runRunbook(fromFile, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    const plan = result.steps[0]?.plan;
    assert.deepEqual(
      judged(result).map((row) => [row.query, row.verdict]),
      [['recent-orders', 'same']],
    );
    assert.deepEqual(
      plan?.tables?.[1]?.rows.map((row) => [jsonText(row['query']).split(':')[0], row['reason']]),
      [
        ['purge', 'modifies data (a data-modifying WITH): never planned here'],
        ['mark-paid', 'UPDATE statement: only queries are planned'],
        ['lock-one', 'takes row locks (FOR UPDATE / FOR SHARE)'],
      ],
    );
    assert.deepEqual(await source.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'paid')::int AS paid FROM orders", [], 'shop'), rowsBefore);
    await source.release('shop');
  });

  it('cutover check: pg_stat_statements installed and readable; without it, check and the plan say how to install it', async () => {
    const { runbook: r, dir } = runbook('same');
    const ready = await preflight(r, { registry });
    assert.deepEqual(
      ready.steps[0]?.findings.map((f) => [f.severity, f.check]),
      [['ok', 'pg_stat_statements']],
    );
    // A role that is not a superuser (shared_preload_libraries is hidden from it) is checked too, and told what it misses.
    const text = postgresRunbook({
      name: 'as app',
      connections: { old: source.urlFor('shop').replace('//postgres@', '//shop_app@'), new: target.urlFor('same') },
      steps: `${PLANS_STEP}    queries: { topStatements: 5 }\n`,
    });
    const asApp = await preflight(loadRunbookText(text, { name: 'r.yaml' }).runbook, { registry });
    assert.deepEqual(
      asApp.steps[0]?.findings.map((f) => [f.severity, f.message]),
      [['warning', "this role sees only its own statements' text (others show as <insufficient privilege>)"]],
    );
    await source.query('DROP EXTENSION pg_stat_statements', [], 'shop');
    try {
      const missing = await preflight(r, { registry });
      assert.equal(missing.ok, false);
      assert.deepEqual(missing.steps[0]?.findings, [
        {
          severity: 'error',
          check: 'pg_stat_statements',
          message: 'not installed in the source database',
          fix: 'CREATE EXTENSION pg_stat_statements in the source database',
        },
      ]);
      const result = await planRunbook(r, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.match(result.steps[0]?.error?.message ?? '', /pg_stat_statements is not installed in the source database: CREATE EXTENSION pg_stat_statements/);
    } finally {
      await source.query('CREATE EXTENSION pg_stat_statements', [], 'shop');
      await source.release('shop');
    }
  });
});
