/**
 * The HTML report as a reviewer reads it, rendered in headless Chromium
 * (Debian's, through playwright-core) for a succeeded, a failed and a
 * rolled-back run on PostgreSQL 18: the summary comes first (outcome, the
 * failed step and why, window, steps by status), every step has its card
 * and its timeline row, the failed step's bar is as long as its journaled
 * duration (within 5%), and the rollback is drawn after it on the same axis.
 * Screenshots go to $CUTOVER_SCREENSHOT_DIR (default: a temp folder), for a
 * person to look at.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunReport } from '../../src/index.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { postgresRunbook, runbookFile } from '../helpers/runbook.js';
import { chromiumPath } from '../../scripts/tools.js';

const shots = process.env['CUTOVER_SCREENSHOT_DIR'] ?? tempDir('cutover-report-shots-');

describe('the HTML report in headless Chromium, PostgreSQL 18', () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    mkdirSync(shots, { recursive: true });
    server = await startPostgres(18);
    await server.query('CREATE DATABASE shop');
    await server.query('CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT generate_series(1, 100)', [], 'shop');
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Runs a runbook, renders its HTML report, opens it; returns the page, the report JSON and the screenshot path. */
  async function render(name: string, onFailure: 'rollback' | 'stop', steps: string): Promise<{ page: Page; report: RunReport; problems: string[] }> {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const { file } = runbookFile(
      postgresRunbook({
        name: 'shop cutover',
        head: `ticket: CHG-42\ndefaults: { onFailure: ${onFailure} }\n`,
        connections: { db: server.urlFor('shop') },
        steps,
      }),
      { dir },
    );
    const run = await cutover(['run', file, '--yes', '--label', name, '--state-dir', state]);
    assert.ok(run.code !== null && run.code !== 2, run.stderr);
    const html = path.join(dir, `${name}.html`);
    assert.equal((await cutover(['report', '--format', 'html', '--out', html, '--state-dir', state])).code, 0);
    const report = JSON.parse((await cutover(['report', '--format', 'json', '--state-dir', state])).stdout) as RunReport;
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (r) => r.url().startsWith('file:') || problems.push(`request: ${r.url()}`));
    await page.goto(pathToFileURL(html).href);
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
    await page.emulateMedia({ media: 'print' });
    await page.screenshot({ path: path.join(shots, `${name}-print.png`), fullPage: true });
    await page.emulateMedia({ media: 'screen' });
    return { page, report, problems };
  }

  /** Every step has a card and a timeline row; the summary comes first and says the outcome. */
  async function common(page: Page, report: RunReport, outcome: string): Promise<void> {
    const first = await page.locator('h1 + section').getAttribute('id');
    assert.equal(first, 'summary', 'the summary is the first thing after the title');
    assert.equal((await page.locator('#summary .outcome').textContent())?.trim(), outcome);
    assert.match((await page.locator('#summary').textContent()) ?? '', /ticket\s*CHG-42/);
    for (const s of report.steps) {
      assert.equal(await page.locator(`section.card[data-step="${s.id}"]`).count(), 1, `card of ${s.id}`);
      assert.equal(await page.locator(`svg g.step[data-step="${s.id}"]`).count(), 1, `timeline row of ${s.id}`);
    }
  }

  const num = async (page: Page, selector: string, attribute: string) => Number(await page.locator(selector).first().getAttribute(attribute));

  /** A segment's drawn length in milliseconds of the axis. */
  async function drawnMs(page: Page, selector: string): Promise<number> {
    const span = (await num(page, 'svg', 'data-end')) - (await num(page, 'svg', 'data-start'));
    return ((await num(page, selector, 'width')) / (await num(page, 'svg', 'data-width'))) * span;
  }

  it('a succeeded run: summary, window, a card and a row per step', async () => {
    const { page, report, problems } = await render(
      'succeeded',
      'rollback',
      `  - id: freeze
    kind: sql
    connection: db
    window: true
    sql: SELECT pg_sleep(0.3)
    rollback: SELECT 1
  - id: backfill
    kind: sql
    connection: db
    window: true
    sql: UPDATE orders SET note = 'x'
    verify: { query: "SELECT count(*) FROM orders WHERE note = 'x'", expect: 100 }
    rollback: UPDATE orders SET note = NULL
  - id: detach
    kind: sql
    connection: db
    sql: SELECT 2
`,
    );
    await common(page, report, 'succeeded');
    assert.match((await page.locator('#summary').textContent()) ?? '', /window\s*\d/);
    assert.equal(await page.locator('svg .seg.verify').count(), 1, 'only the step with a verify query has a verify segment');
    assert.equal(await page.locator('section.card.failed').count(), 0);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('a failed run (onFailure: stop): the failed step and its cause in the summary, its bar as long as it took, in red', async () => {
    const { page, report, problems } = await render(
      'failed',
      'stop',
      `  - id: freeze
    kind: sql
    connection: db
    sql: SELECT 1
    rollback: SELECT 1
  - id: slow-then-broken
    kind: sql
    connection: db
    sql: [ "SELECT pg_sleep(1.5)", "SELECT 1 / 0" ]
  - id: never
    kind: sql
    connection: db
    sql: SELECT 3
`,
    );
    await common(page, report, 'failed');
    const summary = (await page.locator('#summary').textContent()) ?? '';
    assert.match(summary, /Failed step:\s*slow-then-broken \(apply\): division by zero \(SQLSTATE 22012\)/);
    assert.doesNotMatch(await page.content(), /[A-Z][a-z]+Error\b/, 'no internal class name');
    const failed = report.steps.find((s) => s.id === 'slow-then-broken');
    assert.ok(failed?.phases.apply !== undefined && failed.phases.apply >= 1500);
    const drawn = await drawnMs(page, 'g.step[data-step="slow-then-broken"] .seg.apply.failed');
    assert.ok(Math.abs(drawn - failed.phases.apply) <= failed.phases.apply * 0.05, `drawn ${drawn}ms, took ${failed.phases.apply}ms`);
    assert.equal(await page.locator('g.step[data-step="never"] .seg').count(), 0, 'a step that did not run has no bar');
    assert.match((await page.locator('g.step[data-step="never"]').textContent()) ?? '', /not run/);
    assert.equal(await page.locator('section.card.failed[data-step="slow-then-broken"]').count(), 1);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('a rolled-back run: rollbacks drawn after the failure on the same axis, within it', async () => {
    const { page, report, problems } = await render(
      'rolled-back',
      'rollback',
      `  - id: add-column
    kind: sql
    connection: db
    sql: ALTER TABLE orders ADD COLUMN extra text
    rollback: [ "SELECT pg_sleep(0.3)", "ALTER TABLE orders DROP COLUMN extra" ]
  - id: inventory
    kind: confirm
    message: inventory taken?
  - id: broken
    kind: sql
    connection: db
    sql: SELECT 1 / 0
`,
    );
    await common(page, report, 'rolled-back');
    const failedSeg = 'g.step[data-step="broken"] .seg.failed';
    const failedEnd = (await num(page, failedSeg, 'x')) + (await num(page, failedSeg, 'width'));
    const undoSeg = 'g.step[data-step="add-column"] .seg.rollback';
    const undo = {
      x: await num(page, undoSeg, 'x'),
      end: (await num(page, undoSeg, 'x')) + (await num(page, undoSeg, 'width')),
      axisEnd: (await num(page, 'svg', 'data-left')) + (await num(page, 'svg', 'data-width')),
    };
    assert.ok(undo.x >= failedEnd - 0.5, 'the rollback comes after the failure');
    assert.ok(undo.end <= undo.axisEnd + 0.5, 'the rollback ends within the axis');
    assert.match((await page.locator('section.card[data-step="inventory"] .badge').first().textContent()) ?? '', /completed, nothing to undo/);
    assert.equal(await page.locator('section.card.undone[data-step="add-column"]').count(), 1);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
