/**
 * No secret leaves the process: a SQL step and a shell step that print
 * secrets fail, and stdout, stderr, the journal, the Markdown/HTML/JSON
 * reports and a saved plan are searched for every form of them: the
 * connection password raw and percent-encoded, a `${secret:NAME}` value, and
 * a secret far longer than any truncation.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook, type CliResult } from '../helpers/cli.js';

const DB_PASSWORD = 'db:pa ss/w%rd@x';
const APP_SECRET = 'app-s3cret-value';
// Longer than the 4 KiB of stderr and the 16 KiB of output a journal keeps.
const LONG_SECRET = Array.from({ length: 3000 }, (_, i) => `L${i}x`).join('');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

function leaks(text: string): string[] {
  const found: string[] = [];
  for (const [label, secret] of [
    ['db password', DB_PASSWORD],
    ['db password, percent-encoded', encodeURIComponent(DB_PASSWORD)],
    ['${secret:APP_PW}', APP_SECRET],
    ['${secret:APP_PW}, percent-encoded', encodeURIComponent(APP_SECRET)],
  ] as const) {
    if (text.includes(secret)) found.push(label);
  }
  // Any 24-character piece of the long secret: a truncation through it must not leave a fragment.
  for (let i = 0; i + 24 <= LONG_SECRET.length; i += 97) {
    if (text.includes(LONG_SECRET.slice(i, i + 24))) {
      found.push(`long secret at ${i}`);
      break;
    }
  }
  return found;
}

describe('secrets never leave the process (PostgreSQL 18)', () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(18);
  });
  after(async () => {
    await server.stop();
  });

  it('in stdout, stderr, the journal, md/html/json reports and a saved plan', async () => {
    const dir = tempDir();
    const stateDir = path.join(dir, 'state');
    const file = writeRunbook(
      dir,
      'leaky.yaml',
      `version: 1
name: leaky
connections:
  db:
    kind: postgres
    url: postgres://postgres:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:${server.port}/postgres
steps:
  - id: fine-sql
    kind: sql
    connection: db
    sql: SELECT length('\${secret:APP_PW}') > 0
  - id: bad-sql
    kind: sql
    connection: db
    sql: SELECT '\${secret:APP_PW}'::int
  - id: bad-shell
    kind: shell
    connection: db
    env: { APP: "\${secret:APP_PW}", LONG: "\${secret:LONG_PW}" }
    command: [sh, -c, 'echo "PGPASSWORD=$PGPASSWORD app=$APP"; echo "PGPASSWORD=$PGPASSWORD app=$APP long=$LONG" >&2; exit 3']
`,
    );
    const env = { APP_PW: APP_SECRET, LONG_PW: LONG_SECRET, PGPASSFILE: path.join(dir, 'none') };
    const outputs: [string, CliResult][] = [];
    const cli = async (label: string, args: string[], code: number) => {
      const result = await cutover([...args, '--state-dir', stateDir], env);
      assert.equal(result.code, code, `${label}: ${result.stdout}\n${result.stderr}`);
      outputs.push([label, result]);
      return result;
    };

    const planFile = path.join(dir, 'plan.json');
    await cli('plan --out', ['plan', file, '--only', 'fine-sql', '--out', planFile], 0);
    await cli('plan --json', ['plan', file, '--json'], 0);
    await cli('run --plan', ['run', file, '--yes', '--only', 'fine-sql', '--plan', planFile], 0);
    const badSql = await cli('run bad-sql', ['run', file, '--yes', '--only', 'bad-sql'], 1);
    assert.match(badSql.stderr, /invalid input syntax for type integer: "\[redacted\]"/);
    const badShell = await cli('run bad-shell', ['run', file, '--yes', '--only', 'bad-shell'], 1);
    assert.match(badShell.stderr, /PGPASSWORD=\[redacted\] app=\[redacted\] long=\[redacted\]/);
    await cli('run bad-shell --json', ['run', file, '--yes', '--only', 'bad-shell', '--json'], 1);
    await cli('status', ['status', '--json'], 0);
    for (const format of ['md', 'html', 'json']) {
      await cli(`report ${format}`, ['report', '--format', format], 0);
      await cli(`report ${format} --out`, ['report', '--format', format, '--out', path.join(dir, `report.${format}`)], 0);
    }

    const problems: string[] = [];
    for (const [label, result] of outputs) {
      for (const leak of leaks(result.stdout)) problems.push(`${label} stdout: ${leak}`);
      for (const leak of leaks(result.stderr)) problems.push(`${label} stderr: ${leak}`);
    }
    const written = [planFile, ...['md', 'html', 'json'].map((f) => path.join(dir, `report.${f}`)), ...filesUnder(stateDir)];
    assert.ok(written.some((f) => f.endsWith('journal.jsonl')));
    for (const f of written) for (const leak of leaks(readFileSync(f, 'utf8'))) problems.push(`${path.relative(dir, f)}: ${leak}`);
    assert.deepEqual(problems, []);
    // The saved plan shows the statement, with the secret masked, and still executed (run --plan above exited 0).
    assert.match(readFileSync(planFile, 'utf8'), /SELECT length\('\[redacted\]'\) > 0/);
  });

  it('refuses a ${secret:NAME} or a password shorter than 4 characters at validation, with its position', async () => {
    const dir = tempDir();
    const file = writeRunbook(
      dir,
      'short.yaml',
      `version: 1
name: short
connections:
  db:
    kind: postgres
    url: postgres://postgres:abc@127.0.0.1:${server.port}/postgres
steps:
  - id: a
    kind: sql
    connection: db
    sql: SELECT '\${secret:TINY}'
`,
    );
    const result = await cutover(['validate', file], { TINY: 'xyz' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /short\.yaml:6:10: connections\.db\.url: the password \(from the URL\) is shorter than 4 characters/);
    assert.match(result.stderr, /short\.yaml:11:10: steps\[0\]\.sql: secret TINY is shorter than 4 characters/);
    assert.doesNotMatch(result.stderr, /xyz|abc/);
  });

  it("a secret with a quote inside SQL: '${secret:NAME}' is refused at validation; ${secret:NAME:literal} runs, and no piece of it is anywhere", async () => {
    const dir = tempDir();
    const stateDir = path.join(dir, 'state');
    // The trial's password: a quote, then a piece that a syntax error would echo; and a backslash.
    const conninfo = "host=localhost password=Fb'Qx72secretpw\\x";
    const runbook = (sql: string) =>
      writeRunbook(
        dir,
        'quoted.yaml',
        `version: 1
name: quoted
connections:
  db:
    kind: postgres
    url: ${server.url}
steps:
  - id: a
    kind: sql
    connection: db
    sql: ${sql}
    verify: { query: "SELECT md5(${sql.includes(':literal') ? '${secret:CONNINFO:literal}' : "'x'"})", expect: ${JSON.stringify(createHash('md5').update(conninfo).digest('hex'))} }
`,
      );
    const byHand = await cutover(['validate', runbook("SELECT '${secret:CONNINFO}' AS v")], { CONNINFO: conninfo });
    assert.equal(byHand.code, 2, byHand.stderr);
    assert.match(
      byHand.stderr,
      /quoted\.yaml:11:10: steps\[0\]\.sql: secret CONNINFO holds a quote or a backslash and is written between quotes .* write \$\{secret:CONNINFO:literal\} without the quotes/,
    );

    // A password spliced into a connection string by hand: a space would cut it, and an error could show the rest.
    const spliced = await cutover(['validate', runbook("SELECT 'host=localhost password=${secret:PW}' AS v")], { PW: 'cut here Qx72secretpw' });
    assert.equal(spliced.code, 2, spliced.stderr);
    assert.match(spliced.stderr, /secret PW holds a space, a quote or a backslash and is written after password= in a connection string/);
    assert.ok(!spliced.stderr.includes('Qx72secretpw'));

    const run = await cutover(['run', runbook('SELECT length(${secret:CONNINFO:literal}) AS v'), '--yes', '--state-dir', stateDir], { CONNINFO: conninfo });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const report = await cutover(['report', '--last', '--format', 'md', '--state-dir', stateDir]);
    const everything = [run.stdout, run.stderr, report.stdout, ...filesUnder(stateDir).map((f) => readFileSync(f, 'utf8'))].join('\n');
    assert.ok(everything.includes('[redacted]'), 'the statement was journaled, with the secret masked');
    for (const piece of ['Qx72secretpw', 'Fb', "Fb''Qx72"]) assert.ok(!everything.includes(piece), piece);
  });
});
