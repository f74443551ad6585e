/**
 * A fleet of 20 databases over two real PostgreSQL servers that ask for
 * passwords (one from the environment, one from a file): a runbook with a
 * transactional sql step, a sequence-reset and a confirm; a canary wave,
 * approvals between waves, a target with a planted blocker that halts its
 * wave (maxFailures 0), a stop (Ctrl-C) and resumes. Every effect is counted
 * in the databases, and every journal verifies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { chromiumPath } from '../../scripts/tools.js';
import {
  fleetStatus,
  journalKeyFromEnv,
  loadInventory,
  planFleet,
  registry,
  runFleet,
  runsDir,
  verifyJournal,
  type FleetEvent,
  type FleetRunResult,
} from '../../src/index.js';
import { FileFleetStore } from '../../src/fleet/store.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, startCutover, tempDir, writeRunbook } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { createTargets, inventoryText } from '../helpers/fleet.js';

const PASSWORD_A = 'fleet-secret-a-4711';
const PASSWORD_B = 'fleet-secret-b-0815';
const TARGETS = Array.from({ length: 20 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`);
const onA = (t: string) => Number(t.slice(1)) <= 10;

const RUNBOOK = `version: 1
name: tenant cutover
connections:
  db:
    kind: postgres
    url: \${DB_URL}
    password: \${secret:DB_PASSWORD}
steps:
  - id: migrate
    kind: sql
    connection: db
    sql:
      - INSERT INTO effects(step) VALUES ('migrate')
      - ALTER TABLE orders ADD COLUMN migrated boolean
    rollback:
      - ALTER TABLE orders DROP COLUMN migrated
      - DELETE FROM effects WHERE step = 'migrate'
  - id: sequences
    kind: sequence-reset
    connection: db
    from: data
  - id: switch
    kind: confirm
    message: Point this tenant's application at the new database?
  - id: done
    kind: sql
    connection: db
    sql: INSERT INTO effects(step) VALUES ('done')
    rollback: DELETE FROM effects WHERE step = 'done'
`;

describe('fleet: 20 databases on two servers', { timeout: 240_000 }, () => {
  let a: TestServer;
  let b: TestServer;
  let dir: string;
  let inventoryFile: string;
  let runbookFile: string;
  let stateDir: string;
  const server = (t: string) => (onA(t) ? a : b);

  before(async () => {
    [a, b] = (await Promise.all(
      [PASSWORD_A, PASSWORD_B].map((password) => startPostgres(18, { max_connections: '60' }, [], { auth: 'scram-sha-256', role: { user: 'app', password } })),
    )) as [TestServer, TestServer];
    dir = tempDir('cutover-fleet-');
    stateDir = path.join(dir, 'state');
    writeFileSync(path.join(dir, 'b.pw'), `${PASSWORD_B}\n`, { mode: 0o600 });
    await createTargets(TARGETS, server);
    inventoryFile = writeRunbook(
      dir,
      'tenants.yaml',
      inventoryText({
        name: 'tenants',
        approval: 'between-waves',
        maxFailures: 0,
        concurrencyGroups: [{ label: 'server', max: 2 }],
        targets: TARGETS.map((t) => ({
          name: t,
          labels: { server: onA(t) ? 'a' : 'b' },
          variables: { DB_URL: `postgres://app@127.0.0.1:${server(t).port}/${t}` },
          secrets: { DB_PASSWORD: onA(t) ? { env: 'FLEET_TEST_PW_A' } : { file: 'b.pw' } },
        })),
        waves: [
          { name: 'canary', targets: ['t01'] },
          { name: 'server-a', labels: { server: 'a' }, parallel: 3 },
          { name: 'rest', parallel: 4 },
        ],
      }),
    );
    runbookFile = writeRunbook(dir, 'cutover.yaml', RUNBOOK);
    process.env['FLEET_TEST_PW_A'] = PASSWORD_A;
  });

  after(async () => {
    delete process.env['FLEET_TEST_PW_A'];
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const effects = async (t: string) => {
    const rows = await server(t).query<{ step: string; n: string }>('SELECT step, count(*)::text AS n FROM effects GROUP BY step ORDER BY step', [], t);
    await server(t).release(t);
    return Object.fromEntries(rows.map((r) => [r.step, Number(r.n)]));
  };
  const plant = (t: string) =>
    server(t)
      .query('ALTER SEQUENCE orders_id_seq MAXVALUE 5', [], t)
      .finally(() => server(t).release(t));
  const unplant = (t: string) =>
    server(t)
      .query('ALTER SEQUENCE orders_id_seq NO MAXVALUE', [], t)
      .finally(() => server(t).release(t));

  /** Runs the fleet while approving what the test says, as an operator in another terminal would. */
  async function fleet(
    command: 'run' | 'resume',
    respond: (event: FleetEvent, approve: (name: string, step?: string) => void, stop: () => void) => void,
  ): Promise<{ result: FleetRunResult; events: FleetEvent[] }> {
    const inventory = loadInventory(inventoryFile);
    const store = new FileFleetStore(stateDir, inventory.name, runbookFile);
    const controller = new AbortController();
    const events: FleetEvent[] = [];
    const result = await runFleet(inventory, runbookFile, command, {
      registry,
      stateDir,
      jobs: 4,
      pollMs: 50,
      signal: controller.signal,
      onEvent: (event) => {
        events.push(event);
        // Approvals come from outside the event handler, a moment later, as from another process.
        respond(
          event,
          (name, step) => setTimeout(() => store.approve({ name, ...(step !== undefined ? { step } : {}), operator: 'tester' }), 20),
          () => {
            controller.abort();
          },
        );
      },
    });
    return { result, events };
  }

  test('plan: one matrix; the planted blocker is named, nothing changes', async () => {
    await plant('t15');
    const plan = await planFleet(loadInventory(inventoryFile), runbookFile, { registry, stateDir, jobs: 4 });
    assert.deepEqual(plan.steps, ['migrate', 'sequences', 'switch', 'done']);
    assert.deepEqual(plan.summary, { targets: 20, planned: 19, blocked: 1, failed: 0 });
    const t15 = plan.targets.find((t) => t.name === 't15');
    assert.equal(t15?.status, 'blocked');
    assert.equal(t15?.steps.find((s) => s.id === 'sequences')?.status, 'blocked');
    assert.match(t15?.steps.find((s) => s.id === 'sequences')?.reasons.join('\n') ?? '', /orders_id_seq/);
    assert.deepEqual(
      plan.waves.map((w) => [w.name, w.targets.length]),
      [
        ['canary', 1],
        ['server-a', 9],
        ['rest', 10],
      ],
    );
    for (const t of ['t01', 't15']) assert.deepEqual(await effects(t), {});

    // The CLI prints the same matrix, the blocker highlighted in its own list, and exits 1.
    const cli = await cutover(['fleet', 'plan', inventoryFile, runbookFile, '--state-dir', stateDir, '--jobs', '4'], { FLEET_TEST_PW_A: PASSWORD_A });
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stdout, /^ {2}target +wave +plan +migrate +sequences +switch +done$/m);
    assert.match(cli.stdout, /^ {2}t15 +rest +blocked +ok +BLOCKED +ok +ok$/m);
    assert.match(cli.stdout, /Blockers and failures:\n {2}t15 sequences: .*orders_id_seq/);
    assert.match(cli.stdout, /Summary: 20 targets in 3 wave\(s\) \(canary 1, server-a 9, rest 10\): 19 ready, 1 blocked, 0 failed to plan/);
    assert.doesNotMatch(cli.stdout + cli.stderr, new RegExp(`${PASSWORD_A}|${PASSWORD_B}`));
  });

  test('plan: a target that cannot be reached shows no step as ok, not even one that plans without a session', async () => {
    const small = writeRunbook(
      dir,
      'two.yaml',
      inventoryText({
        name: 'two',
        targets: [
          { name: 'up', variables: { DB_URL: `postgres://app@127.0.0.1:${a.port}/t01` }, secrets: { DB_PASSWORD: { env: 'FLEET_TEST_PW_A' } } },
          // A port nothing listens on: the server of `a`, one below.
          { name: 'down', variables: { DB_URL: `postgres://app@127.0.0.1:${a.port - 1}/t01` }, secrets: { DB_PASSWORD: { env: 'FLEET_TEST_PW_A' } } },
        ],
        waves: [{ name: 'all' }],
      }),
    );
    const plan = await planFleet(loadInventory(small), runbookFile, { registry, stateDir: path.join(dir, 'state-two') });
    const cells = (name: string) => plan.targets.find((t) => t.name === name)?.steps.map((st) => [st.id, st.status]);
    assert.deepEqual(cells('up'), [
      ['migrate', 'ok'],
      ['sequences', 'ok'],
      ['switch', 'ok'],
      ['done', 'ok'],
    ]);
    assert.deepEqual(cells('down'), [
      ['migrate', 'not-planned'],
      ['sequences', 'failed'],
      ['switch', 'ok'],
      ['done', 'not-planned'],
    ]);
    assert.match(
      plan.targets.find((t) => t.name === 'down')?.steps[0]?.reasons[0] ?? '',
      /^not checked: a connection it uses could not be opened \(see sequences\)$/,
    );
  });

  test('run: canary, approvals between waves, confirm steps wait for approve, the blocker halts its wave', async () => {
    const { result, events } = await fleet('run', (event, approve) => {
      if (event.type === 'target.waiting' && event.target === 't01') approve('t01', 'switch');
      if (event.type === 'wave.waiting') approve(event.wave);
    });
    assert.equal(result.outcome, 'halted');
    assert.equal(result.haltedWave, 'rest');
    const status = (t: string) => result.targets.find((o) => o.name === t)?.status;
    // The canary ran alone, before any gate opened; its confirm waited for its approval.
    const order = events.map((e) => `${e.type}:${'wave' in e ? e.wave : ''}:${'target' in e ? e.target : ''}`);
    assert.ok(order.indexOf('target.waiting::t01') < order.indexOf('target.approved::t01'));
    assert.ok(order.indexOf('target.finished:canary:t01') < order.indexOf('wave.waiting:server-a:'));
    assert.ok(order.indexOf('wave.approved:server-a:') < order.indexOf('target.started:server-a:t02'));
    for (const t of TARGETS.slice(0, 10)) assert.equal(status(t), 'succeeded', t);
    assert.equal(status('t15'), 'rolled-back');
    // maxFailures 0: once t15 had failed, nothing new started; what had not started is skipped and untouched.
    // (Which targets started before depends on the pace: server b runs 2 at a time, so t16, and t17 if t16
    // finished first, may have; t20 cannot have.)
    const failedAt = events.findIndex((e) => e.type === 'target.finished' && e.target === 't15');
    assert.ok(failedAt >= 0, 't15 finished');
    assert.deepEqual(
      events.slice(failedAt).flatMap((e) => (e.type === 'target.started' ? [e.target] : [])),
      [],
      'nothing started after t15 failed',
    );
    const neverStarted = TARGETS.filter((t) => !events.some((e) => e.type === 'target.started' && e.target === t));
    assert.ok(neverStarted.includes('t20'), `t20 never started (never started: ${neverStarted.join(', ')})`);
    for (const t of neverStarted) {
      assert.equal(status(t), 'skipped', t);
      assert.deepEqual(await effects(t), {}, t);
    }
    // Concurrency group: never more than 2 targets of one server at once.
    let runningB = 0;
    let maxB = 0;
    for (const e of events) {
      if (e.type === 'target.started' && !onA(e.target)) maxB = Math.max(maxB, ++runningB);
      if (e.type === 'target.finished' && !onA(e.target)) runningB--;
    }
    assert.ok(maxB <= 2, `at most 2 targets of server b at once, saw ${maxB}`);
    for (const t of TARGETS.slice(0, 10)) assert.deepEqual(await effects(t), { done: 1, migrate: 1 }, t);
    assert.deepEqual(await effects('t15'), {}, 'the blocked target was rolled back: no effect left');
  });

  test('resume, stopped by Ctrl-C at a safe point, then resumed to the end: every effect exactly once, every journal verifies', async () => {
    await unplant('t15');
    // Stop as soon as the first target starts: it reaches a safe point, nothing else starts.
    const stopped = await fleet('resume', (event, _approve, stop) => {
      if (event.type === 'target.started') stop();
    });
    assert.equal(stopped.result.outcome, 'stopped');
    const started = stopped.events.filter((e) => e.type === 'target.started');
    assert.equal(started.length, 1, 'one target started before the stop');

    const status = fleetStatus(loadInventory(inventoryFile, { resolveSecrets: false }), runbookFile, { registry, stateDir });
    assert.equal(status.runningPid, undefined);
    assert.equal(status.targets.filter((t) => t.status === 'succeeded').length >= 10, true);

    const finished = await fleet('resume', () => {});
    assert.equal(
      finished.result.outcome,
      'succeeded',
      JSON.stringify(finished.result.targets.filter((t) => t.status !== 'succeeded' && t.status !== 'skipped')),
    );
    for (const t of TARGETS) assert.deepEqual(await effects(t), { done: 1, migrate: 1 }, t);
    // Every sequence hands out the next free value.
    const next = await b.query<{ n: string }>("SELECT nextval('orders_id_seq')::text AS n", [], 't20');
    await b.release('t20');
    assert.equal(next[0]?.n, '11');

    // Every journal of every target verifies; one through the CLI as an operator would.
    const store = new FileFleetStore(stateDir, 'tenants', runbookFile);
    let journals = 0;
    const confirmedBy: string[] = [];
    for (const t of TARGETS) {
      const targetState = store.targetStateDir(t);
      for (const id of readdirSync(runsDir(targetState))) {
        const verified = verifyJournal(path.join(runsDir(targetState), id), { key: journalKeyFromEnv() });
        assert.equal(verified.ok, true, `${t} ${id}: ${JSON.stringify(verified)}`);
        journals++;
        for (const line of readFileSync(path.join(runsDir(targetState), id, 'journal.jsonl'), 'utf8')
          .split('\n')
          .filter(Boolean)) {
          const event = (JSON.parse(line) as { record: { event: { type: string; by?: string } } }).record.event;
          if (event.type === 'step.confirmed') confirmedBy.push(event.by ?? '');
        }
      }
    }
    assert.ok(journals >= 40, `a plan and a run per target at least, saw ${journals}`);
    // A confirm answered by cutover fleet approve is journaled as an approval (the fleet's log names who), not as a prompt.
    assert.ok(confirmedBy.length > 0, 'confirm steps were answered');
    assert.deepEqual([...new Set(confirmedBy)], ['approval']);
    const cli = await cutover(['audit', 'verify', '--state-dir', store.targetStateDir('t15')]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /journal verifies/);

    const json = await cutover(['fleet', 'status', inventoryFile, runbookFile, '--state-dir', stateDir, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { summary: Record<string, number>; lastOutcome: string; waves: { status: string }[] };
    assert.deepEqual(parsed.summary, { succeeded: 20 });
    assert.equal(parsed.lastOutcome, 'succeeded');

    // No password in anything the fleet wrote: its log, approvals, every journal.
    const files = (readdirSync(stateDir, { recursive: true }) as string[]).map((f) => path.join(stateDir, f)).filter((f) => statSync(f).isFile());
    assert.ok(files.some((f) => f.endsWith('fleet.jsonl')));
    for (const f of files) assert.doesNotMatch(readFileSync(f, 'utf8'), new RegExp(`${PASSWORD_A}|${PASSWORD_B}`), f);
  });

  test('the CLI across processes: confirm steps wait, status shows them, approve releases one, Ctrl-C stops the waiting ones at once, resume finishes', async () => {
    const names = ['c1', 'c2', 'c3'];
    for (const t of names) {
      await a.query(`CREATE DATABASE ${t}`);
      await a.query('CREATE TABLE effects (id serial PRIMARY KEY, step text NOT NULL); CREATE TABLE orders (id serial PRIMARY KEY)', [], t);
      await a.release(t);
    }
    const inv = writeRunbook(
      dir,
      'cli-fleet.yaml',
      `version: 1
name: cli-fleet
secrets:
  DB_PASSWORD: { env: FLEET_TEST_PW_A }
targets:
${names
  .map(
    (t) => `  - name: ${t}
    variables: { DB_URL: "postgres://app@127.0.0.1:${a.port}/${t}" }`,
  )
  .join('\n')}
`,
    );
    const env = { FLEET_TEST_PW_A: PASSWORD_A, CUTOVER_STATE_DIR: stateDir, CUTOVER_OPERATOR: 'alice' };
    const run = startCutover(['fleet', 'run', inv, runbookFile, '--jobs', '3'], env);
    let stderr = '';
    run.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await until('three targets waiting for approval', () => (stderr.match(/waits at step "switch"/g) ?? []).length === 3, 60_000);

    const waiting = await cutover(['fleet', 'status', inv, runbookFile, '--json'], env);
    assert.equal(waiting.code, 0, waiting.stderr);
    const live = JSON.parse(waiting.stdout) as { runningPid: number; targets: { name: string; status: string; steps: Record<string, string> }[] };
    assert.equal(live.runningPid, run.child.pid);
    assert.deepEqual(
      live.targets.map((t) => [t.name, t.status, t.steps['switch']]),
      names.map((t) => [t, 'waiting-approval', 'waiting']),
    );

    const watch = startCutover(['fleet', 'status', inv, runbookFile, '--watch'], env);
    let watchOut = '';
    watch.child.stdout?.on('data', (d: Buffer) => (watchOut += d.toString()));
    await until('the watcher to show the waiting targets', () => /c3 +all +waiting-approval/.test(watchOut), 60_000);
    const approved = await cutover(['fleet', 'approve', inv, runbookFile, 'c1', '--step', 'switch'], env);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /^approved target c1, step switch as alice at /);
    await until('c1 to finish', () => /c1: succeeded/.test(stderr), 60_000);

    run.child.kill('SIGINT');
    const stopped = await run.done;
    assert.equal(stopped.code, 5, stopped.stderr);
    assert.match(stopped.stderr, /SIGINT: no new target starts/);
    assert.match(stopped.stderr, /c2: interrupted/);
    assert.match(stopped.stdout, /fleet stopped: running targets stopped at a safe point/);
    assert.match(stopped.stdout, /^ {2}c2 +all +interrupted +done +done /m);
    // The watcher showed the waiting matrix, then the end, and left when the fleet's process did.
    const watched = await watch.done;
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /running now \(pid \d+\)[\s\S]*^ {2}c1 +all +waiting-approval /m);
    assert.match(watched.stdout, /last run: stopped[\s\S]*^ {2}c1 +all +succeeded /m);
    for (const t of names) {
      const rows = await a.query<{ n: number }>("SELECT count(*)::int AS n FROM effects WHERE step = 'done'", [], t);
      await a.release(t);
      assert.equal(rows[0]?.n, t === 'c1' ? 1 : 0, t);
    }

    // `run` again is refused (it already ran); approve the wave and resume.
    const again = await cutover(['fleet', 'run', inv, runbookFile], env);
    assert.equal(again.code, 4, again.stderr);
    assert.match(again.stderr, /has already run 3 target\(s\) .*continue it with: cutover fleet resume/);
    assert.equal((await cutover(['fleet', 'approve', inv, runbookFile, 'all'], env)).code, 0);
    const resumed = await cutover(['fleet', 'resume', inv, runbookFile, '--jobs', '2'], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /c2: resuming run /);
    assert.match(resumed.stdout, /fleet succeeded: every target succeeded/);
    for (const t of names) {
      const rows = await a.query<{ step: string; n: number }>('SELECT step, count(*)::int AS n FROM effects GROUP BY step ORDER BY step', [], t);
      await a.release(t);
      assert.deepEqual(
        rows.map((r) => [r.step, r.n]),
        [
          ['done', 1],
          ['migrate', 1],
        ],
        t,
      );
    }
    const unknown = await cutover(['fleet', 'approve', inv, runbookFile, 'nobody'], env);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr.trim(), `"nobody" is neither a wave nor a target of ${inv} (waves: all)`);
  });

  test("fleet report: one page that opens in Chromium, a timeline per wave, and a working link to each target's own report", async () => {
    const out = path.join(dir, 'report', 'fleet.html');
    const cli = await cutover(['fleet', 'report', inventoryFile, runbookFile, '--state-dir', stateDir, '--out', out]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /wrote .*fleet\.html and 20 target report\(s\)/);
    const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      const problems: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(pathToFileURL(out).href);
      assert.equal(await page.locator('h1').textContent(), `Fleet tenants: ${runbookFile}`);
      assert.equal(await page.locator('svg[aria-label^="timeline of wave"]').count(), 3);
      // t15 was rolled back once, stopped targets were interrupted once: every attempt is a bar.
      assert.ok((await page.locator('svg .bar').count()) > 20);
      assert.ok((await page.locator('svg .bar.undo[data-target="t15"]').count()) >= 1, 't15 shows its rolled-back attempt');
      const links = page.locator('tbody a');
      assert.equal(await links.count(), 20);
      const href = await links.nth(14).getAttribute('href');
      assert.ok(href !== null && existsSync(path.join(path.dirname(out), href)), `${href} exists`);
      await links.nth(14).click();
      await page.waitForLoadState();
      assert.match((await page.locator('h1').textContent()) ?? '', /tenant cutover: run /);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
    // Node 20's recursive mkdir spins for ever under /proc and ignores signals: the report's folder must fail at once instead.
    if (process.platform === 'linux') {
      const { child, done } = startCutover(['fleet', 'report', inventoryFile, runbookFile, '--state-dir', stateDir, '--out', '/proc/cutover-nope/fleet.html']);
      const kill = setTimeout(() => {
        child.kill('SIGKILL');
      }, 30_000);
      const refused = await done.finally(() => {
        clearTimeout(kill);
      });
      assert.equal(refused.code, 2, `exit ${refused.code} (null: it had to be killed); ${refused.stderr}`);
      assert.match(refused.stderr, /cannot mkdir \/proc\/cutover-nope: no such file or directory/);
    }
  });
});
