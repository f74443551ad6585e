/**
 * The pgbouncer step kind against a real PgBouncer (Debian's) in transaction
 * pooling, in front of a PostgreSQL 17 (old) and an 18 (new) server, while
 * clients write through it: a switch moves the entry and loses no
 * transaction, rollback moves it back; a transaction that holds the pause
 * past its deadline, a typo in the new host and a file PgBouncer does not
 * read all leave the pooler resumed and pointing where it was.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { makeSavedPlan, planRunbook, preflight, registry, rollbackRun, runRunbook, type RunEvent } from '../../src/index.js';
import { resolveAll } from '../../src/runbook/connections.js';
import { pgbouncerStep } from '../../src/steps/pgbouncer.js';
import { applyContext } from '../helpers/apply-context.js';
import { startPgBouncer, type TestPgBouncer } from '../../scripts/pgbouncer.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { startLoad } from '../helpers/load.js';
import { until } from '../helpers/wait.js';
import { cutover } from '../helpers/cli.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { slowLoginProxy } from '../helpers/proxy.js';

describe('pgbouncer on PgBouncer in front of PostgreSQL 17 -> 18', () => {
  let old: TestServer;
  let next: TestServer;
  let bouncer: TestPgBouncer;
  let db = 0;

  before(async () => {
    [old, next] = await Promise.all([startPostgres(17), startPostgres(18)]);
  });
  after(async () => {
    await Promise.all([old.stop(), next.stop()]);
  });

  /** `count` databases, each of the same name on both servers, and a fresh pooler whose entries point at the old one (at `port`, if given). */
  async function freshMany(count: number, port = old.port, settings: { serverLoginRetry?: number } = {}): Promise<string[]> {
    const names = Array.from({ length: count }, () => `shop${++db}`);
    for (const name of names) {
      for (const server of [old, next]) {
        await server.query(`CREATE DATABASE ${name}`);
        await server.query('CREATE TABLE t (client int, n int)', [], name);
      }
    }
    await bouncer?.stop();
    bouncer = await startPgBouncer({ databases: Object.fromEntries(names.map((name) => [name, { host: '127.0.0.1', port, dbname: name }])), ...settings });
    process.env['BOUNCER_PASSWORD'] = bouncer.adminPassword;
    return names;
  }
  const fresh = async () => (await freshMany(1))[0] ?? '';
  after(async () => {
    await bouncer?.stop();
  });

  /** A runbook of one pgbouncer step with these fields; switches name the file. */
  /** A runbook's head: its name and the admin console connection `bouncer`. */
  const head = (name: string) => `version: 1
name: ${name}
connections:
  bouncer:
    kind: pgbouncer
    url: postgres://${bouncer.adminUser}@127.0.0.1:${bouncer.port}/pgbouncer
    password: \${BOUNCER_PASSWORD}
`;
  const load = (fields: string) =>
    loadRunbookText(`${head('switch')}steps:
  - id: switch
    kind: pgbouncer
    connection: bouncer
${fields}`);
  const entry = async (name: string) => {
    const admin = await bouncer.admin();
    try {
      const rows = (await admin.query('SHOW DATABASES')).rows as { name: string; port: number; paused: number }[];
      const row = rows.find((r) => r.name === name);
      return { port: row?.port, paused: row?.paused };
    } finally {
      await admin.end();
    }
  };
  const rows = async (server: TestServer, name: string) => (await server.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], name))[0]?.n ?? -1;

  /** A client of the entry (application_name long-report) in an open transaction that wrote (client, 1) through the pooler. */
  const holdTransaction = async (name: string, client: number) => {
    const holder = new pg.Client({ connectionString: bouncer.urlFor(name), application_name: 'long-report' });
    holder.on('error', () => {});
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('INSERT INTO t VALUES ($1, 1)', [client]);
    return holder;
  };

  it('check: a console user PgBouncer does not list as admin, and a wrong password, each say what to fix, with the target and SQLSTATE', async () => {
    await fresh();
    const app = new URL(bouncer.urlFor('pgbouncer'));
    const { runbook } = loadRunbookText(
      `version: 1
name: console
connections:
  notadmin:
    kind: pgbouncer
    url: postgres://${app.username}@127.0.0.1:${bouncer.port}/pgbouncer
    password: \${APP_PASSWORD}
  wrong:
    kind: pgbouncer
    url: postgres://${bouncer.adminUser}@127.0.0.1:${bouncer.port}/pgbouncer
    password: \${WRONG}
steps:
  - id: a
    kind: confirm
    message: go?
`,
      { env: { APP_PASSWORD: decodeURIComponent(app.password), WRONG: 'not-the-password' } },
    );
    const check = await preflight(runbook, { registry });
    const [notadmin, wrong] = check.connections;
    assert.equal(notadmin?.status, 'failed');
    assert.match(notadmin?.error ?? '', /^cannot connect to postgres@127\.0\.0\.1:\d+\/pgbouncer: not allowed \(SQLSTATE 08P01\)$/);
    assert.match(notadmin?.fix ?? '', /^list the user in admin_users of the PgBouncer at postgres@127\.0\.0\.1:\d+\/pgbouncer/);
    assert.match(wrong?.error ?? '', /^cannot connect to bouncer_admin@127\.0\.0\.1:\d+\/pgbouncer: .*\(SQLSTATE 08P01\)$/);
    assert.match(wrong?.fix ?? '', /^check the password/);
  });

  it('an entry already paused, or one the pooler and the file lack, stops the run before its first step, not when the switch plans', async () => {
    const [paused = '', other = ''] = await freshMany(2);
    await old.query('CREATE TABLE first_step_ran (x int)', [], paused);
    const console = await bouncer.admin();
    try {
      await console.query(`PAUSE ${paused}`);
      const { file } = loadRunbookText(`${head('late blockers')}  old:
    kind: postgres
    url: ${old.urlFor(paused)}
steps:
  - id: before-the-switch
    kind: sql
    connection: old
    sql: INSERT INTO first_step_ran VALUES (1)
    rollback: DELETE FROM first_step_ran
  - id: switch
    kind: pgbouncer
    connection: bouncer
    action: switch
    file: ${bouncer.databasesFile}
    to:
      ${paused}: { host: 127.0.0.1, port: ${next.port} }
      ${other}: { host: 127.0.0.1, port: ${next.port} }
      nosuch: { host: 127.0.0.1, port: ${next.port} }
`);
      const check = await cutover(['check', file, '--json']);
      const findings = (JSON.parse(check.stdout) as { steps: { stepId: string; findings: { severity: string; message: string }[] }[] }).steps
        .find((st) => st.stepId === 'switch')
        ?.findings.filter((f) => f.severity === 'error')
        .map((f) => f.message);
      assert.deepEqual(findings, [
        `no entry "nosuch" in ${bouncer.databasesFile}`,
        'no database "nosuch" in SHOW DATABASES',
        `${paused} is already paused: another pause window is open (another operator's, or one a killed run of this step left: resume or roll back that run); RESUME it or wait`,
      ]);
      const run = await cutover(['run', file, '--yes', '--state-dir', path.join(path.dirname(file), 'state')]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /run not started: the check above found problems to fix/);
      assert.deepEqual(await old.query('SELECT count(*)::int AS n FROM first_step_ran', [], paused), [{ n: 0 }], 'the step before the switch did not run');
      assert.equal((await entry(other)).paused, 0, 'nothing was paused');
    } finally {
      await console.query(`RESUME ${paused}`);
      await console.end();
    }
  });

  it('plans read-only: the admin commands, the entry that moves, the pools; nothing paused, nothing written', async () => {
    const name = await fresh();
    const fileBefore = readFileSync(bouncer.databasesFile, 'utf8');
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const result = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
    const plan = result.steps[0]?.plan;
    assert.deepEqual(
      plan?.actions.map((a) =>
        a.type === 'sql' ? a.sql : a.type === 'file' ? `file ${a.edits.map((e) => `${e.entry} ${e.from['port']}->${e.to['port']}`).join()}` : a.type,
      ),
      [`PAUSE ${name}`, `file ${name} ${old.port}->${next.port}`, 'RELOAD', `RESUME ${name}`],
    );
    assert.deepEqual(plan?.tables?.[0]?.rows, [{ database: name, now: `127.0.0.1:${old.port}/${name}`, after: `127.0.0.1:${next.port}/${name}` }]);
    assert.equal(plan?.tables?.[1]?.rows[0]?.['mode'], 'transaction');
    assert.equal(readFileSync(bouncer.databasesFile, 'utf8'), fileBefore);
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('a saved switch plan stops with the difference when the databases file changed since: nothing paused, nothing written', async () => {
    const name = await fresh();
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const planned = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(planned.status, 'planned', JSON.stringify(planned.steps[0]?.error));
    const savedPlan = makeSavedPlan(runbook, planned);
    const edited = `${readFileSync(bouncer.databasesFile, 'utf8')}; edited by hand after the review\n`;
    writeFileSync(bouncer.databasesFile, edited);
    const result = await runRunbook(runbook, { registry, stateDir: dir, savedPlan, yes: true });
    assert.equal(result.status, 'rolled-back', 'the step failed at its plan; nothing was applied to undo');
    assert.equal(result.steps[0]?.status, 'failed');
    assert.match(
      result.steps[0]?.error?.message ?? '',
      /^this step planned now differs from the saved plan \(the state moved, or the plan file was edited\); nothing was done:\n {2}planned\.file\.sha256: "[0-9a-f]{64}" -> "[0-9a-f]{64}"$/,
    );
    assert.equal(readFileSync(bouncer.databasesFile, 'utf8'), edited);
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('switches under continuous client load without losing a transaction, and rollback switches back', async (t) => {
    const name = await fresh();
    const traffic = await startLoad(bouncer.urlFor(name), { clients: 4, table: 't' });
    await traffic.warm(20);
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const events: RunEvent[] = [];
    const result = await runRunbook(runbook, { registry, stateDir: dir, onEvent: (e) => events.push(e) });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    assert.deepEqual(await entry(name), { port: next.port, paused: 0 });
    await until('transactions to reach the new server', async () => (await rows(next, name)) > 0);

    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
    const traffic2 = await traffic.stop();
    assert.deepEqual(traffic2.failures, [], 'no client saw an error');
    assert.equal(traffic2.committed, traffic2.attempted);
    assert.equal((await rows(old, name)) + (await rows(next, name)), traffic2.committed, 'every committed transaction is on one of the servers');
    const applied = events.find((e) => e.type === 'step.applied');
    t.diagnostic(
      `${traffic2.committed} transactions by 4 clients across switch and rollback; longest client stall ${traffic2.longestMs} ms; ${applied?.type === 'step.applied' ? applied.output : ''}`,
    );
  });

  it('apply sends only its payload: of the two entries the runbook moves, the one the payload moves, to where the payload says', async () => {
    const [a = '', b = ''] = await freshMany(2);
    const { runbook } = load(
      `    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${a}: { host: 127.0.0.1, port: ${next.port} }\n      ${b}: { host: 127.0.0.1, port: ${next.port} }\n`,
    );
    const connections = resolveAll(runbook);
    const ctx = applyContext<Parameters<NonNullable<typeof pgbouncerStep.rollback>>[2]>({
      runId: 'payload',
      resolved: (connection) => {
        const found = connections.get(connection);
        assert.ok(found, connection);
        return found;
      },
    });
    const step = {
      id: 'switch',
      kind: 'pgbouncer',
      connection: 'bouncer',
      retries: 0,
      idempotent: false,
      window: false,
      line: 1,
      config: pgbouncerStep.config.parse(runbook.steps[0]?.config),
    };
    const text = readFileSync(bouncer.databasesFile, 'utf8');
    const log = path.join(bouncer.dir, 'pgbouncer.log');
    const logBefore = readFileSync(log, 'utf8').length;
    // Moves only `a`, and to the database named `b` on the new server: neither is what the runbook says.
    const edit = { entry: a, from: { host: '127.0.0.1', port: String(old.port), dbname: a }, to: { host: '127.0.0.1', port: String(next.port), dbname: b } };
    const outcome = await pgbouncerStep.apply(ctx, step, {
      pause: [a],
      resume: [a],
      file: { path: bouncer.databasesFile, sha256: createHash('sha256').update(text).digest('hex'), edits: [edit] },
      waitClose: [],
    });
    const admin = await bouncer.admin();
    const shown = (await admin.query('SHOW DATABASES')).rows as { name: string; port: number; database: string; paused: number }[];
    await admin.end();
    const where = (name: string) => shown.filter((r) => r.name === name).map((r) => ({ port: r.port, database: r.database, paused: r.paused }));
    assert.deepEqual(where(a), [{ port: next.port, database: b, paused: 0 }]);
    assert.deepEqual(where(b), [{ port: old.port, database: b, paused: 0 }], 'the entry only the runbook names stays where it was');
    // PgBouncer logs each admin command it runs: only the payload's were sent.
    const commands = readFileSync(log, 'utf8')
      .slice(logBefore)
      .split('\n')
      .filter((line) => /(PAUSE|RESUME|RELOAD)\b.* command issued/.test(line))
      .map((line) => line.replace(/^.* LOG /, ''));
    assert.deepEqual(commands, [`PAUSE '${a}' command issued`, 'RELOAD command issued', `RESUME '${a}' command issued`]);
    assert.deepEqual(outcome.before.entries, { [a]: edit.from });

    await pgbouncerStep.rollback?.(ctx, step, outcome.before);
    assert.deepEqual(await entry(a), { port: old.port, paused: 0 });
    assert.equal(readFileSync(bouncer.databasesFile, 'utf8'), text);
  });

  it('waitClose: under load, the step ends only once PgBouncer holds no server connection to the old server', async () => {
    const name = await fresh();
    const traffic = await startLoad(bouncer.urlFor(name), { clients: 4, table: 't' });
    await traffic.warm(20);
    const { runbook, dir } = load(
      `    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n    waitClose: true\n`,
    );
    const planned = await planRunbook(runbook, { registry, stateDir: dir });
    assert.deepEqual(
      planned.steps[0]?.plan?.actions.filter((a) => a.type === 'sql').map((a) => (a.type === 'sql' ? a.sql : '')),
      [`PAUSE ${name}`, 'RELOAD', `RESUME ${name}`],
    );
    assert.deepEqual(
      planned.steps[0]?.plan?.actions.filter((a) => a.type === 'poll').map((a) => (a.type === 'poll' ? `${a.sql} until ${JSON.stringify(a.expect)}` : '')),
      [`SHOW SERVERS until "no server connection of ${name} with close_needed"`],
      "PgBouncer's own WAIT_CLOSE is not sent: it would leave the database marked for good",
    );
    const events: RunEvent[] = [];
    const result = await runRunbook(runbook, { registry, stateDir: dir, onEvent: (e) => events.push(e) });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    const admin = await bouncer.admin();
    try {
      const servers = (await admin.query('SHOW SERVERS')).rows as { database: string; port: number | string }[];
      assert.deepEqual(
        servers.filter((s) => s.database === name && Number(s.port) === old.port),
        [],
        'no server connection to the old server is left',
      );
    } finally {
      await admin.end();
    }
    const applied = events.find((e) => e.type === 'step.applied');
    assert.match(
      applied?.type === 'step.applied' ? (applied.output ?? '') : '',
      /old server connections closed \d+ms after RESUME(; first waited \d+ms for PgBouncer's server logins in progress)?$/,
    );
    const done = await traffic.stop();
    assert.deepEqual(done.failures, [], 'no client saw an error');
  });

  it('on a pooler where WAIT_CLOSE was once run, PAUSE is answered at once, yet the switch still waits for the running transaction', async () => {
    const name = await fresh();
    const holder = await holdTransaction(name, 1);
    // Any WAIT_CLOSE leaves its database marked for good; PgBouncer then answers every later PAUSE as soon as
    // nothing is left to close, with the tag WAIT_CLOSE, while transactions still run: here, the holder's.
    const console_ = await bouncer.admin();
    await console_.query(`WAIT_CLOSE ${name}`);
    const early = await console_.query(`PAUSE ${name}`);
    await console_.query(`RESUME ${name}`);
    await console_.end();
    // node-postgres keeps the letters of the tag: WAIT_CLOSE reads as WAIT.
    assert.equal(early.command, 'WAIT', 'PgBouncer answered a PAUSE by hand at once, with the tag of WAIT_CLOSE');
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    let waiting!: () => void;
    const pauseWaits = new Promise<void>((resolve) => (waiting = resolve));
    let finished = false;
    const running = runRunbook(runbook, {
      registry,
      stateDir: dir,
      onEvent: (e) => {
        if (e.type === 'step.progress' && e.message.startsWith(`PAUSE ${name}: 1 server connection(s) still in a transaction`)) waiting();
      },
    }).finally(() => (finished = true));
    await Promise.race([pauseWaits, running]);
    assert.equal(finished, false, 'the switch waits while the transaction runs');
    assert.deepEqual(await entry(name), { port: old.port, paused: 1 });
    await holder.query('INSERT INTO t VALUES (1, 2)');
    await holder.query('COMMIT');
    const result = await running;
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    await holder.query('INSERT INTO t VALUES (1, 3)');
    await holder.end();
    assert.equal(await rows(old, name), 2, 'the whole transaction ran on the old server');
    assert.equal(await rows(next, name), 1, 'what came after the switch runs on the new one');
  });

  it("rollback does not end someone else's pause window: it stops, naming the entry, and runs once that window is over", async () => {
    const name = await fresh();
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    const console_ = await bouncer.admin();
    await console_.query(`PAUSE ${name}`);
    const refused = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.notEqual(refused.status, 'rolled-back');
    assert.equal(
      refused.steps[0]?.error?.message,
      `${name} is paused, not by this step: someone else is in a pause window; RESUME it or wait, then roll back again (nothing was changed)`,
    );
    assert.deepEqual(await entry(name), { port: next.port, paused: 1 }, 'their window is left as it was');
    await console_.query(`RESUME ${name}`);
    await console_.end();
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('a transaction that holds the pause past pauseTimeout: PAUSE given up, pooler resumed, the client named, nothing repointed', async () => {
    const name = await fresh();
    const holder = await holdTransaction(name, 99);
    const fileBefore = readFileSync(bouncer.databasesFile, 'utf8');
    const { runbook, dir } = load(
      `    action: switch\n    file: ${bouncer.databasesFile}\n    pauseTimeout: 1s\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`,
    );
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'rolled-back');
    assert.equal(result.steps[0]?.error?.name, 'PauseTimeoutError');
    assert.match(
      result.steps[0]?.error?.message ?? '',
      new RegExp(
        `^PAUSE ${name} did not complete within 1000ms; the pooler was resumed and nothing was repointed\\. Held by: postgres@127\\.0\\.0\\.1:\\d+ \\(long-report\\) on ${name}`,
      ),
    );
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
    assert.equal(readFileSync(bouncer.databasesFile, 'utf8'), fileBefore);
    await holder.query('COMMIT');
    const after = new pg.Client({ connectionString: bouncer.urlFor(name) });
    await after.connect();
    await after.query('INSERT INTO t VALUES (100, 1)');
    await after.end();
    await holder.end();
    assert.equal(await rows(old, name), 2, 'the pooler serves the old server again');
  });

  it('a new dbname with a quote and a space is written as PgBouncer reads it: the application lands in that database', async () => {
    const name = await fresh();
    await next.query(`CREATE DATABASE "o'hara shop"`);
    await next.query('CREATE TABLE t (client int, n int)', [], "o'hara shop");
    const { runbook, dir } = load(
      `    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port}, dbname: "o'hara shop" }\n`,
    );
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    assert.match(readFileSync(bouncer.databasesFile, 'utf8'), new RegExp(`^${name} = .*dbname='o''hara shop'$`, 'm'));
    const app = new pg.Client({ connectionString: bouncer.urlFor(name) });
    await app.connect();
    await app.query('INSERT INTO t VALUES (1, 1)');
    await app.end();
    assert.equal((await next.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], "o'hara shop"))[0]?.n, 1);
  });

  it('an entry the file lacks blocks the plan, which then describes no pause window', async () => {
    await fresh();
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      nosuch: { host: 127.0.0.1, port: ${next.port} }\n`);
    const result = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'failed');
    const plan = result.steps[0]?.plan;
    assert.deepEqual(plan?.blockers, ['no database "nosuch" in SHOW DATABASES', `no entry "nosuch" in ${bouncer.databasesFile}`]);
    assert.deepEqual(plan?.actions, []);
    assert.deepEqual(
      plan?.notes?.filter((n) => /held inside PgBouncer|after RELOAD/.test(n)),
      [],
    );
  });

  it('a typo in the new host blocks the plan before anything pauses', async () => {
    const name = await fresh();
    const { runbook, dir } = load(
      `    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: new-primary.invalid, port: ${next.port} }\n`,
    );
    const result = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'failed');
    assert.equal(result.steps[0]?.error?.name, 'PlanBlockedError');
    assert.match(
      result.steps[0]?.error?.message ?? '',
      new RegExp(`${name}: the new target new-primary\\.invalid:${next.port} does not answer as a PostgreSQL server from here \\(ENOTFOUND\\)`),
    );
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('a file PgBouncer does not read: RELOAD changes nothing, verification fails, the file is restored and the pooler resumed', async () => {
    const name = await fresh();
    const copy = path.join(bouncer.dir, 'databases-copy.ini');
    copyFileSync(bouncer.databasesFile, copy);
    const copyBefore = readFileSync(copy, 'utf8');
    const { runbook, dir } = load(`    action: switch\n    file: ${copy}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'rolled-back');
    assert.equal(result.steps[0]?.error?.name, 'VerificationError');
    assert.equal(result.steps[0]?.error?.message, `after RELOAD, PgBouncer does not point where planned: ${name}: port is ${old.port}, planned ${next.port}`);
    assert.equal(readFileSync(copy, 'utf8'), copyBefore);
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('PAUSE waits for a server login in progress: PgBouncer would take the closed login for a failed one and hold every client for server_login_retry', async (t) => {
    // Logins to the old server last until the test lets them through: the proxy holds back the server's replies.
    const proxy = await slowLoginProxy(old.port);
    t.after(() => proxy.close());
    // After a failed login PgBouncer opens no server connection for the pool for this long: here, longer than the test may take.
    const [name = ''] = await freshMany(1, proxy.port, { serverLoginRetry: 600 });
    const app = new pg.Client({ connectionString: bouncer.urlFor(name) });
    app.on('error', () => {});
    // PgBouncer logs in to a server to answer a client's login with the server's parameters.
    const connecting = app.connect();
    connecting.catch(() => {}); // awaited below; a failed assertion before must not leave it unhandled
    t.after(() => app.end());
    await until('PgBouncer to log in to the old server', async () => {
      const admin = await bouncer.admin();
      const pools = (await admin.query('SHOW POOLS')).rows as { database: string; sv_login: number | string }[];
      await admin.end();
      return pools.some((p) => p.database === name && Number(p.sv_login) > 0);
    });
    const { runbook, dir } = load(`    action: switch\n    file: ${bouncer.databasesFile}\n    to:\n      ${name}: { host: 127.0.0.1, port: ${next.port} }\n`);
    const events: RunEvent[] = [];
    const result = await runRunbook(runbook, {
      registry,
      stateDir: dir,
      onEvent: (e) => {
        events.push(e);
        // The step waits before its first PAUSE: only now does the login finish.
        if (e.type === 'step.progress' && e.message.startsWith('before PAUSE: PgBouncer is logging in to 1 server connection')) proxy.releaseLogins();
      },
    });
    proxy.releaseLogins();
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    const applied = events.find((e) => e.type === 'step.applied');
    const output = applied?.type === 'step.applied' ? (applied.output ?? '') : '';
    assert.match(output, /; first waited \d+ms for PgBouncer's server logins in progress$/);
    // Had PAUSE closed the login, the application would now wait server_login_retry (600 s) for a server.
    const started = Date.now();
    const served = (async () => {
      await connecting;
      return (await app.query<{ port: string }>("SELECT current_setting('port') AS port")).rows[0]?.port;
    })();
    const port = await Promise.race([served, sleep(30_000).then(() => 'held for 30 s')]);
    assert.equal(port, String(next.port), 'the application is served by the new server at once');
    t.diagnostic(`${output}; the application's first query after the switch took ${Date.now() - started} ms`);
  });

  it('a saved plan of a pause ... resume bracket runs as saved: the resume was planned before its pause existed', async () => {
    const name = await fresh();
    const { runbook, dir } = loadRunbookText(`${head('bracket')}steps:
  - id: hold
    kind: pgbouncer
    connection: bouncer
    action: pause
    databases: [${name}]
  - id: release
    kind: pgbouncer
    connection: bouncer
    action: resume
    databases: [${name}]
`);
    const planned = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(planned.status, 'planned', JSON.stringify(planned.steps.map((s) => s.error)));
    assert.deepEqual(
      planned.steps[1]?.plan?.actions.map((a) => (a.type === 'sql' ? a.sql : a.type)),
      [`RESUME ${name}`],
    );
    const events: RunEvent[] = [];
    const result = await runRunbook(runbook, {
      registry,
      stateDir: dir,
      savedPlan: makeSavedPlan(runbook, planned),
      yes: true,
      onEvent: (e) => events.push(e),
    });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps.map((s) => s.error)));
    const outputs = events.flatMap((e) => (e.type === 'step.applied' ? [`${e.stepId}: ${e.output ?? ''}`] : []));
    assert.match(outputs[1] ?? '', new RegExp(`^release: resumed ${name}$`));
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
  });

  it('pause holds new transactions until resume; rolling back the pause resumes', async () => {
    const name = await fresh();
    // Logged in before the pause: a client that logs in during one waits for a server too.
    const client = new pg.Client({ connectionString: bouncer.urlFor(name) });
    await client.connect();
    await client.query('SELECT 1');
    const { runbook, dir } = load(`    action: pause\n    databases: [${name}]\n`);
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    assert.deepEqual(await entry(name), { port: old.port, paused: 1 });
    let done = false;
    const insert = client.query('INSERT INTO t VALUES (1, 1)').then(() => (done = true));
    await until('the insert to wait in the pooler', async () => {
      const admin = await bouncer.admin();
      const pools = (await admin.query('SHOW POOLS')).rows as { database: string; cl_waiting: number | string }[];
      await admin.end();
      return pools.some((p) => p.database === name && Number(p.cl_waiting) > 0);
    });
    assert.equal(done, false, 'held while paused');
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    await insert;
    assert.deepEqual(await entry(name), { port: old.port, paused: 0 });
    assert.equal(await rows(old, name), 1);
    await client.end();
  });
});
