/**
 * Connections as users write them, against servers that really ask for a
 * password: scram-sha-256 (PostgreSQL 18, with TLS) and md5 (PostgreSQL 17).
 * Each form logs in through `cutover check` and through a shell step's
 * environment (psql); a wrong password and an unreachable host fail in
 * `check`, `plan` and `run` with exit 2, naming the connection, printing no
 * password.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';
import { freePort } from '../../scripts/embedded-postgres.js';

const USER = 'app';
// Characters that must be percent-encoded in a URL, and a ':' that .pgpass must escape.
const PASSWORD = 'S3cr%t:p@ss w/rd#1';
const ENCODED = encodeURIComponent(PASSWORD);

/** A loopback port nothing listens on (the harness's free port, not started). */
const closedPort = freePort;

function runbook(connection: string, steps = ''): string {
  return `version: 1
name: connection forms
connections:
  db:
    kind: postgres
${connection
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
steps:
  - id: whoami
    kind: sql
    connection: db
    sql: SELECT 1
  - id: psql
    kind: shell
    connection: db
    readOnly: true
    command: [psql, -XAtc, "SELECT current_user || ' ' || ssl || coalesce(' ' || client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"]
${steps}`;
}

function assertNoPassword(output: string): void {
  assert.ok(!output.includes(PASSWORD), `the password leaked:\n${output}`);
  assert.ok(!output.includes(ENCODED), `the encoded password leaked:\n${output}`);
}

