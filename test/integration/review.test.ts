/**
 * Change review: a saved plan runs exactly as reviewed or stops with the
 * difference; a run's HTML report renders in a real headless Chromium with
 * no console errors and no network request, one timeline bar per step; two
 * rehearsals compare step by step with the projected window.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { journalFile, readJournal, type SavedPlan } from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { postgresRunbook, runbookFile } from '../helpers/runbook.js';
import { chromiumPath } from '../../scripts/tools.js';

for (const version of VERSIONS) {
  describe(`saved plans on PostgreSQL ${version}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startPostgres(version);
    });
    after(async () => {
      await server.stop();
    });

    it('a plan is executed exactly as saved, and refused with a diff naming the sequence once the state drifted', async () => {
      await server.query('CREATE DATABASE src');
      await server.query('CREATE DATABASE tgt');
      await server.query("CREATE SEQUENCE a; SELECT setval('a', 100)", [], 'src');
      await server.query('CREATE SEQUENCE a', [], 'tgt');
      const dir = tempDir();
      const state = path.join(dir, 'state');
      const { file: runbook } = runbookFile(
        postgresRunbook({
          name: 'reviewed',
          connections: { source: server.urlFor('src'), target: server.urlFor('tgt') },
          steps: `  - id: sequences
    kind: sequence-reset
    connection: target
    from: { connection: source }
`,
        }),
        { dir },
      );
      const saved = path.join(dir, 'plan.json');
      const planned = await cutover(['plan', runbook, '--out', saved, '--state-dir', state]);
      assert.equal(planned.code, 0, planned.stderr);
      const savedText = readFileSync(saved, 'utf8');
      assert.equal((JSON.parse(savedText) as SavedPlan).format, 'cutover-plan/2');

      // A plan saved by an older cutover kept the statements only: refused, with what to do.
      const older = path.join(dir, 'plan-v1.json');
      writeFileSync(older, savedText.replace('"cutover-plan/2"', '"cutover-plan/1"'));
      const refused = await cutover(['run', runbook, '--plan', older, '--yes', '--state-dir', state]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(
        refused.stderr,
        /is a saved plan of another cutover version \(format cutover-plan\/1; this version reads cutover-plan\/2\): plan again with cutover plan --out/,
      );

      // Another session moves the source sequence after the review.
      await server.query("SELECT setval('a', 200)", [], 'src');
      const drifted = await cutover(['run', runbook, '--plan', saved, '--yes', '--state-dir', state]);
      assert.equal(drifted.code, 1, drifted.stderr);
      assert.match(drifted.stderr, /this step planned now differs from the saved plan \(the state moved, or the plan file was edited\); nothing was done:/);
      assert.match(drifted.stderr, /sequences: public\.a: source next "101" -> "201"/);
      assert.match(
        drifted.stderr,
        /Next: plan again, review the new plan, then run it:\n {2}cutover plan \S+ --out plan\.json\n {2}cutover run \S+ --plan plan\.json/,
      );
      assert.deepEqual(await server.query('SELECT last_value, is_called FROM a', [], 'tgt'), [{ last_value: '1', is_called: false }], 'nothing was written');

      const fresh = path.join(dir, 'plan2.json');
      assert.equal((await cutover(['plan', runbook, '--out', fresh, '--state-dir', state])).code, 0);
      const tooOld = await cutover(['run', runbook, '--plan', fresh, '--max-plan-age', '0ms', '--yes', '--state-dir', state]);
      assert.equal(tooOld.code, 2);
      assert.match(tooOld.stderr, /older than the allowed/);
      const applied = await cutover(['run', runbook, '--plan', fresh, '--yes', '--state-dir', state, '--json']);
      assert.equal(applied.code, 0, applied.stderr);
      const result = JSON.parse(applied.stdout) as { runDir: string };
      const start = readJournal(result.runDir)[0]?.event;
      const savedPlan = JSON.parse(readFileSync(fresh, 'utf8')) as SavedPlan;
      assert.equal(start?.type === 'run.started' ? start.options.plan?.runId : undefined, savedPlan.runId);
      const journaled = readFileSync(journalFile(result.runDir), 'utf8');
      assert.ok(journaled.includes(JSON.stringify(savedPlan.steps[0]?.plan.actions)), 'the executed actions are the saved ones');
      assert.deepEqual(await server.query("SELECT nextval('a')::text AS v", [], 'tgt'), [{ v: '201' }]);
    });

    it('a plan saved against one server is refused on another: the same runbook, another address from the environment', async () => {
      for (const name of ['staging', 'production']) {
        await server.query(`CREATE DATABASE ${name}`);
        await server.query('CREATE TABLE t (v int)', [], name);
      }
      const dir = tempDir();
      const state = path.join(dir, 'state');
      const { file: runbook } = runbookFile(
        postgresRunbook({
          name: 'addresses from the environment',
          connections: { db: '${TARGET_URL}' },
          steps: `  - id: mark
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES (1)
`,
        }),
        { dir },
      );
      const saved = path.join(dir, 'plan.json');
      const planned = await cutover(['plan', runbook, '--out', saved, '--state-dir', state], { TARGET_URL: server.urlFor('staging') });
      assert.equal(planned.code, 0, planned.stderr);
      const refused = await cutover(['run', runbook, '--plan', saved, '--yes', '--state-dir', state], { TARGET_URL: server.urlFor('production') });
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `the saved plan was made for other servers; plan again against these:\\n {2}connection "db": planned for postgres@127\\.0\\.0\\.1:${server.port}/staging, now postgres@127\\.0\\.0\\.1:${server.port}/production`,
        ),
      );
      assert.deepEqual(await server.query('SELECT v FROM t', [], 'production'), [], 'nothing was written');
      const applied = await cutover(['run', runbook, '--plan', saved, '--yes', '--state-dir', state], { TARGET_URL: server.urlFor('staging') });
      assert.equal(applied.code, 0, applied.stderr);
      assert.deepEqual(await server.query('SELECT v FROM t', [], 'staging'), [{ v: 1 }]);
    });
  });
}

describe('reports on PostgreSQL 18', () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(18);
    await server.query('CREATE DATABASE shop');
    await server.query('CREATE TABLE orders (id int)', [], 'shop');
  });
  after(async () => {
    await server.stop();
  });

  const runbookWith = (dir: string, steps: string) =>
    runbookFile(postgresRunbook({ name: 'shop cutover', head: 'ticket: CHG-42\n', connections: { db: server.urlFor('shop') }, steps }), { dir }).file;

  it('the HTML report of a failed and rolled-back run renders in headless Chromium: no console error, no network request, one bar per step', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const runbook = runbookWith(
      dir,
      `  - id: add-column
    kind: sql
    connection: db
    window: true
    sql: ALTER TABLE orders ADD COLUMN note text
    rollback: ALTER TABLE orders DROP COLUMN note
  - id: backfill
    kind: sql
    connection: db
    sql: UPDATE orders SET note = '<script>alert(1)</script>'
    rollback: UPDATE orders SET note = NULL
  - id: broken
    kind: sql
    connection: db
    sql: SELECT 1 / 0
`,
    );
    const run = await cutover(['run', runbook, '--yes', '--state-dir', state, '--label', 'rehearsal-1']);
    assert.equal(run.code, 1, run.stderr);
    const html = path.join(dir, 'report.html');
    const report = await cutover(['report', '--format', 'html', '--out', html, '--state-dir', state]);
    assert.equal(report.code, 0, report.stderr);
    const text = readFileSync(html, 'utf8');
    assert.ok(!text.includes('<script>alert(1)</script>'), 'values are escaped');
    assert.match(text, /22012/, 'the error keeps its SQLSTATE');

    const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(html).href;
      await page.goto(url);
      await page.screenshot({ path: path.join(dir, 'report.png'), fullPage: true });
      assert.deepEqual(problems, []);
      assert.deepEqual(requests, [url], 'the page loads nothing but itself');
      assert.equal(await page.locator('svg g.step').count(), 3, 'one timeline row per step');
      assert.equal(await page.locator('svg .seg.failed').count(), 1);
      assert.equal(await page.locator('svg .seg.rollback').count(), 2, 'the two rolled-back steps show their rollback');
      assert.ok(existsSync(path.join(dir, 'report.png')));
      await page
        .locator('th.sortable')
        .first()
        .click()
        .catch(() => undefined);
      assert.deepEqual(problems, [], 'sorting raises nothing');
    } finally {
      await browser.close();
    }
  });

  it('report --compare of two rehearsals shows both durations per step and the projected window; runs lists them', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const runbook = runbookWith(
      dir,
      `  - id: freeze
    kind: sql
    connection: db
    window: true
    sql: SELECT pg_sleep(0.05)
  - id: copy
    kind: sql
    connection: db
    window: true
    sql: SELECT pg_sleep(0.1)
  - id: report-back
    kind: sql
    connection: db
    sql: SELECT 1
`,
    );
    const ids: string[] = [];
    for (const label of ['rehearsal-1', 'rehearsal-2']) {
      const r = await cutover(['run', runbook, '--yes', '--json', '--state-dir', state, '--label', label, '--environment', 'staging']);
      assert.equal(r.code, 0, r.stderr);
      ids.push((JSON.parse(r.stdout) as { runId: string }).runId);
    }
    const md = await cutover(['report', '--compare', ...ids, '--state-dir', state]);
    assert.equal(md.code, 0, md.stderr);
    assert.match(md.stdout, /^# shop cutover: rehearsal-1 vs rehearsal-2$/m);
    for (const step of ['freeze (window)', 'copy (window)', 'report-back']) {
      assert.match(md.stdout, new RegExp(`^\\| ${step.replace(/[()]/g, '\\$&')} \\| \\d+ms \\| \\d+ms \\| [+-]\\d+ms \\|`, 'm'));
    }
    assert.match(
      md.stdout,
      /Projected window \(first to last step marked `window: true`, sum of their plan, apply and verify times\): rehearsal-1 \d+ms, rehearsal-2 \d+ms/,
    );
    const html = await cutover(['report', '--compare', ...ids, '--format', 'html', '--state-dir', state]);
    assert.match(html.stdout, /Projected window/);
    const runs = await cutover(['runs', '--json', '--state-dir', state]);
    const listed = JSON.parse(runs.stdout) as { runId: string; label: string; environment: string; status: string }[];
    assert.deepEqual(
      listed.map((r) => [r.runId, r.label, r.environment, r.status]),
      [
        [ids[1], 'rehearsal-2', 'staging', 'succeeded'],
        [ids[0], 'rehearsal-1', 'staging', 'succeeded'],
      ],
    );
  });
});
