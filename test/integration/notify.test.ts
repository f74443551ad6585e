/**
 * Notifications against a local HTTP server: a run POSTs a small JSON event
 * with a Slack-compatible `text` when it starts, when a step fails and when it
 * finishes (outcome and report command), to the runbook's `notify:` URLs and
 * `--notify`. A hook that refuses the connection, answers 500 or never
 * answers does not fail the run: it is journaled as notify.failed. Secrets
 * in a hook's URL never reach the journal. A plan notifies nobody.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { journalFile, loadRunbook, registry, runRunbook } from '../../src/index.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

interface Received {
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: { event: string; runId: string; text: string; stepId?: string; status?: string; report?: string; journal?: string };
}

const SECRET = 'hook-token-8c2d4e6f';

describe('notifications', () => {
  const received: Received[] = [];
  let server: Server;
  let base = '';
  /** A port where nothing listens: the connection is refused. */
  let refused = '';
  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (req.url?.startsWith('/hang')) return; // never answers
        received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(body) as Received['body'] });
        res.statusCode = req.url?.startsWith('/broken') ? 500 : 200;
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    refused = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/nobody`;
    await new Promise<void>((resolve) =>
      closed.close(() => {
        resolve();
      }),
    );
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
  });

  it('run started, step failed and run finished reach every hook; failing hooks are journaled and do not change the outcome', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const file = writeRunbook(
      dir,
      'r.yaml',
      `version: 1
name: nightly
ticket: CHG-7
notify:
  - "${base}/hook?token=\${secret:HOOK_TOKEN}"
  - "${refused}"
  - "${base}/broken"
steps:
  - id: gate
    kind: confirm
    message: go?
  - id: fails
    kind: shell
    command: ["${process.execPath}", "-e", "process.exit(3)"]
`,
    );
    const env = { HOOK_TOKEN: SECRET };
    assert.equal((await cutover(['plan', file, '--state-dir', state], env)).code, 0);
    assert.equal(received.length, 0, 'a plan notifies nobody');

    const run = await cutover(['run', file, '--yes', '--json', '--notify', `${base}/extra`, '--state-dir', state], env);
    assert.equal(run.code, 1, run.stderr);
    const { runId } = JSON.parse(run.stdout) as { runId: string };
    const to = (prefix: string) => received.filter((r) => r.path.startsWith(prefix));
    assert.deepEqual(
      to('/hook').map((r) => r.body.event),
      ['run.started', 'step.failed', 'run.finished'],
    );
    assert.deepEqual(
      to('/extra').map((r) => r.body.event),
      ['run.started', 'step.failed', 'run.finished'],
    );
    assert.equal(to('/hook')[0]?.path, `/hook?token=${SECRET}`, 'the hook gets its real URL');
    for (const r of to('/hook')) {
      assert.equal(r.contentType, 'application/json');
      assert.equal(r.body.runId, runId);
    }
    const [started, failed, finished] = to('/hook').map((r) => r.body);
    assert.equal(started?.text, `cutover: run of "nightly" (CHG-7) started (run ${runId})`);
    assert.equal(failed?.stepId, 'fails');
    assert.match(failed?.text ?? '', /^cutover: step "fails" of "nightly" \(CHG-7\) failed while applying: /);
    assert.equal(finished?.status, 'rolled-back');
    assert.equal(finished?.report, `cutover report ${runId} --format html`);
    assert.equal(finished?.text, `cutover: run ${runId} of "nightly" (CHG-7) finished: rolled-back`);

    const journal = readFileSync(journalFile(path.join(state, 'runs', runId)), 'utf8');
    const failures = journal
      .split('\n')
      .filter((l) => l.includes('"type":"notify.failed"'))
      .map((l) => (JSON.parse(l) as { record: { event: { url: string; event: string; reason: string } } }).record.event);
    assert.deepEqual(
      failures.filter((f) => f.url === refused).map((f) => f.event),
      ['run.started', 'step.failed', 'run.finished'],
    );
    assert.ok(
      failures.filter((f) => f.url === refused).every((f) => /fetch failed/.test(f.reason)),
      JSON.stringify(failures),
    );
    assert.deepEqual(
      failures.filter((f) => f.url === `${base}/broken`).map((f) => f.reason),
      ['HTTP 500 Internal Server Error', 'HTTP 500 Internal Server Error', 'HTTP 500 Internal Server Error'],
    );
    assert.ok(!journal.includes(SECRET), 'the hook URL is redacted in the journal');
    assert.equal((await cutover(['audit', 'verify', runId, '--state-dir', state])).code, 0, 'the journal still verifies');
  });

  it('a run that waits for a person says so, with the question, before it asks', async () => {
    const dir = tempDir();
    const file = writeRunbook(
      dir,
      'r.yaml',
      `version: 1\nname: gated\nnotify: ["${base}/gate"]\nsteps:\n  - id: gate\n    kind: confirm\n    message: Application servers stopped?\n`,
    );
    let seenBeforeAnswer: string[] = [];
    const result = await runRunbook(loadRunbook(file, { registry }), {
      registry,
      stateDir: path.join(dir, 'state'),
      confirm: async () => {
        // The hook was sent before the question; give it the time it needs to arrive.
        for (let i = 0; i < 200 && !received.some((r) => r.path === '/gate' && r.body.event === 'confirmation.waiting'); i++)
          await new Promise((r) => setTimeout(r, 50));
        seenBeforeAnswer = received.filter((r) => r.path === '/gate').map((r) => r.body.event);
        return true;
      },
    });
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(seenBeforeAnswer, ['run.started', 'confirmation.waiting']);
    const waiting = received.find((r) => r.path === '/gate' && r.body.event === 'confirmation.waiting')?.body;
    assert.equal(waiting?.stepId, 'gate');
    assert.match(waiting?.text ?? '', /waits for a person at step "gate": Application servers stopped\?$/);
  });

  it('a hook that never answers times out; the run ends as it would have', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const file = writeRunbook(dir, 'r.yaml', `version: 1\nname: quiet\nnotify: ["${base}/hang"]\nsteps:\n  - id: gate\n    kind: confirm\n    message: go?\n`);
    const run = await cutover(['run', file, '--yes', '--json', '--state-dir', state]);
    assert.equal(run.code, 0, run.stderr);
    const { runId } = JSON.parse(run.stdout) as { runId: string };
    const journal = readFileSync(journalFile(path.join(state, 'runs', runId)), 'utf8');
    assert.match(journal, /"type":"notify.failed","url":"http:\/\/127\.0\.0\.1:\d+\/hang","event":"run\.started","reason":"no answer within 5000 ms"/);
  });
});
