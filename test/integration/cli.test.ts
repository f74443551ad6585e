/**
 * The CLI as an operator uses it, against real PostgreSQL: kill -9 in the
 * middle of a run and resume, confirmations without a terminal, exit codes,
 * and the journal's tamper evidence.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { spawn } from 'node:child_process';
import { CLI, cutover, startCutover, tempDir } from '../helpers/cli.js';
import { GATED_STEPS, GATED_TABLES, runbookFile } from '../helpers/runbook.js';
import { until as until2 } from '../helpers/wait.js';

function journalOf(stateDir: string): string {
  const runs = path.join(stateDir, 'runs');
  const newest = readdirSync(runs).sort().at(-1) ?? '';
  return path.join(runs, newest, 'journal.jsonl');
}

/** The newest run's journal so far; '' while the run has not created it yet. */
function journalText(stateDir: string): string {
  if (!existsSync(path.join(stateDir, 'runs'))) return '';
  const file = journalOf(stateDir);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

for (const version of VERSIONS) {
  describe(`cutover CLI on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let db = 0;
    async function freshDb(): Promise<string> {
      const name = `c${++db}`;
      await server.query(`CREATE DATABASE ${name}`);
      return name;
    }
    const header = `version: 1
name: cli test
connections:
  db:
    kind: postgres
    url: \${TEST_URL}
steps:
`;

    before(async () => {
      server = await startPostgres(version);
    });
    after(async () => {
      await server.stop();
    });

    it('kill -9 mid-run, then resume: every step takes effect exactly once', async () => {
      const name = await freshDb();
      await server.query(GATED_TABLES, [], name);
      const dir = tempDir();
      const marker = path.join(dir, 'shell-ran');
      const { file } = runbookFile(
        `${header}  - id: first
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('first')
    rollback: DELETE FROM effects WHERE step = 'first'
  - id: external
    kind: shell
    command: [node, -e, "require('fs').appendFileSync('${marker}', 'ran\\\\n')"]
    idempotent: false
  - id: hold
    kind: wait
    connection: db
    query: SELECT ok FROM go
    expect: true
    interval: 100ms
    timeout: 60s
  - id: last
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('last')
`,
        { dir, name: 'r.yaml' },
      );
      const stateDir = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: stateDir };
      const { child, done } = startCutover(['run', file, '--yes'], env);
      await until(() => journalText(stateDir).includes('"type":"step.started","stepId":"hold"'), 'the run to reach the wait step');
      child.kill('SIGKILL');
      const killed = await done;
      assert.equal(killed.code, null, 'the CLI was killed, it did not exit');

      await server.query('UPDATE go SET ok = true', [], name);
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
      const effects = await server.query<{ step: string }>('SELECT step FROM effects ORDER BY step', [], name);
      assert.deepEqual(
        effects.map((r) => r.step),
        ['first', 'last'],
      );
      assert.equal(readFileSync(marker, 'utf8'), 'ran\n', 'the shell step ran exactly once');
      const journal = readFileSync(journalOf(stateDir), 'utf8');
      assert.match(journal, /"type":"run.resumed"/);
      assert.match(journal, /"type":"step.reconciled","stepId":"hold","phase":"apply","outcome":"not-done"/);
      const audit = await cutover(['audit', 'verify', '--last'], env);
      assert.equal(audit.code, 0, audit.stderr);
    });

    it('a run refused while another is mid-step, then kill -9 of the first: resume --last picks the first, each step once', async () => {
      const name = await freshDb();
      await server.query(GATED_TABLES, [], name);
      const { dir, file } = runbookFile(`${header}${GATED_STEPS}`, { name: 'r.yaml' });
      const stateDir = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: stateDir };
      const first = startCutover(['run', file, '--yes'], env);
      await until(() => journalText(stateDir).includes('"type":"step.started","stepId":"s2"'), 'run A to reach s2');
      const runA = path.basename(path.dirname(journalOf(stateDir)));
      const refused = await cutover(['run', file, '--yes'], env);
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(refused.stderr, new RegExp(`run ${runA} of this runbook is still in progress`));
      const runB = path.basename(path.dirname(journalOf(stateDir)));
      assert.notEqual(runB, runA);
      const statusB = await cutover(['status', runB], env);
      assert.match(statusB.stdout, /status refused/);

      first.child.kill('SIGKILL');
      await first.done;
      const statusA = await cutover(['status', runA], env);
      assert.match(statusA.stdout, /status interrupted/, statusA.stdout);

      const again = await cutover(['run', file, '--yes'], env);
      assert.equal(again.code, 4, again.stderr);
      assert.match(again.stderr, new RegExp(`cutover resume ${runA}`));
      assert.match(again.stderr, new RegExp(`cutover abandon ${runA} --reason`));

      await server.query('UPDATE go SET ok = true', [], name);
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
      assert.match(resumed.stderr, new RegExp(`resume: run ${runA}: the newest run with something to resume`));
      assert.match(resumed.stderr, new RegExp(`${runB} \\(refused\\)`));
      const effects = await server.query<{ step: string }>('SELECT step FROM effects ORDER BY step', [], name);
      assert.deepEqual(
        effects.map((r) => r.step),
        ['s1', 's3'],
      );
      const nothingLeft = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(nothingLeft.code, 2, 'a refused run is never resumed');
      assert.match(nothingLeft.stderr, /has anything to resume/);
    });

    it('stopped at a confirmation before anything was applied: says it writes nothing, offers no rollback; resume says what it found, without "crash"', async () => {
      const name = await freshDb();
      // A step that only reads ran before: it leaves nothing in place and nothing to undo.
      const { dir, file } = runbookFile(
        `${header}  - id: looked
    kind: wait
    connection: db
    query: SELECT 1
    expect: 1
  - id: ask
    kind: confirm
    message: go on?
  - id: after
    kind: sql
    connection: db
    sql: SELECT 1
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const stopped = await cutover(['run', file], env);
      assert.equal(stopped.code, 5, stopped.stderr);
      assert.match(stopped.stderr, /Where things stand:\n {2}stopped at: ask \(confirm\) \(it writes nothing\)\n/);
      assert.doesNotMatch(stopped.stderr, /its transaction, if any|still in place: looked/);
      assert.match(stopped.stderr, /Next, one of \(nothing is applied yet\):\n {2}cutover resume \S+ +continue from where it stopped\n {2}cutover abandon /);
      assert.doesNotMatch(stopped.stderr, /cutover rollback/);
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout, /left in flight by the last process: it had not taken effect \(the step writes nothing; it is safe to run again\)/);
      assert.doesNotMatch(resumed.stdout + resumed.stderr, /crash/);
    });

    it('resume never writes to a finished run: a succeeded run keeps the head its ticket recorded; a run whose rollback started is finished by rollback only', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const { dir, file } = runbookFile(
        `${header}  - id: a
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('a')
    rollback: SELECT 1 / 0
  - id: b
    kind: sql
    connection: db
    sql: SELECT 1
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const done = await cutover(['run', file, '--yes'], env);
      assert.equal(done.code, 0, done.stderr);
      const runId = /run (\S+): succeeded/.exec(done.stdout)?.[1] ?? '';
      const head = /journal head: (\S+)/.exec(done.stdout)?.[1] ?? '';
      const journal = readFileSync(journalOf(env.CUTOVER_STATE_DIR), 'utf8');
      const again = await cutover(['resume', runId, '--yes'], env);
      assert.equal(again.code, 2, again.stdout + again.stderr);
      assert.match(again.stderr, /already succeeded; nothing to resume/);
      assert.equal(readFileSync(journalOf(env.CUTOVER_STATE_DIR), 'utf8'), journal, 'nothing appended');
      assert.equal((await cutover(['audit', 'verify', runId, '--head', head], env)).code, 0);

      const rollback = await cutover(['rollback', runId, '--yes'], env);
      assert.equal(rollback.code, 3, rollback.stderr);
      const afterRollback = readFileSync(journalOf(env.CUTOVER_STATE_DIR), 'utf8');
      const resume = await cutover(['resume', runId, '--yes'], env);
      assert.equal(resume.code, 2, resume.stdout + resume.stderr);
      assert.match(resume.stderr, /started rolling back; it is never resumed forward again\. Finish the rollback: cutover rollback /);
      assert.equal(readFileSync(journalOf(env.CUTOVER_STATE_DIR), 'utf8'), afterRollback, 'nothing appended');
      assert.equal((await cutover(['resume', '--last', '--yes'], env)).code, 2, 'resume --last passes it over');
      const fresh = await cutover(['run', file, '--yes'], env);
      assert.equal(fresh.code, 4, fresh.stderr);
      assert.match(fresh.stderr, /did not finish rolling back .*\. Finish its rollback with: cutover rollback /);
      assert.doesNotMatch(fresh.stderr, /cutover resume/);
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), [{ v: 'a' }], 'the forward steps were not applied again');
    });

    it('abandon: journaled, lets the runbook run afresh, refuses resume, still allows rollback', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const { dir, file } = runbookFile(
        `${header}  - id: a
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('a')
    rollback: DELETE FROM t WHERE v = 'a'
  - id: ask
    kind: confirm
    message: go on?
`,
        { name: 'r.yaml' },
      );
      const stateDir = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: stateDir };
      const stopped = await cutover(['run', file], env);
      assert.equal(stopped.code, 5, stopped.stderr);
      const runA = path.basename(path.dirname(journalOf(stateDir)));
      assert.equal((await cutover(['abandon', runA, '--reason', '  '], env)).code, 2, 'a reason is required');
      const abandoned = await cutover(['abandon', runA, '--reason', 'window closed'], env);
      assert.equal(abandoned.code, 0, abandoned.stderr);
      assert.match(readFileSync(journalOf(stateDir), 'utf8'), /"type":"run.abandoned","reason":"window closed"/);
      assert.match((await cutover(['status', runA], env)).stdout, /status abandoned/);
      const resume = await cutover(['resume', runA, '--yes'], env);
      assert.equal(resume.code, 2);
      assert.match(resume.stderr, /was abandoned .* cutover rollback/);
      const undone = await cutover(['rollback', '--last', '--yes'], env);
      assert.equal(undone.code, 0, undone.stderr);
      assert.match(undone.stderr, new RegExp(`rollback: run ${runA}`));
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), []);
      const fresh = await cutover(['run', file, '--yes'], env);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.equal((await cutover(['audit', 'verify', runA], env)).code, 0);
    });

    /** The CLI in its own process group, signalled as a terminal signals it on Ctrl-C (see shared NOTES). */
    function startInGroup(args: readonly string[], env: NodeJS.ProcessEnv) {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on('close', (code) => {
          resolve({ code, stdout, stderr });
        }),
      );
      return { signal: (name: NodeJS.Signals) => process.kill(-(child.pid ?? 0), name), stderr: () => stderr, done };
    }
    const interruptible = `${header}  - id: s1
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('s1')
  - id: s2
    kind: sql
    connection: db
    sql: ["INSERT INTO effects VALUES ('s2')", "SELECT pg_sleep(CASE WHEN (SELECT ok FROM go) THEN 0 ELSE 60 END)"]
  - id: s3
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('s3')
`;
    const sleeping = (name: string) => async () =>
      (
        await server.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(CASE%' AND state = 'active'",
          [],
          name,
        )
      )[0]?.n === 1;

    it('Ctrl-C mid-statement: the statement is cancelled, run.interrupted journaled, exit 5 saying what is applied; status interrupted; resume applies each effect once', async () => {
      const name = await freshDb();
      await server.query(GATED_TABLES, [], name);
      const { dir, file } = runbookFile(interruptible, { name: 'r.yaml' });
      const stateDir = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: stateDir };
      const run = startInGroup(['run', file, '--yes'], env);
      await until2('s2 to sleep in the server', sleeping(name));
      run.signal('SIGINT');
      const stopped = await run.done;
      assert.equal(stopped.code, 5, stopped.stderr);
      assert.match(stopped.stdout, /: interrupted/);
      assert.match(stopped.stderr, /applied and still in place: s1 \(sql\)/);
      assert.match(stopped.stderr, /cutover resume \S+ +continue from where it stopped/);
      assert.doesNotMatch(stopped.stderr, /\n\s+at /);
      const journal = readFileSync(journalOf(stateDir), 'utf8');
      assert.match(journal, /"type":"run.interrupted","signal":"SIGINT","stepId":"s2","applied":\["s1"\]/);
      assert.match(journal, /"sqlstate":"57014"/, 'the statement was cancelled at the server');
      assert.deepEqual(await server.query('SELECT step FROM effects ORDER BY step', [], name), [{ step: 's1' }], "s2's transaction was rolled back");
      assert.match((await cutover(['status'], env)).stdout, /status interrupted/);
      // The report's reason is the interrupt, not the cancelled statement's error.
      const report = await cutover(['report', '--format', 'md'], env);
      assert.equal(report.stdout.split('\n')[2], '**interrupted**: interrupted by SIGINT during s2; still applied: s1');

      await server.query('UPDATE go SET ok = true', [], name);
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(
        (await server.query<{ step: string }>('SELECT step FROM effects ORDER BY step', [], name)).map((r) => r.step),
        ['s1', 's2', 's3'],
      );
      assert.equal((await cutover(['audit', 'verify', '--last'], env)).code, 0);
    });

    it('Ctrl-C during a rollback stops it (exit 5), not a failed rollback; cutover rollback then finishes it, each undo once', async () => {
      const name = await freshDb();
      await server.query(GATED_TABLES, [], name);
      const { dir, file } = runbookFile(
        `${header}  - id: a
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('a')
    rollback: DELETE FROM effects WHERE step = 'a'
  - id: b
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('b')
    rollback: ["DELETE FROM effects WHERE step = 'b'", "SELECT pg_sleep(CASE WHEN (SELECT ok FROM go) THEN 0 ELSE 60 END)"]
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      assert.equal((await cutover(['run', file, '--yes'], env)).code, 0);
      const undo = startInGroup(['rollback', '--last', '--yes'], env);
      await until2('the undo of b to sleep in the server', sleeping(name));
      undo.signal('SIGINT');
      const stopped = await undo.done;
      assert.equal(stopped.code, 5, stopped.stdout + stopped.stderr);
      assert.doesNotMatch(stopped.stderr, /rollback failed/);
      assert.match(readFileSync(journalOf(path.join(dir, 'state')), 'utf8'), /"type":"run.interrupted","signal":"SIGINT","stepId":"b"/);
      const steps = async () => (await server.query<{ step: string }>('SELECT step FROM effects ORDER BY step', [], name)).map((r) => r.step);
      assert.deepEqual(await steps(), ['a', 'b'], "b's undo was cancelled with its transaction");

      await server.query('UPDATE go SET ok = true', [], name);
      const finished = await cutover(['rollback', '--last', '--yes'], env);
      assert.equal(finished.code, 0, finished.stdout + finished.stderr);
      assert.deepEqual(await steps(), []);
      assert.equal((await cutover(['audit', 'verify', '--last'], env)).code, 0);
    });

    it('SIGTERM stops the same way (exit 5, resumable)', async () => {
      const name = await freshDb();
      await server.query(GATED_TABLES, [], name);
      const { dir, file } = runbookFile(interruptible, { name: 'r.yaml' });
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const run = startInGroup(['run', file, '--yes'], env);
      await until2('s2 to sleep in the server', sleeping(name));
      run.signal('SIGTERM');
      const stopped = await run.done;
      assert.equal(stopped.code, 5, stopped.stderr);
      assert.match(readFileSync(journalOf(path.join(dir, 'state')), 'utf8'), /"type":"run.interrupted","signal":"SIGTERM"/);
    });

    it('a second Ctrl-C exits at once (130) while the first is still stopping a stubborn command; the journal verifies', async () => {
      const name = await freshDb();
      const dir = tempDir();
      const pidFile = path.join(dir, 'stubborn.pid');
      // Ignores SIGINT and SIGTERM, so stopping it takes execa's grace period.
      const { file } = runbookFile(
        `${header}  - id: stubborn
    kind: shell
    command: [node, -e, "process.on('SIGINT', () => {}); process.on('SIGTERM', () => {}); require('fs').writeFileSync('${pidFile}', String(process.pid)); setInterval(() => {}, 1000)"]
`,
        { dir, name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const run = startInGroup(['run', file, '--yes'], env);
      try {
        await until2('the command to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').length > 0);
        run.signal('SIGINT');
        // Standard signals are not queued: the second must come after the first was handled.
        await until2('the first interrupt to be handled', () => run.stderr().includes('SIGINT: cancelling'));
        run.signal('SIGINT');
        const exited = await run.done;
        assert.equal(exited.code, 130, exited.stderr);
        assert.match(exited.stderr, /SIGINT again: exiting now/);
        assert.equal((await cutover(['audit', 'verify', '--last'], env)).code, 0);
      } finally {
        if (existsSync(pidFile)) {
          try {
            process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });

    it('a shell step in flight at the crash is not re-run by --yes unless idempotent: exit 3 (needs attention)', async () => {
      const name = await freshDb();
      const { dir, file } = runbookFile(
        `${header}  - id: slow
    kind: shell
    command: [node, -e, "setTimeout(() => {}, 60000)"]
`,
        { name: 'r.yaml' },
      );
      const stateDir = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: stateDir };
      const { child, done } = startCutover(['run', file, '--yes'], env);
      await until(() => journalText(stateDir).includes('"type":"step.started","stepId":"slow"'), 'the shell step to start');
      child.kill('SIGKILL');
      await done;
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 3, resumed.stderr);
      assert.match(resumed.stderr, /step "slow" was in flight \(apply\) when the previous run stopped and its outcome is unknown/);
      assert.doesNotMatch(resumed.stderr, /\n\s+at /);
    });

    it('a confirm step without a terminal and without --yes stops (exit 5); resume --yes passes it', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v text)', [], name);
      const { dir, file } = runbookFile(
        `${header}  - id: before-gate
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('before')
  - id: gate
    kind: confirm
    message: Is the application stopped?
  - id: after-gate
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('after')
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const stopped = await cutover(['run', file], env);
      assert.equal(stopped.code, 5);
      assert.match(stopped.stderr, /step "gate" needs confirmation: Is the application stopped\?/);
      assert.match(stopped.stderr, /--yes/);
      assert.deepEqual(await server.query('SELECT v FROM t', [], name), [{ v: 'before' }]);

      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(await server.query('SELECT v FROM t ORDER BY v', [], name), [{ v: 'after' }, { v: 'before' }]);
    });

    it('resume and rollback act only on the database the run changed: a connection pointed elsewhere since is refused (exit 2), nothing done there', async () => {
      const [name, elsewhere] = [await freshDb(), await freshDb()];
      for (const d of [name, elsewhere]) await server.query('CREATE TABLE t (v text)', [], d);
      const { dir, file } = runbookFile(
        `${header}  - id: before-gate
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('before')
    rollback: DELETE FROM t WHERE v = 'before'
  - id: gate
    kind: confirm
    message: go on?
  - id: after-gate
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('after')
    rollback: DELETE FROM t WHERE v = 'after'
`,
        { name: 'r.yaml' },
      );
      const state = path.join(dir, 'state');
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: state };
      assert.equal((await cutover(['run', file], env)).code, 5);
      // The environment the runbook reads now names another database of the same server.
      const moved = { ...env, TEST_URL: server.urlFor(elsewhere) };
      for (const command of ['resume', 'rollback']) {
        const refused = await cutover([command, '--last', '--yes'], moved);
        assert.equal(refused.code, 2, refused.stderr);
        assert.match(
          refused.stderr,
          /connection "db" \(\S+\) now reaches system \d+, database oid \d+, not system \d+, database oid \d+: the database this run locked and changed/,
        );
        // Where the run's database was reached at its start, so a person at 3 a.m. knows which URL to restore.
        assert.match(
          refused.stderr,
          new RegExp(`the database this run locked and changed \\(\\S+@127\\.0\\.0\\.1:\\d+/${name} when the run started\\)\\. Nothing was done there`),
        );
        assert.match(refused.stderr, new RegExp(`Next: point connection "db" back at the database the run changed, then: cutover ${command} \\S+`));
        assert.deepEqual(await server.query('SELECT v FROM t', [], elsewhere), [], `${command} did nothing on the other database`);
        assert.deepEqual(await server.query('SELECT v FROM t', [], name), [{ v: 'before' }], `${command} did nothing on the run's database`);
      }
      const resumed = await cutover(['resume', '--last', '--yes'], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(await server.query('SELECT v FROM t ORDER BY v', [], name), [{ v: 'after' }, { v: 'before' }]);
    });

    it('audit verify passes on a real run and fails when one byte of the journal changes', async () => {
      const name = await freshDb();
      const { dir, file } = runbookFile(`${header}  - id: one\n    kind: sql\n    connection: db\n    sql: SELECT 1\n`, { name: 'r.yaml' });
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      assert.equal((await cutover(['run', file], env)).code, 0);
      const ok = await cutover(['audit', 'verify', '--last'], env);
      assert.equal(ok.code, 0);
      assert.match(ok.stdout, /journal verifies: \d+ records, head [0-9a-f]{64}/);

      const journal = journalOf(path.join(dir, 'state'));
      const bytes = readFileSync(journal);
      const at = bytes.indexOf('"stepId":"one"');
      bytes[at + 10] = 'X'.charCodeAt(0); // "one" -> "oXe" in one record
      writeFileSync(journal, bytes);
      const tampered = await cutover(['audit', 'verify', '--last'], env);
      assert.equal(tampered.code, 3);
      assert.match(tampered.stderr, /journal does NOT verify/);
      assert.match(tampered.stderr, /first break at line \d+: the line was changed after it was written \(record does not match its hash\)/);
    });

    it('a dry run is physically read-only: a wait query that tries SET ...; COMMIT; INSERT fails in plan and in run, and writes nothing', async () => {
      const name = await freshDb();
      await server.query('CREATE TABLE t (v int)', [], name);
      const { dir, file } = runbookFile(
        `${header}  - id: sneaky
    kind: wait
    connection: db
    query: "SET default_transaction_read_only = off; COMMIT; INSERT INTO t VALUES (1) RETURNING true"
    expect: true
    interval: 100ms
    timeout: 2s
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const plan = await cutover(['plan', file], env);
      assert.equal(plan.code, 1, plan.stdout + plan.stderr);
      assert.match(plan.stdout + plan.stderr, /ERROR 42601: cannot insert multiple commands into a prepared statement/);
      assert.doesNotMatch(plan.stdout + plan.stderr, /TypeError/);
      const run = await cutover(['run', file, '--yes'], env);
      assert.notEqual(run.code, 0);
      assert.deepEqual(await server.query('SELECT count(*)::int AS n FROM t', [], name), [{ n: 0 }]);
    });

    it('plan never runs a shell step that is not readOnly, and runs one that is', async () => {
      const name = await freshDb();
      const dir = tempDir();
      const touched = path.join(dir, 'touched');
      const { file } = runbookFile(
        `${header}  - id: writes
    kind: shell
    command: [node, -e, "require('fs').writeFileSync('${touched}', 'x')"]
  - id: reads
    kind: shell
    command: [node, -e, "console.log('read-only output')"]
    readOnly: true
`,
        { dir, name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const plan = await cutover(['plan', file], env);
      assert.equal(plan.code, 0, plan.stderr);
      assert.equal(existsSync(touched), false);
      assert.match(plan.stdout, /read-only output/);
      assert.match(plan.stdout, /\$ node -e/);
    });

    it('a failed step exits 1 after rolling back, with SQLSTATE and a caret at the failing SQL', async () => {
      const name = await freshDb();
      const { dir, file } = runbookFile(
        `${header}  - id: bad
    kind: sql
    connection: db
    sql: SELECT nosuchcolumn FROM pg_class
`,
        { name: 'r.yaml' },
      );
      const env = { TEST_URL: server.urlFor(name), CUTOVER_STATE_DIR: path.join(dir, 'state') };
      const result = await cutover(['run', file], env);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /db: ERROR 42703: column "nosuchcolumn" does not exist/);
      const lines = result.stderr.split('\n');
      const at = lines.findIndex((l) => /LINE 1: /.test(l));
      const [line, caret] = [lines[at], lines[at + 1]];
      assert.match(line ?? '', /LINE 1: SELECT nosuchcolumn FROM pg_class$/);
      assert.equal(caret?.indexOf('^'), line?.indexOf('nosuchcolumn'), 'the caret points at the bad column');
    });
  });
}
