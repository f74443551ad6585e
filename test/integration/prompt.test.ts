/**
 * A confirmation asked at a real terminal (a pseudo-terminal from util-linux
 * `script`), answered the ways a person in the window does: Ctrl-C typed at
 * the question (a key in raw mode, not a signal), SIGTERM from elsewhere,
 * "no". Each stops the run where it is, journaled and resumable, with
 * nothing rolled back; "no" is not shown as done.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { CLI, tempDir, writeRunbook } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

interface Terminal {
  /** Everything the terminal showed so far, escape sequences removed. */
  screen(): string;
  type(keys: string): void;
  readonly pid: Promise<number>;
  readonly exit: Promise<number | null>;
}

// eslint-disable-next-line no-control-regex
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]|\r/g, '');

/** The CLI under a pseudo-terminal; its pid is read from the journal's first line of this process. */
function atTerminal(cwd: string, args: readonly string[], journal: () => string | undefined): Terminal {
  // A new pseudo-terminal is 0 x 0: listr2 would draw nothing in it.
  const command = `stty cols 120 rows 40; ${[process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env: { ...process.env, TERM: 'xterm' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  const started = Date.now();
  const pid = (async () => {
    for (;;) {
      const file = journal();
      const line = (file === undefined ? '' : readFileSync(file, 'utf8'))
        .split('\n')
        .filter((l) => l.includes('"run.started"') || l.includes('"run.resumed"'))
        .at(-1);
      if (line !== undefined && Date.parse((JSON.parse(line) as { record: { ts: string } }).record.ts) >= started)
        return (JSON.parse(line) as { record: { event: { pid: number } } }).record.event.pid;
      if (Date.now() - started > 30_000) throw new Error('the run did not journal its start');
      await sleep(50);
    }
  })();
  return { screen: () => stripAnsi(out), type: (keys) => child.stdin.write(keys), pid, exit };
}

describe('a confirmation at a terminal', { timeout: 120_000 }, () => {
  let server: TestServer;
  let dir: string;
  let stateDir: string;
  const journal = () => {
    const runs = path.join(stateDir, 'runs');
    if (!existsSync(runs)) return undefined;
    const id = readdirSync(runs).sort().at(-1);
    return id === undefined ? undefined : path.join(runs, id, 'journal.jsonl');
  };
  const events = () =>
    readFileSync(journal() ?? '', 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { record: { event: { type: string } } }).record.event.type);
  const rows = async () => (await server.query<{ v: string }>('SELECT v FROM done ORDER BY v', [], 'shop')).map((r) => r.v);
  const waitForQuestion = (t: Terminal) => until('the question on the terminal', () => t.screen().includes('Switch now?'), 30_000);

  before(async () => {
    server = await startPostgres(18);
    await server.query('CREATE DATABASE shop');
    await server.query('CREATE TABLE done (v text)', [], 'shop');
    dir = tempDir('cutover-prompt-');
    stateDir = path.join(dir, 'state');
    writeRunbook(
      dir,
      'cutover.yaml',
      `version: 1
name: prompt
connections:
  db: { kind: postgres, url: "${server.urlFor('shop')}" }
steps:
  - id: first
    kind: sql
    connection: db
    sql: INSERT INTO done VALUES ('first')
    rollback: DELETE FROM done WHERE v = 'first'
  - id: gate
    kind: confirm
    message: Switch now?
  - id: last
    kind: sql
    connection: db
    sql: INSERT INTO done VALUES ('last')
`,
    );
  });
  after(async () => {
    await server.stop();
  });

  it('Ctrl-C typed at the question stops the run (exit 5), SIGTERM there too, "no" as well; nothing is rolled back; yes goes on', async () => {
    const run = atTerminal(dir, ['run', 'cutover.yaml', '--state-dir', stateDir], journal);
    await waitForQuestion(run);
    run.type('\x03');
    assert.equal(await run.exit, 5, run.screen());
    assert.match(run.screen(), /gate: interrupted by SIGINT while applying/);
    assert.doesNotMatch(run.screen(), /rollback \(|rolled-back|Cancelled prompt/);
    assert.deepEqual(await rows(), ['first'], 'the first step stays applied');
    assert.ok(events().includes('run.interrupted'), events().join(' '));

    // SIGTERM while the question waits: enquirer would exit 143 at once, nothing journaled.
    const resumed = atTerminal(dir, ['resume', '--state-dir', stateDir], journal);
    await waitForQuestion(resumed);
    process.kill(await resumed.pid, 'SIGTERM');
    assert.equal(await resumed.exit, 5, resumed.screen());
    assert.match(resumed.screen(), /gate: interrupted by SIGTERM while applying/);
    assert.equal(events().filter((e) => e === 'run.interrupted').length, 2);

    const declined = atTerminal(dir, ['resume', '--state-dir', stateDir], journal);
    await waitForQuestion(declined);
    declined.type('\r');
    assert.equal(await declined.exit, 5, declined.screen());
    assert.match(declined.screen(), /↓ gate: stopped: step "gate": confirmation declined: Switch now\?/);
    assert.doesNotMatch(declined.screen(), /✔ gate/);
    assert.deepEqual(await rows(), ['first']);

    const yes = atTerminal(dir, ['resume', '--state-dir', stateDir], journal);
    await waitForQuestion(yes);
    yes.type('y');
    yes.type('\r');
    assert.equal(await yes.exit, 0, yes.screen());
    assert.deepEqual(await rows(), ['first', 'last']);
  });
});