describe('connection forms against password-authenticating servers', () => {
  let scram: TestServer;
  let md5: TestServer;
  const dir = tempDir();
  const stateDir = path.join(dir, 'state');

  before(async () => {
    [scram, md5] = await Promise.all([
      startPostgres(18, {}, [], { auth: 'scram-sha-256', role: { user: USER, password: PASSWORD }, tls: true }),
      startPostgres(17, {}, [], { auth: 'md5', role: { user: USER, password: PASSWORD } }),
    ]);
  });
  after(async () => {
    await Promise.all([scram?.stop(), md5?.stop()]);
  });

  async function logsIn(
    title: string,
    connection: () => string,
    options: { env?: NodeJS.ProcessEnv; tls?: boolean; clientCertificate?: boolean; files?: Record<string, string> } = {},
  ): Promise<void> {
    const file = writeRunbook(dir, `${title.replaceAll(/\W+/g, '-')}.yaml`, runbook(connection()));
    for (const [name, text] of Object.entries(options.files ?? {})) {
      writeFileSync(path.join(dir, name), text);
      chmodSync(path.join(dir, name), 0o600);
    }
    const env = { PGPASSFILE: path.join(dir, 'no-such-pgpass'), ...options.env };
    const check = await cutover(['check', file, '--json'], env);
    assert.equal(check.code, 0, `${title}: check\n${check.stdout}\n${check.stderr}`);
    const result = JSON.parse(check.stdout) as { connections: { status: string; role: string; tls: string }[] };
    assert.equal(result.connections[0]?.status, 'ok');
    assert.equal(result.connections[0]?.role, USER);
    if (options.tls === true) assert.match(result.connections[0]?.tls ?? '', /^TLS/);
    else assert.equal(result.connections[0]?.tls, 'none');
    if (options.clientCertificate === true) assert.match(result.connections[0]?.tls ?? '', /\(client certificate \/?CN=app\)$/);
    // The same connection, as the environment of a command (libpq's psql).
    const plan = await cutover(['plan', file, '--json', '--state-dir', stateDir], env);
    assert.equal(plan.code, 0, `${title}: plan\n${plan.stdout}\n${plan.stderr}`);
    const planned = JSON.parse(plan.stdout) as { steps: { id: string; plan?: { output?: string } }[] };
    const psql = planned.steps.find((s) => s.id === 'psql')?.plan?.output ?? '';
    assert.match(psql.trim(), new RegExp(`^${USER} ${options.tls === true ? 'true' : 'false'}${options.clientCertificate === true ? ' /?CN=app' : ''}$`));
    assertNoPassword(check.stdout + check.stderr + plan.stdout + plan.stderr);
  }

  it('scram: url + password (the README example)', async () => {
    await logsIn('url-password', () => `url: postgres://${USER}@127.0.0.1:${scram.port}/postgres\npassword: \${secret:PW}`, {
      env: { PW: PASSWORD },
    });
  });

  it('scram: url + passwordFile', async () => {
    await logsIn('url-passwordfile', () => `url: postgres://${USER}@127.0.0.1:${scram.port}/postgres\npasswordFile: pw.txt`, {
      files: { 'pw.txt': `${PASSWORD}\n` },
    });
  });

  it('scram: the password in the URL, percent-encoded', async () => {
    await logsIn('url-embedded', () => `url: postgres://${USER}:${ENCODED}@127.0.0.1:${scram.port}/postgres`);
  });

  it('scram: host/port/user keys and PGPASSFILE', async () => {
    const escaped = PASSWORD.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
    await logsIn('pgpass', () => `host: 127.0.0.1\nport: ${scram.port}\nuser: ${USER}\ndatabase: postgres`, {
      files: { pgpass: `# comment\n127.0.0.1:${scram.port}:*:${USER}:${escaped}\n` },
      env: { PGPASSFILE: path.join(dir, 'pgpass') },
    });
  });

  it('scram over TLS: sslmode=verify-full with sslrootcert in the URL, and sslmode: require as a key', async () => {
    await logsIn(
      'tls-verify-full',
      () =>
        `url: postgres://${USER}@localhost:${scram.port}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(scram.caFile ?? '')}\npassword: \${secret:PW}`,
      { env: { PW: PASSWORD }, tls: true },
    );
    await logsIn('tls-require', () => `url: postgres://${USER}@127.0.0.1:${scram.port}/postgres\nsslmode: require\npassword: \${secret:PW}`, {
      env: { PW: PASSWORD },
      tls: true,
    });
  });

  it('TLS with a client certificate: sslcert and sslkey, for the session and for psql', async () => {
    await logsIn(
      'tls-client-cert',
      () =>
        `url: postgres://${USER}@localhost:${scram.port}/postgres\nsslmode: verify-full\nsslrootcert: ${scram.caFile}\nsslcert: ${scram.clientCertFile}\nsslkey: ${scram.clientKeyFile}\npassword: \${secret:PW}`,
      { env: { PW: PASSWORD }, tls: true, clientCertificate: true },
    );
  });

  it('sslmode prefer: TLS where the server offers it, plain text where it does not (as libpq)', async () => {
    await logsIn('prefer-tls', () => `url: postgres://${USER}@127.0.0.1:${scram.port}/postgres?sslmode=prefer\npassword: \${secret:PW}`, {
      env: { PW: PASSWORD },
      tls: true,
    });
    await logsIn('prefer-plain', () => `url: postgres://${USER}@127.0.0.1:${md5.port}/postgres?sslmode=prefer\npassword: \${secret:PW}`, {
      env: { PW: PASSWORD },
    });
  });

  it('md5: url + password', async () => {
    await logsIn('md5', () => `url: postgres://${USER}@127.0.0.1:${md5.port}/postgres\npassword: \${secret:PW}`, { env: { PW: PASSWORD } });
  });

  it('a wrong password fails check, plan and run with exit 2, naming the connection, never a step, printing no password', async () => {
    const wrong = 'not-the-password-42';
    const file = writeRunbook(
      dir,
      'wrong.yaml',
      `version: 1
name: wrong password
connections:
  db:
    kind: postgres
    url: postgres://${USER}@127.0.0.1:${scram.port}/postgres
    password: \${secret:PW}
  other:
    kind: postgres
    url: postgres://${USER}@127.0.0.1:${scram.port}/postgres
    password: \${secret:GOOD}
steps:
  - id: uses-other
    kind: sql
    connection: other
    sql: SELECT 1
  - id: uses-db
    kind: sql
    connection: db
    sql: SELECT 1
`,
    );
    const env = { PW: wrong, GOOD: PASSWORD, PGPASSFILE: path.join(dir, 'none') };
    const check = await cutover(['check', file], env);
    assert.equal(check.code, 2, check.stdout + check.stderr);
    assert.match(check.stdout, /db: cannot connect to app@127\.0\.0\.1:\d+\/postgres: password authentication failed for user "app" \(SQLSTATE 28P01\)/);
    assert.match(check.stdout, /uses-db\s+sql\s+skipped\s+connection\s+not checked: connection "db" failed/);
    assert.doesNotMatch(check.stdout, /uses-other\s+sql\s+skipped/);
    for (const command of ['plan', 'run']) {
      const result = await cutover(
        [command, file, '--yes', '--state-dir', stateDir].filter((a) => command === 'run' || a !== '--yes'),
        env,
      );
      assert.equal(result.code, 2, `${command}: ${result.stdout}\n${result.stderr}`);
      assert.match(result.stderr, new RegExp(`${command} not started: connection "db" could not be opened`));
      assert.doesNotMatch(result.stderr, /step "uses-/);
      for (const secret of [wrong, PASSWORD, ENCODED]) assert.ok(!(result.stdout + result.stderr).includes(secret));
    }
    for (const secret of [wrong, PASSWORD, ENCODED]) assert.ok(!(check.stdout + check.stderr).includes(secret));
  });

  it('no password at all: scram and md5 servers get the same sentence, naming where a password can come from', async () => {
    for (const server of [scram, md5]) {
      const file = writeRunbook(dir, `no-password-${server.version}.yaml`, runbook(`url: postgres://${USER}@127.0.0.1:${server.port}/postgres`));
      const check = await cutover(['check', file], { PGPASSFILE: path.join(dir, 'none') });
      assert.equal(check.code, 2, check.stdout + check.stderr);
      assert.match(
        check.stdout,
        /db: cannot connect to app@127\.0\.0\.1:\d+\/postgres: the server asks for a password and none was given \(password, passwordFile/,
      );
    }
  });

  it('plan --only opens only the connections its steps use: a server the other steps need may be down', async () => {
    const port = await closedPort();
    const file = writeRunbook(
      dir,
      'only.yaml',
      `version: 1
name: only
connections:
  db: { kind: postgres, url: "postgres://${USER}:${ENCODED}@127.0.0.1:${md5.port}/postgres" }
  down: { kind: postgres, url: "postgres://${USER}@127.0.0.1:${port}/postgres" }
steps:
  - id: here
    kind: sql
    connection: db
    sql: SELECT 1
  - id: there
    kind: sql
    connection: down
    sql: SELECT 2
`,
    );
    const only = await cutover(['plan', file, '--only', 'here', '--state-dir', stateDir]);
    assert.equal(only.code, 0, only.stdout + only.stderr);
    assert.match(only.stderr, /down: not checked: not used by the selected steps/);
    const all = await cutover(['plan', file, '--state-dir', stateDir]);
    assert.equal(all.code, 2, 'without --only every connection must open');
    assert.match(all.stderr, /plan not started: connection "down" could not be opened/);
  });

  it('an unreachable host (a loopback port nobody listens on) fails check with exit 2 and says what to check', async () => {
    const port = await closedPort();
    const file = writeRunbook(dir, 'unreachable.yaml', runbook(`url: postgres://${USER}:${ENCODED}@127.0.0.1:${port}/postgres`));
    const check = await cutover(['check', file]);
    assert.equal(check.code, 2, check.stdout + check.stderr);
    assert.match(check.stdout, /ECONNREFUSED/);
    assert.match(check.stdout, /fix: check the host and port/);
    assertNoPassword(check.stdout + check.stderr);
  });

  it('warns when a passwordFile is readable by group or others', async () => {
    writeFileSync(path.join(dir, 'open.pw'), PASSWORD);
    chmodSync(path.join(dir, 'open.pw'), 0o644);
    const file = writeRunbook(dir, 'open.yaml', runbook(`url: postgres://${USER}@127.0.0.1:${scram.port}/postgres\npasswordFile: open.pw`));
    const check = await cutover(['check', file]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /passwordFile .*open\.pw is readable by group or others \(mode 644\); chmod 600 it/);
  });
});
