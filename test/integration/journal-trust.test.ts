/**
 * Only a verified journal is acted on: one edited byte stops rollback,
 * resume, status and report (exit 3, line named); a before-state forged into
 * another shape with a recomputed chain is refused by the kind's schema; a
 * truncated journal is caught by --head; with a key, a recomputed chain is
 * caught. Journal handling does not depend on the server version, so this
 * runs on one.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

const version = VERSIONS.at(-1) ?? 18;

function journalOf(stateDir: string): string {
  const runs = path.join(stateDir, 'runs');
  return path.join(runs, readdirSync(runs).sort().at(-1) ?? '', 'journal.jsonl');
}

/** Rewrites a journal as someone who can edit the file would: change records, recompute every link. */
function rechain(file: string, edit: (record: { event: Record<string, unknown> }) => void, hash: (body: string) => string): void {
  let prev = '0'.repeat(64);
  const out: string[] = [];
  for (const line of readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)) {
    const record = (JSON.parse(line) as { record: { prev: string; event: Record<string, unknown> } }).record;
    record.prev = prev;
    edit(record);
    const body = JSON.stringify(record);
    prev = hash(body);
    out.push(`{"hash":"${prev}","record":${body}}`);
  }
  writeFileSync(file, `${out.join('\n')}\n`);
}

const sha256 = (body: string) => createHash('sha256').update(body).digest('hex');

