/**
 * `cutover check` against real PostgreSQL 18: each kind's check hook reports
 * what a role lacks (REPLICATION, wal_level, pg_signal_backend, CREATEROLE,
 * UPDATE on sequences, a program on PATH) with what to fix, and turns ok
 * once it is fixed; `plan` prints the same table first and exits 2 while
 * anything is wrong.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

interface Finding {
  severity: string;
  check: string;
  message: string;
  fix?: string;
}
interface CheckJson {
  ok: boolean;
  connections: { name: string; status: string; role: string; superuser: boolean; inRecovery: boolean; serverVersion: string; tls: string }[];
  steps: { stepId: string; blockedBy: string[]; findings: Finding[] }[];
}

describe('cutover check: per-step privileges, settings and programs (PostgreSQL 18)', () => {
  let server: TestServer;
  const dir = tempDir();
  let file = '';

  before(async () => {
    server = await startPostgres(18);
    await server.query(`CREATE ROLE limited LOGIN;
      CREATE ROLE shop_app LOGIN;
      CREATE ROLE cannot_login NOLOGIN;
      CREATE SEQUENCE public.owned_by_postgres;
      CREATE TABLE public.invoices (id int);
      ALTER SEQUENCE public.owned_by_postgres OWNED BY public.invoices.id;
      CREATE TABLE public.orders (id int);
      GRANT CREATE ON DATABASE postgres TO limited`);
    file = writeRunbook(
      dir,
      'needs.yaml',
      `version: 1
name: needs privileges
connections:
  db:
    kind: postgres
    url: postgres://limited@127.0.0.1:${server.port}/postgres
steps:
  - id: slot
    kind: slot-create
    connection: db
    type: logical
    slots: [cutover_test]
  - id: freeze
    kind: freeze-writes
    connection: db
    roles: [nobody]
    probe: false
  - id: probe-ok
    kind: freeze-writes
    connection: db
    roles: [shop_app]
  - id: probe-refused
    kind: freeze-writes
    connection: db
    roles: [cannot_login]
  - id: stats
    kind: analyze
    connection: db
    include: [public.orders]
  - id: sequences
    kind: sequence-reset
    connection: db
    from: data
  - id: tool
    kind: shell
    command: [no-such-program-cutover-test, --x]
    rollback: [psql, --version]
`,
    );
  });
  after(async () => {
    await server.stop();
  });

  const check = async () => {
    const result = await cutover(['check', file, '--json']);
    return { code: result.code, json: JSON.parse(result.stdout) as CheckJson, result };
  };
  const finding = (json: CheckJson, stepId: string, name: string): Finding => {
    const found = json.steps.find((s) => s.stepId === stepId)?.findings.find((f) => f.check === name);
    assert.ok(found, `no finding "${name}" for step ${stepId}: ${JSON.stringify(json.steps)}`);
    return found;
  };

  it('reports what the role lacks, each with what to fix, and exits 2', async () => {
    const { code, json } = await check();
    assert.equal(code, 2);
    assert.equal(json.ok, false);
    assert.deepEqual(
      {
        status: json.connections[0]?.status,
        role: json.connections[0]?.role,
        superuser: json.connections[0]?.superuser,
        inRecovery: json.connections[0]?.inRecovery,
        tls: json.connections[0]?.tls,
      },
      { status: 'ok', role: 'limited', superuser: false, inRecovery: false, tls: 'none' },
    );
    assert.match(json.connections[0]?.serverVersion ?? '', /^18\./);
    assert.deepEqual(finding(json, 'slot', 'REPLICATION'), {
      severity: 'error',
      check: 'REPLICATION',
      message: 'role limited is neither superuser nor has REPLICATION',
      fix: 'ALTER ROLE limited REPLICATION',
    });
    assert.equal(finding(json, 'slot', 'wal_level').severity, 'error');
    assert.match(finding(json, 'slot', 'wal_level').message, /wal_level is replica; logical slots need logical/);
    assert.equal(finding(json, 'slot', 'max_replication_slots').severity, 'ok');
    assert.equal(finding(json, 'freeze', 'pg_signal_backend').severity, 'error');
    assert.equal(finding(json, 'freeze', 'pg_signal_backend').fix, 'GRANT pg_signal_backend TO limited');
    assert.equal(finding(json, 'freeze', 'ALTER ROLE ... SET').severity, 'error');
    // The probe logs in as the first frozen role, without a password: pg_hba (here trust) must admit it.
    assert.deepEqual(finding(json, 'probe-ok', 'probe login'), {
      severity: 'ok',
      check: 'probe login',
      message: 'pg_hba admits shop_app to postgres without a password',
    });
    assert.equal(finding(json, 'probe-refused', 'probe login').severity, 'error');
    assert.match(
      finding(json, 'probe-refused', 'probe login').message,
      /^cannot log in as cannot_login to probe the freeze: .*role "cannot_login" is not permitted to log in/,
    );
    assert.equal(finding(json, 'stats', 'ANALYZE privilege').severity, 'error');
    assert.match(
      finding(json, 'stats', 'ANALYZE privilege').message,
      /^1 of 1 relations cannot be analyzed by this role \(e\.g\. public\.orders\); ANALYZE would skip them with only a warning$/,
    );
    assert.match(
      finding(json, 'sequences', 'UPDATE on sequences').message,
      /^1 of 1 sequences cannot be set by this role \(e\.g\. public\.owned_by_postgres\)$/,
    );
    // The plan reads each sequence's state and verify its owning column's max: run would fail there, so check says it.
    assert.match(
      finding(json, 'sequences', 'SELECT on sequences').message,
      /^1 of 1 sequences cannot be read by this role \(e\.g\. public\.owned_by_postgres\); the plan reads each one's state$/,
    );
    assert.match(
      finding(json, 'sequences', 'SELECT on owning columns').message,
      /^1 of 1 columns that own a sequence cannot be read by this role \(e\.g\. public\.invoices\.id\); verify proves/,
    );
    assert.deepEqual(finding(json, 'tool', 'program no-such-program-cutover-test'), {
      severity: 'error',
      check: 'program no-such-program-cutover-test',
      message: 'no-such-program-cutover-test is not found on PATH',
      fix: 'install it, or give its full path',
    });
    assert.equal(finding(json, 'tool', 'program psql').severity, 'ok');
    assert.match(finding(json, 'tool', 'program psql').message, /psql \(PostgreSQL\) \d+/);
  });

  it('turns ok once the role has what it needs', async () => {
    await server.query(`ALTER ROLE limited REPLICATION CREATEROLE;
      GRANT pg_signal_backend TO limited;
      GRANT SELECT, UPDATE ON SEQUENCE public.owned_by_postgres TO limited;
      GRANT SELECT ON public.invoices TO limited;
      GRANT MAINTAIN ON public.orders TO limited`);
    try {
      const { json } = await check();
      assert.equal(finding(json, 'slot', 'REPLICATION').severity, 'ok');
      assert.equal(finding(json, 'freeze', 'pg_signal_backend').severity, 'ok');
      assert.equal(finding(json, 'freeze', 'ALTER ROLE ... SET').severity, 'ok');
      assert.equal(finding(json, 'sequences', 'UPDATE on sequences').severity, 'ok');
      assert.equal(finding(json, 'sequences', 'SELECT on sequences').severity, 'ok');
      assert.equal(finding(json, 'sequences', 'SELECT on owning columns').severity, 'ok');
      assert.equal(finding(json, 'stats', 'ANALYZE privilege').severity, 'ok');
      // Still wrong: wal_level needs a restart, and the program does not exist.
      assert.equal(finding(json, 'slot', 'wal_level').severity, 'error');
      assert.equal(json.ok, false);
    } finally {
      await server.query(`ALTER ROLE limited NOREPLICATION NOCREATEROLE;
        REVOKE pg_signal_backend FROM limited;
        REVOKE SELECT, UPDATE ON SEQUENCE public.owned_by_postgres FROM limited;
        REVOKE SELECT ON public.invoices FROM limited;
        REVOKE MAINTAIN ON public.orders FROM limited`);
    }
  });

  it('plan prints the check table first and exits 2 while something is wrong, though every step planned', async () => {
    const result = await cutover(['plan', file, '--only', 'tool', '--state-dir', path.join(dir, 'state')]);
    assert.equal(result.code, 2, result.stdout + result.stderr);
    assert.match(result.stderr, /^Connections:/);
    assert.match(
      result.stderr,
      /tool\s+shell\s+error\s+program no-such-program-cutover-test\s+no-such-program-cutover-test is not found on PATH\n(?:.*\n)*? {2}tool: program no-such-program-cutover-test: fix: install it, or give its full path\n/,
    );
    assert.doesNotMatch(result.stderr, /\bslot\s+slot-create/, '--only limits the checked steps too');
    assert.match(result.stdout, /run \S+: planned/);
  });

  it('run does not start while the check finds a problem; --ignore-check starts it anyway', async () => {
    const stateDir = path.join(dir, 'state-run');
    const refused = await cutover(['run', file, '--only', 'tool', '--yes', '--state-dir', stateDir]);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /no-such-program-cutover-test is not found on PATH/);
    assert.match(refused.stderr, /run not started: the check above found problems to fix; fix them, or start anyway with --ignore-check/);
    assert.equal(existsSync(path.join(stateDir, 'runs')), false, 'nothing journaled');
    const anyway = await cutover(['run', file, '--only', 'tool', '--yes', '--ignore-check', '--state-dir', stateDir]);
    assert.match(anyway.stdout, /run \S+: rolled-back/, anyway.stdout + anyway.stderr);
  });
});
