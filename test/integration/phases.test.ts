/**
 * Step times include planning: a compare step does its work while planning,
 * so a compare held up for N seconds shows about N seconds in the live list,
 * `status`, the report and `report --compare`, and the projected window
 * (sum of the window steps' phase times) equals the window measured from the
 * journal within 5%. A run that did not complete every window step gets no
 * projected window, only "incomplete: k of n window steps ran".
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { readJournal, type RunReport } from '../../src/index.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, startCutover, tempDir } from '../helpers/cli.js';
import { postgresRunbook, runbookFile } from '../helpers/runbook.js';
import { until } from '../helpers/wait.js';

/** `2.1s` or `340ms` as printed, in milliseconds. */
function parsed(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text);
  assert.ok(m, `a duration: ${text}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

describe('phase times on PostgreSQL 18', () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(18);
    for (const db of ['src', 'tgt']) {
      await server.query(`CREATE DATABASE ${db}`);
      await server.query('CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)', [], db);
    }
  });
  after(async () => {
    await server.stop();
  });

  const runbook = (dir: string, extra = '') =>
    runbookFile(
      postgresRunbook({
        name: 'phases',
        connections: { source: server.urlFor('src'), target: server.urlFor('tgt') },
        steps: `  - id: freeze
    kind: sql
    connection: target
    window: true
    sql: SELECT pg_sleep(0.2)
    rollback: SELECT 1
  - id: compare
    kind: compare
    source: source
    target: target
    window: true
  - id: finish
    kind: sql
    connection: target
    window: true
    sql: SELECT 1
    rollback: SELECT 1
${extra}`,
      }),
      { dir },
    ).file;

  it('a compare held up while planning shows its true time everywhere, and the projected window is the real one', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const file = runbook(dir);
    // Another session holds the target table: the compare's count waits for it, inside planning.
    const holder = new pg.Client({ connectionString: server.urlFor('tgt') });
    await holder.connect();
    const HELD_MS = 3000;
    let run;
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      run = startCutover(['run', file, '--yes', '--state-dir', state]);
      await until(
        'the compare to wait for the lock',
        async () => {
          const rows = await server.query("SELECT 1 FROM pg_stat_activity WHERE datname = 'tgt' AND wait_event_type = 'Lock'", [], 'tgt');
          return rows.length > 0;
        },
        60_000,
      );
      await sleep(HELD_MS);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    const done = await run.done;
    assert.equal(done.code, 0, done.stderr);

    const records = readJournal(path.join(state, 'runs', (/run (\S+): succeeded/.exec(done.stdout) ?? [])[1] ?? ''));
    const planned = records.find((r) => r.event.type === 'step.planned' && r.event.stepId === 'compare')?.event;
    assert.ok(planned?.type === 'step.planned' && planned.durationMs >= HELD_MS, 'the journal holds the planning time');
    const runId = records[0]?.event.type === 'run.started' ? records[0].event.runId : '';

    // The live list (plain lines without a terminal): the step with its phases.
    const live = /compare \[(\S+): plan (\S+), apply (\S+)\]/.exec(done.stdout);
    assert.ok(live, done.stdout);
    assert.ok(parsed(live[1] ?? '') >= HELD_MS && parsed(live[2] ?? '') >= HELD_MS, live[0]);

    const status = await cutover(['status', runId, '--state-dir', state]);
    assert.equal(status.code, 0, status.stderr);
    const shown = /compare: completed \[(\S+): plan (\S+), apply \S+\]/.exec(status.stdout);
    assert.ok(shown && parsed(shown[1] ?? '') >= HELD_MS, status.stdout);
    assert.match(status.stdout, /freeze: completed \[\S+: plan \S+, apply \S+\]/, 'sql steps have no verify: none is claimed');

    const json = await cutover(['report', runId, '--format', 'json', '--state-dir', state]);
    const report = JSON.parse(json.stdout) as RunReport;
    const compare = report.steps.find((s) => s.id === 'compare');
    assert.ok(compare?.durationMs !== undefined && compare.durationMs >= HELD_MS);
    assert.equal(compare.durationMs, (compare.phases.plan ?? 0) + (compare.phases.apply ?? 0) + (compare.phases.verify ?? 0));

    // The real window, from the journal alone: the first window step's planning start to the last one's end.
    const freezePlanned = records.find((r) => r.event.type === 'step.planned' && r.event.stepId === 'freeze');
    const finishDone = records.find((r) => r.event.type === 'step.completed' && r.event.stepId === 'finish');
    assert.ok(freezePlanned?.event.type === 'step.planned' && finishDone);
    const real = Date.parse(finishDone.ts) - (Date.parse(freezePlanned.ts) - freezePlanned.event.durationMs);
    const projected = report.window?.projectedMs;
    assert.ok(projected !== null && projected !== undefined);
    assert.ok(Math.abs(projected - real) <= real * 0.05, `projected ${projected}ms, real ${real}ms`);
    assert.equal(report.window?.elapsedMs, real);

    const md = await cutover(['report', runId, '--state-dir', state]);
    const row = /^\| compare \(window\) \| completed \| (\S+) \(plan (\S+), apply \S+\) \|/m.exec(md.stdout);
    assert.ok(row && parsed(row[1] ?? '') >= HELD_MS, md.stdout);

    const compared = await cutover(['report', '--compare', runId, runId, '--state-dir', state]);
    assert.equal(compared.code, 0, compared.stderr);
    const line = /^\| compare \(window\) \| (\S+) \|/m.exec(compared.stdout);
    assert.ok(line && parsed(line[1] ?? '') >= HELD_MS, compared.stdout);
    const windowShown = /Projected window .*?\): \S+ (\S+), /.exec(compared.stdout);
    assert.ok(windowShown, compared.stdout);
    assert.ok(Math.abs(parsed(windowShown[1] ?? '') - real) <= real * 0.05, windowShown[0]);
  });

  it('a run that did not complete every window step has no projected window', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const file = runbook(
      dir,
      `  - id: broken
    kind: sql
    connection: target
    window: true
    sql: SELECT 1 / 0
  - id: last
    kind: sql
    connection: target
    window: true
    sql: SELECT 1
`,
    );
    const run = await cutover(['run', file, '--yes', '--json', '--state-dir', state]);
    assert.equal(run.code, 1, run.stderr);
    const runId = (JSON.parse(run.stdout) as { runId: string }).runId;
    const report = JSON.parse((await cutover(['report', runId, '--format', 'json', '--state-dir', state])).stdout) as RunReport;
    assert.deepEqual(report.window, { total: 5, completed: 3, projectedMs: null, elapsedMs: null });
    const compared = await cutover(['report', '--compare', runId, runId, '--state-dir', state]);
    assert.match(compared.stdout, /Projected window .*?\): \S+ incomplete: 3 of 5 window steps ran, \S+ incomplete: 3 of 5 window steps ran/);
    const md = await cutover(['report', runId, '--state-dir', state]);
    assert.match(md.stdout, /incomplete: 3 of 5 window steps ran/);
  });
});