describe(`journal trust on PostgreSQL ${version}`, () => {
  let server: TestServer;
  let n = 0;
  async function freshDb(): Promise<string> {
    const name = `j${++n}`;
    await server.query(`CREATE DATABASE ${name}`);
    await server.query('CREATE TABLE t (v text)', [], name);
    return name;
  }
  /** A run that applied `a` and stopped at a confirmation: resumable and undoable. */
  async function stoppedRun(env: Record<string, string> = {}) {
    const name = await freshDb();
    const dir = tempDir();
    const file = writeRunbook(
      dir,
      'r.yaml',
      `version: 1
name: trust
connections:
  db: { kind: postgres, url: "${server.urlFor(name)}" }
steps:
  - id: a
    kind: sql
    connection: db
    sql: INSERT INTO t VALUES ('a')
    rollback: DELETE FROM t WHERE v = 'a'
  - id: gate
    kind: confirm
    message: go on?
`,
    );
    const stateDir = path.join(dir, 'state');
    const all = { CUTOVER_STATE_DIR: stateDir, ...env };
    const run = await cutover(['run', file], all);
    assert.equal(run.code, 5, run.stderr);
    const journal = journalOf(stateDir);
    return { name, env: all, journal, runId: path.basename(path.dirname(journal)), rows: async () => server.query('SELECT v FROM t', [], name) };
  }

  before(async () => {
    server = await startPostgres(version);
  });
  after(async () => {
    await server.stop();
  });

  it('one edited byte: rollback, resume, status and report refuse (exit 3), naming the first bad line', async () => {
    const { env, journal, runId, rows } = await stoppedRun();
    const text = readFileSync(journal, 'utf8');
    const at = text.indexOf('INSERT INTO t VALUES');
    assert.ok(at > 0);
    writeFileSync(journal, `${text.slice(0, at)}X${text.slice(at + 1)}`);
    const bad = text.slice(0, at).split('\n').length;
    for (const args of [
      ['rollback', runId, '--yes'],
      ['resume', runId, '--yes'],
      ['status', runId],
      ['report', runId],
    ]) {
      const result = await cutover(args, env);
      assert.equal(result.code, 3, `${args[0]}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`the journal of run ${runId} does not verify \\(line ${bad}: record does not match its hash\\)`), args[0]);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
    assert.deepEqual(await rows(), [{ v: 'a' }], 'nothing was rolled back or resumed');
  });

  it('a before-state forged into another shape, chain recomputed: rollback refuses it (exit 3) and leaves the data alone', async () => {
    const { env, journal, runId, rows } = await stoppedRun();
    rechain(
      journal,
      (record) => {
        if (record.event['type'] === 'step.applied' || record.event['type'] === 'step.committing') record.event['before'] = { forged: 1 };
      },
      sha256,
    );
    assert.equal((await cutover(['audit', 'verify', runId], env)).code, 0, 'without a key a recomputed chain verifies');
    const result = await cutover(['rollback', runId, '--yes'], env);
    assert.equal(result.code, 3, result.stderr);
    // The message names the journal line the forged before-state was read from.
    const forgedLine =
      readFileSync(journal, 'utf8')
        .split('\n')
        .findLastIndex((l) => l.includes('"forged"')) + 1;
    assert.ok(forgedLine > 0);
    assert.match(
      result.stdout + result.stderr,
      new RegExp(`step "a": the journaled before-state \\(journal line ${forgedLine}\\) is not what a sql step records`),
    );
    assert.deepEqual(await rows(), [{ v: 'a' }]);
  });

  it('a truncated journal passes a plain verify but not --head with the head printed at the end of the run', async () => {
    const { env, journal, runId } = await stoppedRun();
    const abandon = await cutover(['abandon', runId, '--reason', 'test'], env);
    assert.equal(abandon.code, 0, abandon.stderr);
    const verified = await cutover(['audit', 'verify', runId], env);
    const head = /head ([0-9a-f]{64})/.exec(verified.stdout)?.[1] ?? '';
    assert.equal(head.length, 64);
    const lines = readFileSync(journal, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0);
    writeFileSync(journal, `${lines.slice(0, -2).join('\n')}\n`);
    assert.equal((await cutover(['audit', 'verify', runId], env)).code, 0, 'a truncated chain is still a chain');
    const anchored = await cutover(['audit', 'verify', runId, '--head', head], env);
    assert.equal(anchored.code, 3);
    assert.match(anchored.stderr, new RegExp(`the journal ends at [0-9a-f]{64}, not at the expected head ${head}`));
    assert.equal((await cutover(['audit', 'verify', runId, '--head', lines.at(-3)?.slice(9, 73) ?? ''], env)).code, 0);
  });

  it('with CUTOVER_JOURNAL_KEY the chain is an HMAC: a chain recomputed without the key, or with another, is caught', async () => {
    const key = 'k'.repeat(32);
    const { env, journal, runId } = await stoppedRun({ CUTOVER_JOURNAL_KEY: key });
    const good = await cutover(['audit', 'verify', runId], env);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /hmac-sha256 chain/);
    const noKey = await cutover(['audit', 'verify', runId], { ...env, CUTOVER_JOURNAL_KEY: '' });
    assert.equal(noKey.code, 3);
    assert.match(noKey.stderr, /the journal is keyed/);
    const original = readFileSync(journal, 'utf8');

    const edit = (record: { event: Record<string, unknown> }) => {
      if (record.event['type'] === 'run.started') record.event['operator'] = 'someone-else';
    };
    rechain(journal, edit, sha256);
    const plain = await cutover(['audit', 'verify', runId], env);
    assert.equal(plain.code, 3);
    assert.match(
      plain.stderr,
      /first break at line 1: no record matches its HMAC: the chain was rewritten without the key, or with another \(record does not match its HMAC/,
    );

    writeFileSync(journal, original);
    rechain(journal, edit, (body) => createHmac('sha256', 'x'.repeat(32)).update(body).digest('hex'));
    const otherKey = await cutover(['audit', 'verify', runId], env);
    assert.equal(otherKey.code, 3);
    assert.match(otherKey.stderr, /record does not match its HMAC/);
    assert.equal((await cutover(['rollback', runId, '--yes'], env)).code, 3, 'rollback refuses it too');

    writeFileSync(journal, original);
    rechain(
      journal,
      (record) => {
        edit(record);
        if (record.event['type'] === 'run.started') delete record.event['journal'];
      },
      sha256,
    );
    const downgraded = await cutover(['audit', 'verify', runId], env);
    assert.equal(downgraded.code, 3, 'dropping the key marker does not help: with a key set, an unkeyed chain fails');
    assert.match(downgraded.stderr, /a journal key is set but this journal is not keyed/);
  });
});
