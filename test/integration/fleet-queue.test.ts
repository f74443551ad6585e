/**
 * Queue mode on real PostgreSQL: the queue database is a database on one of
 * the two test servers; six targets over both servers; two worker processes
 * running the built CLI. Worker A dies by SIGKILL at a known point of its
 * first target (the failpoint after the `load` step's COMMIT and its
 * `step.applied` record, which A wrote to its working copy but not yet to
 * the queue database: that record waits for the next line that precedes a
 * change); worker B takes the target over within the
 * documented bound and resumes it from the journal kept in the queue
 * database. Approvals (a wave gate and confirm steps) are given by separate
 * `cutover fleet approve --queue` processes. Every effect is counted in the
 * target databases, every journal verifies with `cutover audit verify
 * --queue`, and nothing of ours is left in a target database.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import pg from 'pg';
import { errorMessage, LeaseLostError, loadInventory, queueFleetStore, takeoverBoundSeconds } from '../../src/index.js';
import { openQueueDb } from '../../src/fleet/queue-store.js';
import { QUEUE_CREATE_LOCK, QUEUE_NAME, startBoss } from '../../src/fleet/queue.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, startCutover, tempDir, writeRunbook, type CliResult } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { createTargets, inventoryText } from '../helpers/fleet.js';

const TARGETS = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6'];
const onA = (t: string) => Number(t.slice(1)) % 2 === 1;
const TIMING = { takeoverAfterSeconds: 4, maintenanceSeconds: 1, pollingSeconds: 0.5, retryDelaySeconds: 1 };
const TIMING_ARGS = ['--takeover-after', '4', '--maintenance-interval', '1', '--poll-interval', '0.5', '--retry-delay', '1'];

const RUNBOOK = `version: 1
name: queue tenant cutover
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
  - id: load
    kind: sql
    connection: db
    sql:
      - INSERT INTO effects(step) VALUES ('load')
      - ALTER TABLE orders ADD COLUMN moved boolean
    rollback:
      - ALTER TABLE orders DROP COLUMN moved
      - DELETE FROM effects WHERE step = 'load'
  - id: switch
    kind: confirm
    message: Point this tenant's application at the new database?
  - id: done
    kind: sql
    connection: db
    sql: INSERT INTO effects(step) VALUES ('done')
    rollback: DELETE FROM effects WHERE step = 'done'
`;

describe('fleet on a queue: two workers, one killed mid-target', { timeout: 300_000 }, () => {
  let a: TestServer;
  let b: TestServer;
  let dir: string;
  let inventoryFile: string;
  let runbookFile: string;
  let queueUrl: string;
  let queue: pg.Client;
  const server = (t: string) => (onA(t) ? a : b);
  const children: ReturnType<typeof startCutover>[] = [];

  before(async () => {
    [a, b] = await Promise.all([startPostgres(18, { max_connections: '80' }), startPostgres(18, { max_connections: '80' })]);
    dir = tempDir('cutover-fleet-queue-');
    await a.query('CREATE DATABASE fleet_queue');
    queueUrl = a.urlFor('fleet_queue');
    await createTargets(TARGETS, server);
    inventoryFile = writeRunbook(
      dir,
      'tenants.yaml',
      inventoryText({
        name: 'qtenants',
        approval: 'between-waves',
        maxFailures: 0,
        targets: TARGETS.map((t) => ({ name: t, variables: { DB_URL: server(t).urlFor(t) } })),
        waves: [{ name: 'canary', targets: ['q1'] }, { name: 'rest' }],
      }),
    );
    runbookFile = writeRunbook(dir, 'cutover.yaml', RUNBOOK);
    queue = new pg.Client({ connectionString: queueUrl });
    await queue.connect();
  });

  // A test that fails before stopping its worker must not leave it to take the next test's jobs (one failure became two).
  afterEach(async () => {
    const running = children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
    for (const c of running) c.child.kill('SIGKILL');
    await Promise.all(running.map((c) => c.done));
  });

  after(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await queue?.end();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  /** Our tables appear when the first process opens the queue: until then, nothing has happened. */
  const tolerant = async <T>(read: () => Promise<T>, none: T): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      if ((error as { code?: string }).code === '42P01' || (error as { code?: string }).code === '3F000') return none;
      throw error;
    }
  };
  const events = async () =>
    tolerant(
      async () =>
        (await queue.query<{ record: string }>("SELECT record FROM cutover_fleet.event WHERE fleet = 'qtenants/cutover' ORDER BY id")).rows.map(
          (r) => JSON.parse(r.record) as { type: string; ts: string; target?: string; wave?: string; action?: string; worker?: string },
        ),
      [],
    );
  const effects = async (t: string) => {
    const rows = await server(t).query<{ step: string; n: string }>('SELECT step, count(*)::text AS n FROM effects GROUP BY step ORDER BY step', [], t);
    await server(t).release(t);
    return Object.fromEntries(rows.map((r) => [r.step, Number(r.n)]));
  };
  const worker = (env: NodeJS.ProcessEnv = {}) => {
    const w = startCutover(['fleet', 'worker', '--queue', queueUrl, '--concurrency', '2', ...TIMING_ARGS], env);
    children.push(w);
    return w;
  };

  test("every target finishes, the killed worker's target is taken over within the bound, each effect once, every journal verifies", async (ctx) => {
    const bound = takeoverBoundSeconds(TIMING);
    const run = startCutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, inventoryFile, runbookFile]);
    children.push(run);
    // Worker A alone first, so it takes the canary; it SIGKILLs itself after `load` COMMITted and its record was written,
    // but only to A's working copy (a deferred line): only the journaled transaction id tells the next worker the effect happened.
    const workerA = worker({ CUTOVER_FAILPOINT: 'after:step.applied@load' });
    let killedAt = 0;
    const exitA = new Promise<NodeJS.Signals | null>((resolve) =>
      workerA.child.on('exit', (_code, signal) => {
        killedAt = Date.now();
        resolve(signal);
      }),
    );
    await until(
      'worker A holds the canary',
      () =>
        tolerant(
          async () =>
            (await queue.query("SELECT 1 FROM cutover_fleet.lease WHERE target = 'q1' AND owner LIKE $1", [`%:${workerA.child.pid}:%`])).rowCount === 1,
          false,
        ),
      30_000,
    );
    assert.equal(workerA.child.exitCode, null, `worker A ended before it took the canary: ${(await workerA.done).stderr}`);
    const workerB = worker();
    assert.equal(await exitA, 'SIGKILL', `worker A should die by SIGKILL at the failpoint: ${(await workerA.done).stderr}`);

    // B resumes q1 from the journal in the queue database, then q1 waits at its confirm.
    await until('q1 waits for approval', async () => (await events()).some((e) => e.type === 'target.waiting' && e.target === 'q1'), bound * 1000 + 15_000);
    const takeover = (await events()).find((e) => e.type === 'target.started' && e.target === 'q1' && e.action === 'resume');
    assert.ok(takeover !== undefined, 'q1 was resumed');
    assert.match(takeover.worker ?? '', new RegExp(`:${workerB.child.pid}:`), 'by worker B');
    const takeoverSeconds = (Date.parse(takeover.ts) - killedAt) / 1000;
    ctx.diagnostic(`takeover ${takeoverSeconds.toFixed(1)} s after the kill (bound ${bound} s)`);
    assert.ok(takeoverSeconds <= bound, `takeover took ${takeoverSeconds} s, documented bound ${bound} s`);

    // q1 now waits at its confirm longer than its job may stay active: pg-boss fails the job and offers it
    // again, but the delivery that gets it finds B's lease alive and waits: q1 is not taken over from B.
    await new Promise((resolve) => setTimeout(resolve, (TIMING.takeoverAfterSeconds + TIMING.maintenanceSeconds + TIMING.retryDelaySeconds + 2) * 1000));
    const redelivered = await queue.query<{ retry_count: number }>("SELECT retry_count FROM cutover_queue.job WHERE singleton_key = 'qtenants/cutover:q1'");
    assert.ok((redelivered.rows[0]?.retry_count ?? 0) >= 2, `q1's job was offered again while B held it (retries: ${redelivered.rows[0]?.retry_count})`);

    // Approvals from other processes: the canary's confirm, then the next wave's gate (and its targets' confirms).
    const approveCanary = await cutover(['fleet', 'approve', '--queue', queueUrl, inventoryFile, runbookFile, 'canary']);
    assert.equal(approveCanary.code, 0, approveCanary.stderr);
    await until('wave rest waits for approval', async () => (await events()).some((e) => e.type === 'wave.waiting' && e.wave === 'rest'), 30_000);
    const approveRest = await cutover(['fleet', 'approve', '--queue', queueUrl, inventoryFile, runbookFile, 'rest']);
    assert.equal(approveRest.code, 0, approveRest.stderr);

    const result: CliResult = await run.done;
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /fleet succeeded/);

    for (const name of TARGETS) assert.deepEqual(await effects(name), { done: 1, load: 1 }, `effects of ${name}`);
    // Any machine sees the fleet as it stands, from the queue database.
    const status = await cutover(['fleet', 'status', '--queue', queueUrl, '--json', inventoryFile, runbookFile]);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { targets: { name: string; status: string }[] };
    assert.deepEqual(
      parsed.targets.map((t) => [t.name, t.status]),
      TARGETS.map((t) => [t, 'succeeded']),
    );
    // fleet report --queue: the page and every target's own report, from the journals in the queue database.
    const out = path.join(dir, 'queue-report', 'fleet.html');
    const report = await cutover(['fleet', 'report', '--queue', queueUrl, '--out', out, inventoryFile, runbookFile]);
    assert.equal(report.code, 0, report.stderr);
    assert.match(report.stdout, /wrote .*fleet\.html and 6 target report\(s\)/);
    const page = readFileSync(out, 'utf8');
    const links = [...page.matchAll(/<a href="([^"]+)"/g)].map((m) => m[1] ?? '');
    assert.deepEqual(
      links,
      TARGETS.map((t) => `fleet-targets/${t}.html`),
    );
    for (const link of links) {
      const target = readFileSync(path.join(path.dirname(out), link), 'utf8');
      assert.match(target, /<h1>queue tenant cutover: run [^<]+<\/h1>/, link);
      assert.match(target, /hash chain verifies/, link);
    }
    // The column was added once per target: a second apply would have failed on it.
    for (const t of TARGETS) {
      const cols = await server(t).query<{ n: string }>(
        "SELECT count(*)::text AS n FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'moved'",
        [],
        t,
      );
      await server(t).release(t);
      assert.equal(cols[0]?.n, '1');
    }

    // Started by A, resumed by B, and never again: waiting past its job's expiry did not hand q1 to another delivery.
    const q1Starts = (await events()).filter((e) => e.type === 'target.started' && e.target === 'q1');
    assert.deepEqual(
      q1Starts.map((e) => e.action),
      ['run', 'resume'],
    );
    // q1's journal shows the crash was reconciled from the transaction id, not guessed.
    const lines = await queue.query<{ line: string }>("SELECT line FROM cutover_fleet.journal_line WHERE target = 'q1' ORDER BY run_id, seq");
    const types = lines.rows.map((r) => (JSON.parse(r.line) as { record: { event: { type: string } } }).record.event.type);
    assert.ok(types.includes('step.reconciled'), `q1 journal: ${types.join(', ')}`);
    assert.equal(types.filter((t) => t === 'run.started').length, 1, 'one run, resumed: not a second run');

    for (const t of TARGETS) {
      const verify = await cutover(['audit', 'verify', '--queue', queueUrl, '--fleet', 'qtenants/cutover', '--target', t]);
      assert.equal(verify.code, 0, `${t}: ${verify.stdout}${verify.stderr}`);
      assert.match(verify.stdout, /journal verifies/);
    }
    // The queue's URL from the environment, as for the fleet commands; --help names the variable, never its value.
    const fromEnv = await cutover(['audit', 'verify', '--fleet', 'qtenants/cutover', '--target', 'q1'], { CUTOVER_QUEUE_URL: queueUrl });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const help = await cutover(['fleet', 'worker', '--help'], { CUTOVER_QUEUE_URL: `${queueUrl}?application_name=Sekr3t-in-the-url` });
    assert.match(help.stdout, /\[default: \$CUTOVER_QUEUE_URL\]/);
    assert.ok(!help.stdout.includes('Sekr3t-in-the-url') && !help.stdout.includes(queueUrl), help.stdout);

    // One job per target: the retry after the kill is the same job.
    const jobs = await queue.query<{ key: string; n: string }>(
      "SELECT singleton_key AS key, count(*)::text AS n FROM cutover_queue.job WHERE name = 'cutover-fleet-target' GROUP BY 1 ORDER BY 1",
    );
    assert.deepEqual(
      jobs.rows.map((r) => [r.key, r.n]),
      TARGETS.map((t) => [`qtenants/cutover:${t}`, '1']),
    );

    // Running the fleet again enqueues nothing new: it is refused, and resume finds every target done.
    const again = await cutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, inventoryFile, runbookFile]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already run 6 target/);
    const resumed = await cutover(['fleet', 'resume', '--queue', queueUrl, ...TIMING_ARGS, inventoryFile, runbookFile]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const after = await queue.query<{ n: string }>("SELECT count(*)::text AS n FROM cutover_queue.job WHERE name = 'cutover-fleet-target'");
    assert.equal(after.rows[0]?.n, '6');

    // Nothing of ours in a target database.
    for (const t of TARGETS) {
      const ours = await server(t).query<{ n: string }>("SELECT count(*)::text AS n FROM pg_namespace WHERE nspname LIKE 'cutover%'", [], t);
      await server(t).release(t);
      assert.equal(ours[0]?.n, '0', t);
    }

    // A worker that no longer holds a target's lease cannot add a line to its journal.
    const store = queueFleetStore(queueUrl, loadInventory(inventoryFile), runbookFile);
    try {
      // A holder alive for the rest of this test, by its heartbeat's time: a machine that stalls for seconds (a loaded CI
      // runner) cannot make it look stale, as it could a heartbeat renewed on a timer.
      await queue.query(
        "INSERT INTO cutover_fleet.lease (fleet, target, owner, heartbeat_at) VALUES ('qtenants/cutover', 'q2', 'the-new-holder', now() + interval '1 hour')",
      );
      // Events come back in the order they were written, past id 9 too (the ids were once ordered as text). By id, not by
      // time: two processes writing at once can take their timestamps a millisecond apart in the other order.
      const events = store.events();
      assert.ok(events.length > 10, `${events.length} events`);
      const written = (await queue.query<{ record: string }>("SELECT record FROM cutover_fleet.event WHERE fleet = 'qtenants/cutover' ORDER BY id")).rows;
      assert.deepEqual(
        events.map((e) => e.ts),
        written.map((r) => (JSON.parse(r.record) as { ts: string }).ts),
      );
      const runId = store.journals('q2').runIds()[0] as string;
      const before = store.journals('q2').text(runId);
      assert.throws(() => {
        store.journals('q2').sink('a-stalled-worker').append({ runId, seq: 99, text: 'a late line' });
      }, LeaseLostError);
      assert.equal(store.journals('q2').text(runId), before);
    } finally {
      store.db.close();
    }

    // fleet rollback --queue: from the journals in the queue database, on this machine. q2's lease was just
    // given to 'the-new-holder', alive: q2 is left alone, the others are undone.
    const rollback = (...extra: string[]) => cutover(['fleet', 'rollback', '--queue', queueUrl, ...TIMING_ARGS, ...extra, inventoryFile, runbookFile]);
    const first = await rollback();
    assert.equal(first.code, 5, `${first.stdout}${first.stderr}`);
    assert.match(first.stderr, /q2 \(rest\): in-progress: target q2 is held by a live worker/);
    for (const t of TARGETS) assert.deepEqual(await effects(t), t === 'q2' ? { done: 1, load: 1 } : {}, `effects of ${t} after the first rollback`);
    await queue.query("DELETE FROM cutover_fleet.lease WHERE target = 'q2'");
    const second = await rollback('--json');
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(
      (JSON.parse(second.stdout) as { name: string; status: string }[]).map((r) => [r.name, r.status]).sort(),
      TARGETS.map((t) => [t, t === 'q2' ? 'rolled-back' : 'nothing-to-undo']),
    );
    for (const t of TARGETS) {
      assert.deepEqual(await effects(t), {}, `effects of ${t} after the second rollback`);
      // The rollback's journal lines are in the queue database, in the same hash chain.
      const verify = await cutover(['audit', 'verify', '--queue', queueUrl, '--fleet', 'qtenants/cutover', '--target', t]);
      assert.equal(verify.code, 0, `${t}: ${verify.stdout}${verify.stderr}`);
      const lines = await queue.query<{ line: string }>('SELECT line FROM cutover_fleet.journal_line WHERE target = $1 ORDER BY run_id, seq', [t]);
      const types = lines.rows.map((r) => (JSON.parse(r.line) as { record: { event: { type: string } } }).record.event.type);
      assert.ok(types.includes('rollback.finished'), `${t}: ${types.join(', ')}`);
    }

    workerB.child.kill('SIGTERM');
    const stoppedB = await workerB.done;
    assert.equal(stoppedB.code, 0, stoppedB.stderr);
  });

  for (const [changed, target] of [
    ['runbook', 'q7'],
    ['inventory', 'q9'],
  ] as const) {
    test(`a worker whose ${changed} differs from the one the fleet was started with refuses the job: the target fails naming the file, nothing runs`, async () => {
      await createTargets([target], () => a);
      const inventory = writeRunbook(
        dir,
        `changed-${target}.yaml`,
        inventoryText({ name: `qfiles${target}`, targets: [{ name: target, variables: { DB_URL: a.urlFor(target) } }] }),
      );
      const runbook = writeRunbook(dir, 'changed.yaml', RUNBOOK);
      const run = startCutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, inventory, runbook]);
      children.push(run);
      // Queued while no worker runs; then the file is edited where the workers read it.
      await until(
        'the job is queued',
        () =>
          tolerant(
            async () => (await queue.query('SELECT 1 FROM cutover_queue.job WHERE singleton_key = $1', [`qfiles${target}/changed:${target}`])).rowCount === 1,
            false,
          ),
        30_000,
      );
      appendFileSync(changed === 'runbook' ? runbook : inventory, '# edited after the fleet started\n');
      const w = worker();
      const result = await run.done;
      assert.notEqual(result.code, 0, result.stdout);
      const file = changed === 'runbook' ? 'changed\\.yaml' : `changed-${target}\\.yaml`;
      assert.match(result.stderr, new RegExp(`${target}: .*${changed} .*${file} on this worker differs from the one the fleet was started with`));
      assert.deepEqual(await effects(target), {}, 'nothing ran');
      w.child.kill('SIGTERM');
      assert.equal((await w.done).code, 0);
    });
  }

  test('a job cancelled in the queue while it waits fails its target, naming the job, instead of waiting for ever', async () => {
    const target = 'q11';
    await createTargets([target], () => a);
    const inventory = writeRunbook(
      dir,
      `cancelled-${target}.yaml`,
      inventoryText({ name: `qcancel${target}`, targets: [{ name: target, variables: { DB_URL: a.urlFor(target) } }] }),
    );
    // One step, no confirm: the resume below needs no approval.
    const runbook = writeRunbook(dir, 'cancelled.yaml', RUNBOOK.slice(0, RUNBOOK.indexOf('  - id: switch')));
    const run = startCutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, inventory, runbook]);
    children.push(run);
    // No worker runs: the job stays queued until someone cancels it in pg-boss.
    let id: string | undefined;
    const queued = async () =>
      (await queue.query<{ id: string }>('SELECT id::text AS id FROM cutover_queue.job WHERE singleton_key = $1', [`qcancel${target}/cancelled:${target}`]))
        .rows[0]?.id;
    await until('the job is queued', async () => (id = await tolerant(queued, undefined)) !== undefined, 30_000);
    assert.ok(id !== undefined);
    const db = openQueueDb(queueUrl);
    try {
      const boss = await startBoss({ url: queueUrl, ...TIMING }, 'coordinator', db);
      await boss.cancel(QUEUE_NAME, id);
      await boss.stop({ graceful: false, wait: true });
    } finally {
      db.close();
    }
    const result = await run.done;
    assert.notEqual(result.code, 0, result.stdout);
    assert.match(result.stderr, new RegExp(`${target}: error .*: job ${id} cancelled in the queue; \`cutover fleet resume --queue\` sends a new one`));
    assert.match(result.stdout, new RegExp(`\n\\s+${target}\\s+all\\s+error\\s`), 'the matrix shows the target failed, not pending');
    assert.deepEqual(await effects(target), {}, 'nothing ran');
    // As the message says: a resume sends a new job, and a worker runs the target once.
    const w = worker();
    const resumed = await cutover(['fleet', 'resume', '--queue', queueUrl, ...TIMING_ARGS, inventory, runbook]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.deepEqual(await effects(target), { load: 1 });
    w.child.kill('SIGTERM');
    assert.equal((await w.done).code, 0);
  });

  /** A one-wave fleet of `names` on server a, maxFailures 0, whose runbook marks then sleeps a second. */
  const slowFleet = async (name: string, names: readonly string[]) => {
    await createTargets(names, () => a);
    const inventory = writeRunbook(
      dir,
      `${name}.yaml`,
      inventoryText({ name, maxFailures: 0, targets: names.map((t) => ({ name: t, variables: { DB_URL: a.urlFor(t) } })), waves: [{ name: 'all' }] }),
    );
    const runbook = writeRunbook(
      dir,
      `${name}-runbook.yaml`,
      `version: 1
name: ${name}
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
  - id: mark
    kind: sql
    connection: db
    sql: INSERT INTO effects(step) VALUES ('mark')
    rollback: DELETE FROM effects WHERE step = 'mark'
  - id: slow
    kind: sql
    connection: db
    sql: SELECT pg_sleep(1)
`,
    );
    const jobStates = async () =>
      (
        await queue.query<{ key: string; state: string }>(
          "SELECT singleton_key AS key, state::text AS state FROM cutover_queue.job WHERE singleton_key LIKE $1 || '/%' ORDER BY 1",
          [name],
        )
      ).rows.map((r): [string, string] => [r.key.replace(/^.*:/, ''), r.state]);
    return { inventory, runbook, jobStates };
  };
  const effectsOnA = async (t: string) => {
    const rows = await a.query<{ step: string; n: string }>('SELECT step, count(*)::text AS n FROM effects GROUP BY step ORDER BY step', [], t);
    await a.release(t);
    return Object.fromEntries(rows.map((r) => [r.step, Number(r.n)]));
  };

  test('Ctrl-C with jobs still queued takes them back: no worker starts them later, and resume runs each once', async () => {
    const names = ['s1', 's2', 's3'];
    const { inventory, runbook, jobStates } = await slowFleet('qstop', names);
    // No worker yet: every job waits in the queue.
    const run = startCutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, '--jobs', '3', inventory, runbook]);
    children.push(run);
    await until('three queued jobs', async () => (await tolerant(jobStates, [])).length === 3, 30_000);
    run.child.kill('SIGINT');
    const stopped = await run.done;
    assert.equal(stopped.code, 5, stopped.stdout + stopped.stderr);
    assert.deepEqual(
      await jobStates(),
      names.map((t) => [t, 'cancelled']),
      'taken back from the queue',
    );
    const w = worker();
    const resumed = await cutover(['fleet', 'resume', '--queue', queueUrl, ...TIMING_ARGS, '--timestamps', inventory, runbook]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    for (const t of names) assert.deepEqual(await effectsOnA(t), { mark: 1 }, t);
    // --timestamps: each progress line with its time.
    for (const t of names) assert.match(resumed.stderr, new RegExp(`^\\[\\d{2}:\\d{2}:\\d{2}\\] +${t}: succeeded`, 'm'));
    w.child.kill('SIGTERM');
    assert.equal((await w.done).code, 0);
  });

  test('beyond maxFailures the jobs not started yet are taken back: at most the one a worker fetched ahead starts', async () => {
    const names = ['h0', 'h1', 'h2', 'h3', 'h4'];
    const { inventory, runbook, jobStates } = await slowFleet('qhalt', names);
    // h0 fails at its first step: no table to write to.
    await a.query('DROP TABLE effects', [], 'h0');
    await a.release('h0');
    // One slot, two fetch loops: while h0 runs, one more job is fetched ahead and waits for the slot.
    const w = startCutover(['fleet', 'worker', '--queue', queueUrl, '--concurrency', '1', ...TIMING_ARGS]);
    children.push(w);
    const run = await cutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, '--jobs', '5', inventory, runbook]);
    assert.equal(run.code, 5, run.stdout + run.stderr);
    assert.match(run.stderr, /wave all: HALTED: 1 failed, 0 allowed \(maxFailures\); no new target starts/);
    const log = (await queue.query<{ record: string }>("SELECT record FROM cutover_fleet.event WHERE fleet = 'qhalt/qhalt-runbook' ORDER BY id")).rows.map(
      (r) => JSON.parse(r.record) as { type: string; ts: string; target?: string },
    );
    const failedAt = log.find((e) => e.type === 'target.finished' && e.target === 'h0')?.ts ?? '';
    const startedAfter = log.filter((e) => e.type === 'target.started' && e.ts > failedAt).map((e) => e.target);
    assert.ok(startedAfter.length <= 1, `started after h0 failed: ${startedAfter.join(', ')}`);
    const started = new Set(log.filter((e) => e.type === 'target.started').map((e) => e.target));
    const states = new Map(await jobStates());
    for (const t of names.slice(1)) {
      assert.deepEqual(await effectsOnA(t), started.has(t) ? { mark: 1 } : {}, t);
      if (!started.has(t)) assert.equal(states.get(t), 'cancelled', `${t}: taken back from the queue`);
    }
    assert.ok(started.size < names.length, 'some target was taken back');
    w.child.kill('SIGTERM');
    assert.equal((await w.done).code, 0);
  });

  test('processes starting on a fresh queue database create the queue one at a time (pg-boss 10 alone deadlocks)', async () => {
    // Four pg-boss 10 instances creating one queue at once deadlocked (40P01) in 13 of 40 tries here, and a
    // worker died of it at start: cutover creates the queue under an advisory lock. Held here, it holds them.
    await a.query('CREATE DATABASE fleet_queue_start');
    const options = { url: a.urlFor('fleet_queue_start'), ...TIMING };
    const holder = openQueueDb(options.url);
    const key = QUEUE_CREATE_LOCK.toString();
    holder.query('SELECT pg_advisory_lock($1::bigint)', [key]);
    const sessions = [0, 1, 2].map(() => openQueueDb(options.url));
    // Before pg-boss has installed its tables there is no queue either.
    const queues = () =>
      tolerant(async () => Number((await a.query<{ n: string }>('SELECT count(*)::text AS n FROM cutover_queue.queue', [], 'fleet_queue_start'))[0]?.n), 0);
    try {
      const starting = Promise.allSettled(sessions.map((db) => startBoss(options, 'worker', db)));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(await queues(), 0, 'no process creates the queue while another holds the lock');
      holder.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
      const started = await starting;
      for (const s of started) if (s.status === 'fulfilled') await s.value.stop({ graceful: false, wait: true });
      assert.deepEqual(
        started.filter((s) => s.status === 'rejected').map((s) => errorMessage(s.reason)),
        [],
      );
      assert.equal(await queues(), 1);
    } finally {
      for (const db of [holder, ...sessions]) db.close();
      await a.release('fleet_queue_start');
    }
  });

  test('a worker stopped by SIGTERM mid-target hands it back: another worker resumes it, each effect once', async () => {
    await createTargets(['q8'], server);
    const inventory = writeRunbook(
      dir,
      'term-inventory.yaml',
      inventoryText({ name: 'qterm', targets: [{ name: 'q8', variables: { DB_URL: server('q8').urlFor('q8') } }] }),
    );
    const runbook = writeRunbook(dir, 'term.yaml', RUNBOOK);
    const termEvents = async () =>
      tolerant(
        async () =>
          (await queue.query<{ record: string }>("SELECT record FROM cutover_fleet.event WHERE fleet = 'qterm/term' ORDER BY id")).rows.map(
            (r) => JSON.parse(r.record) as { type: string; target?: string; action?: string; worker?: string },
          ),
        [],
      );
    const run = startCutover(['fleet', 'run', '--queue', queueUrl, ...TIMING_ARGS, inventory, runbook]);
    children.push(run);
    // Worker A runs q8 up to its confirm step, which waits for an approval: a target in the middle of its run.
    const workerA = worker();
    await until('q8 waits at its confirm on worker A', async () => (await termEvents()).some((e) => e.type === 'target.waiting'), 30_000);
    workerA.child.kill('SIGTERM');
    const stoppedA = await workerA.done;
    assert.equal(stoppedA.code, 0, stoppedA.stderr);
    assert.match(stoppedA.stderr, /SIGTERM: taking no new job/);
    const workerB = worker();
    await until(
      'worker B resumes q8',
      async () => (await termEvents()).some((e) => e.type === 'target.started' && e.action === 'resume' && (e.worker ?? '').includes(`:${workerB.child.pid}:`)),
      30_000,
    );
    const approved = await cutover(['fleet', 'approve', '--queue', queueUrl, inventory, runbook, 'q8']);
    assert.equal(approved.code, 0, approved.stderr);
    const result = await run.done;
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    // The fleet's own terminal says what the worker waits for, and how to approve it.
    assert.match(result.stdout + result.stderr, /q8: waits at step "\S+": .+\n {4}approve: cutover fleet approve --queue <the same queue URL> \S+ \S+ q8 /);
    assert.match(result.stdout + result.stderr, /q8: step "\S+" approved \(q8, by /);
    assert.deepEqual(await effects('q8'), { done: 1, load: 1 }, 'each effect once');
    const starts = (await termEvents()).filter((e) => e.type === 'target.started').map((e) => e.action);
    assert.deepEqual(starts, ['run', 'resume'], 'one run, started by A and resumed by B');
    workerB.child.kill('SIGTERM');
    assert.equal((await workerB.done).code, 0);
  });
});
