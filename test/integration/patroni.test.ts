/**
 * The patroni step kind against a real Patroni cluster (Debian's Patroni,
 * etcd and PostgreSQL 15, two members) behind a real HAProxy that routes by
 * `GET /primary`, while clients write through HAProxy: a switchover ends with
 * the candidate leading and taking the writes, rollback switches back; a
 * candidate whose replay is paused, or that lags, is refused in the plan; a wrong REST API
 * password switches nothing. One cluster serves every test in this file.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { planRunbook, registry, rollbackRun, runRunbook, template, type RunEvent } from '../../src/index.js';
import { startPatroniCluster, type TestPatroniCluster } from '../../scripts/patroni.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { resolveAll } from '../../src/runbook/connections.js';
import { patroniStep, SwitchoverError } from '../../src/steps/patroni.js';
import { startLoad } from '../helpers/load.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { applyContext } from '../helpers/apply-context.js';
import { until } from '../helpers/wait.js';

describe('patroni on a two-member Patroni 3 cluster (PostgreSQL 15, etcd) behind HAProxy', () => {
  let cluster: TestPatroniCluster;

  before(async () => {
    cluster = await startPatroniCluster();
    process.env['PATRONI_PASSWORD'] = cluster.apiPassword;
    await query(cluster.proxyUrl('postgres'), 'CREATE TABLE t (client int, n int)');
  });
  after(async () => {
    await cluster?.stop();
  });

  async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end();
    }
  }
  const leader = async () => (await cluster.cluster()).members.filter((m) => m.role === 'leader').map((m) => m.name);
  const member = (name: string) => {
    const found = cluster.members.find((m) => m.name === name);
    assert.ok(found, name);
    return found;
  };
  /** The port of the server a new connection through HAProxy reaches, and whether it takes writes. */
  const routed = async () => {
    const [row] = await query<{ port: number; recovery: boolean }>(
      cluster.proxyUrl('postgres'),
      'SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery',
    );
    return row;
  };

  /** A runbook of one patroni step with these fields. */
  const load = (fields: string, options: { readonly password?: string } = {}) =>
    loadRunbookText(`version: 1
name: switchover
connections:
  ha:
    kind: patroni
    url: ${member('node1').api}
    members: [${member('node2').api}]
    username: ${cluster.apiUser}
    password: ${options.password ?? '${PATRONI_PASSWORD}'}
steps:
  - id: switch
    kind: patroni
    connection: ha
    action: switchover
${fields}`);

  it('plans read-only: the cluster table, the healthiest replica as candidate, the POST it would send', async (t) => {
    t.diagnostic(`etcd, two Patroni members and HAProxy up in ${cluster.startedInMs} ms`);
    // Up is not settled: node2 can still be "starting" (its timeline and lag unknown) when the cluster answers.
    await cluster.settled('node1');
    const { runbook, dir } = load('');
    const result = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'planned', JSON.stringify(result.steps[0]?.error));
    const plan = result.steps[0]?.plan;
    const [action] = plan?.actions ?? [];
    assert.equal(action?.type, 'http');
    assert.deepEqual(action?.type === 'http' ? [action.method, action.url, action.body] : [], [
      'POST',
      `${member('node1').api}/switchover`,
      { leader: 'node1', candidate: 'node2' },
    ]);
    assert.deepEqual(
      plan?.tables?.[0]?.rows.map((r) => [r['member'], r['role'], r['streaming'], r['notes']]),
      [
        ['node1', 'leader', '', ''],
        ['node2', 'replica', 'yes', '<- candidate'],
      ],
    );
    assert.deepEqual(await leader(), ['node1']);
  });

  it('switches over under client load through HAProxy: the candidate leads and takes the writes; rollback switches back', async (t) => {
    await cluster.settled('node1');
    const traffic = await startLoad(cluster.proxyUrl('postgres'), { clients: 4, table: 't', reconnect: true, maxMs: 180_000 });
    await traffic.warm(20);
    const { runbook, dir } = load('    candidate: node2\n');
    const events: RunEvent[] = [];
    const started = Date.now();
    const result = await runRunbook(runbook, { registry, stateDir: dir, onEvent: (e) => events.push(e) });
    const switchMs = Date.now() - started;
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    assert.deepEqual(await leader(), ['node2']);
    await until('HAProxy to route to node2 only', async () => (await cluster.routes()).join() === 'node2');
    // A connection HAProxy made just before the switch may still be cut: ask until one lands on node2 and it takes writes.
    await until('a connection through HAProxy to land on node2, which takes writes', async () => {
      const where = await routed().catch(() => undefined);
      return where?.port === member('node2').port && !where.recovery;
    });
    const onNode2 = async () => (await query<{ n: number }>(cluster.memberUrl(member('node2'), 'postgres'), 'SELECT count(*)::int AS n FROM t'))[0]?.n ?? 0;
    const atSwitch = await onNode2();
    await until('the clients to commit on node2 through HAProxy', async () => (await onNode2()) > atSwitch + 20, 30_000);
    const during = await traffic.stop();

    const traffic2 = await startLoad(cluster.proxyUrl('postgres'), { clients: 4, table: 't', reconnect: true, maxMs: 180_000 });
    await traffic2.warm(5);
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await leader(), ['node1']);
    await until('HAProxy to route to node1 only', async () => (await cluster.routes()).join() === 'node1');
    await until('a connection through HAProxy to land on node1 again, which takes writes', async () => {
      const where = await routed().catch(() => undefined);
      return where?.port === member('node1').port && !where.recovery;
    });
    const rollback = await traffic2.stop();
    assert.ok(during.committed > 0 && rollback.committed > 0);
    const applied = events.find((e) => e.type === 'step.applied');
    t.diagnostic(
      `switchover (run, pre-checks included) ${switchMs} ms; ${applied?.type === 'step.applied' ? applied.output : ''}; ` +
        `4 clients through HAProxy: ${during.committed} commits, ${during.failures.length} errors, ${during.reconnects} reconnects, ` +
        `longest time without a commit ${during.longestGapMs} ms; rollback: ${rollback.failures.length} errors, longest ${rollback.longestGapMs} ms`,
    );
    if (during.failures.length > 0) t.diagnostic(`first errors: ${during.failures.slice(0, 3).join(' | ')}`);
  });

  it('a scheduled switchover: Patroni accepts it (202), the step waits for the time and the new leader; rollback switches back', async () => {
    await cluster.settled('node1');
    const at = new Date(Date.now() + 3_000).toISOString();
    const { runbook, dir } = load(`    candidate: node2\n    scheduledAt: "${at}"\n`);
    const events: RunEvent[] = [];
    const result = await runRunbook(runbook, { registry, stateDir: dir, onEvent: (e) => events.push(e) });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    const applied = events.find((e) => e.type === 'step.applied');
    assert.match(applied?.type === 'step.applied' ? (applied.output ?? '') : '', /^Switchover scheduled; node2 leads/);
    assert.deepEqual(await leader(), ['node2']);
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await leader(), ['node1']);
  });

  it('a scheduled switchover that the step gives up waiting for is cancelled by the rollback: nothing switches later', async () => {
    await cluster.settled('node1');
    const at = new Date(Date.now() + 60_000).toISOString();
    const { runbook, dir } = load(`    candidate: node2\n    scheduledAt: "${at}"\n    timeout: 3s\n`);
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'rolled-back', JSON.stringify(result.steps));
    const view = (await cluster.cluster()) as { scheduled_switchover?: unknown };
    assert.equal(view.scheduled_switchover, undefined, 'no switchover is scheduled any more');
    assert.deepEqual(await leader(), ['node1']);
  });

  /** PATCH /config on the leader with the REST API's credentials. */
  const patchConfig = async (body: object) => {
    const response = await fetch(`${member('node1').api}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${cluster.apiUser}:${cluster.apiPassword}`).toString('base64')}` },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, await response.text());
  };

  it('a candidate whose WAL replay is paused is refused in the plan, with the reason (maintenance mode, where Patroni leaves a paused replay alone)', async () => {
    await cluster.settled('node1');
    // Outside maintenance mode Patroni 3 resumes a paused replay on PostgreSQL 14+ within a loop (handle_parameter_change),
    // so the state lasts about a second there; paused, the cluster keeps it, and only a named candidate may be switched to.
    await patchConfig({ pause: true });
    const node2 = cluster.memberUrl(member('node2'), 'postgres');
    try {
      await until('the cluster to be paused', async () => (await cluster.cluster()).pause === true);
      await query(node2, 'SELECT pg_wal_replay_pause()');
      await until('Patroni to report the paused replay', async () => {
        const response = await fetch(`${member('node2').api}/patroni`);
        return ((await response.json()) as { xlog?: { paused?: boolean } }).xlog?.paused === true;
      });
      const { runbook, dir } = load('    candidate: node2\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.equal(result.steps[0]?.error?.name, 'PlanBlockedError');
      assert.match(result.steps[0]?.error?.message ?? '', /WAL replay is paused on node2 \(pg_wal_replay_pause\): it would be promoted behind/);
      const applied = await runRunbook(runbook, { registry, stateDir: dir });
      assert.notEqual(applied.status, 'succeeded');
      assert.deepEqual(await leader(), ['node1'], 'nothing was sent');
    } finally {
      await query(node2, 'SELECT pg_wal_replay_resume()');
      await patchConfig({ pause: false });
      await until('the cluster to leave maintenance mode', async () => (await cluster.cluster()).pause !== true);
    }
  });

  it('a candidate that lags more than maxLag is refused in the plan, with the lag; nothing is sent', async () => {
    await cluster.settled('node1');
    // The lag Patroni reports is from the WAL a replica has received: stop node2's WAL receiver (SIGSTOP) and write.
    const node2 = cluster.memberUrl(member('node2'), 'postgres');
    const [receiver] = await query<{ pid: number }>(node2, 'SELECT pid FROM pg_stat_wal_receiver');
    assert.ok(receiver !== undefined, 'node2 has a WAL receiver');
    process.kill(receiver.pid, 'SIGSTOP');
    try {
      await query(
        cluster.memberUrl(member('node1'), 'postgres'),
        "CREATE TABLE lag_fill AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 4000) g",
      );
      await until('Patroni to report node2 more than 1MB behind', async () => {
        const lag = (await cluster.cluster()).members.find((m) => m.name === 'node2')?.lag;
        return typeof lag === 'number' && lag > 1024 * 1024;
      });
      const { runbook, dir } = load('    candidate: node2\n    maxLag: 1MB\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.equal(result.steps[0]?.error?.name, 'PlanBlockedError');
      assert.match(result.steps[0]?.error?.message ?? '', /node2 lags \d+\.\dMB behind node1, more than maxLag 1\.0MB/);
      const applied = await runRunbook(runbook, { registry, stateDir: dir });
      assert.notEqual(applied.status, 'succeeded');
      assert.deepEqual(await leader(), ['node1'], 'nothing was sent');
    } finally {
      process.kill(receiver.pid, 'SIGCONT');
      await query(cluster.memberUrl(member('node1'), 'postgres'), 'DROP TABLE IF EXISTS lag_fill');
    }
  });

  it('a candidate tagged nofailover is refused in the plan, with the reason', async () => {
    await cluster.settled('node1');
    await cluster.setTags('node2', { nofailover: true });
    try {
      const { runbook, dir } = load('    candidate: node2\n');
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.equal(result.steps[0]?.error?.name, 'PlanBlockedError');
      assert.match(result.steps[0]?.error?.message ?? '', /node2 is tagged nofailover: Patroni never promotes it/);
      assert.equal(result.steps[0]?.plan?.tables?.[0]?.rows[1]?.['notes'], '<- candidate, nofailover');
    } finally {
      await cluster.setTags('node2', { nofailover: false });
    }
  });

  it('in synchronous mode, a candidate that is not a synchronous standby (tagged nosync) is refused in the plan', async () => {
    await cluster.settled('node1');
    await cluster.setTags('node2', { nosync: true });
    await patchConfig({ synchronous_mode: true });
    try {
      const { runbook, dir } = load('    candidate: node2\n');
      await until(
        'Patroni to run in synchronous mode',
        async () => ((await (await fetch(`${member('node1').api}/config`)).json()) as { synchronous_mode?: boolean }).synchronous_mode === true,
      );
      const result = await planRunbook(runbook, { registry, stateDir: dir });
      assert.equal(result.status, 'failed');
      assert.match(result.steps[0]?.error?.message ?? '', /synchronous mode is on and node2 is not a synchronous standby \(GET \/sync answered 503\)/);
    } finally {
      await patchConfig({ synchronous_mode: false });
      await cluster.setTags('node2', { nosync: false });
    }
  });

  it('a wrong REST API password: Patroni refuses the POST, the message says why, the leader stays', async () => {
    await cluster.settled('node1');
    const { runbook, dir } = load('    candidate: node2\n', { password: 'not-the-password' });
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.notEqual(result.status, 'succeeded');
    assert.match(
      result.steps[0]?.error?.message ?? '',
      /^POST \/switchover was refused \(401\): the connection's username\/password or client certificate is not what restapi\.authentication expects$/,
    );
    assert.doesNotMatch(JSON.stringify(result), /not-the-password/);
    assert.deepEqual(await leader(), ['node1']);
  });

  it('templates/patroni-switchover.yaml runs end to end: pre-check, switchover, writes through HAProxy, statistics; rollback switches back', async () => {
    await cluster.settled('node1');
    const dir = tempDir();
    const text = template('patroni-switchover').text;
    Object.assign(process.env, {
      CHANGE_TICKET: 'CHG-17',
      PATRONI_HOST: '127.0.0.1',
      PATRONI_API_PORT: new URL(member('node1').api).port,
      PATRONI_API_USER: cluster.apiUser,
      PATRONI_API_PASSWORD: cluster.apiPassword,
      APP_URL: cluster.proxyUrl('postgres'),
    });
    const { runbook } = loadRunbookText(text, { dir, name: 'cutover.yaml' });
    const result = await runRunbook(runbook, { registry, stateDir: dir, yes: true });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps.map((s) => s.error)));
    assert.deepEqual(
      result.steps.map((s) => [s.id, s.status]),
      [
        ['no-long-transactions', 'completed'],
        ['switchover', 'completed'],
        ['writes-reach-new-leader', 'completed'],
        ['statistics', 'completed'],
      ],
    );
    assert.deepEqual(await leader(), ['node2']);
    assert.deepEqual(await routed(), { port: member('node2').port, recovery: false });
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await leader(), ['node1']);
  });

  it('a saved switchover plan stops with the difference when another member leads since: nothing is sent', async () => {
    await cluster.settled('node1');
    const { file, dir } = load('    candidate: node2\n');
    const saved = path.join(dir, 'plan.json');
    const state = path.join(dir, 'state');
    const planned = await cutover(['plan', file, '--out', saved, '--state-dir', state]);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
    // Someone else switches over first.
    const other = load('    candidate: node2\n');
    const first = await runRunbook(other.runbook, { registry, stateDir: other.dir });
    assert.equal(first.status, 'succeeded', JSON.stringify(first.steps[0]?.error));
    const drifted = await cutover(['run', file, '--plan', saved, '--yes', '--state-dir', state]);
    assert.equal(drifted.code, 1, drifted.stderr);
    assert.match(drifted.stderr, /this step planned now differs from the saved plan \(the state moved, or the plan file was edited\); nothing was done:/);
    assert.match(drifted.stderr, /planned\.post\b.* -> null/);
    assert.deepEqual(await leader(), ['node2'], 'no switchover back was requested');
    const back = await rollbackRun(first.runId, { registry, stateDir: other.dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await leader(), ['node1']);
  });

  it('apply sends the POST of its payload, to its URL, only while the payload leader leads: a payload made with another leader is refused, nothing sent', async () => {
    await cluster.settled('node1');
    const { runbook } = load('    candidate: node2\n');
    const connections = resolveAll(runbook);
    const recorded: unknown[] = [];
    const ctx = applyContext<{ leader: string; candidate: string; scheduledAt: string | null }>({
      resolved: (name) => {
        const found = connections.get(name);
        assert.ok(found, name);
        return found;
      },
      recordBefore: (b) => recorded.push(b),
    });
    const step = {
      id: 'switch',
      kind: 'patroni',
      connection: 'ha',
      retries: 0,
      idempotent: false,
      window: false,
      line: 1,
      config: patroniStep.config.parse({ action: 'switchover', candidate: 'node2' }),
    };
    // A payload planned while a member that has since left the cluster led: refused before anything is sent.
    const stale = { url: `${member('node1').api}/switchover`, leader: 'node3', candidate: 'node2', scheduledAt: null };
    await assert.rejects(patroniStep.apply(ctx, step, { post: stale }), (error: unknown) => {
      assert.ok(error instanceof SwitchoverError);
      assert.match(error.message, /the leader is node1 now, the plan was made with node3; nothing was sent/);
      return true;
    });
    assert.deepEqual(await leader(), ['node1']);
    assert.deepEqual(recorded, [{ leader: 'node3', candidate: 'node2', scheduledAt: null }], 'recorded before anything is sent');

    // The payload's URL (node2's API, not the connection's node1) is where the POST goes: Patroni takes it on any member.
    recorded.length = 0;
    const post = { url: `${member('node2').api}/switchover`, leader: 'node1', candidate: 'node2', scheduledAt: null };
    const outcome = await patroniStep.apply(ctx, step, { post });
    assert.deepEqual(await leader(), ['node2']);
    assert.deepEqual(outcome.before, { leader: 'node1', candidate: 'node2', scheduledAt: null });
    await patroniStep.rollback?.(ctx, step, outcome.before);
    assert.deepEqual(await leader(), ['node1']);
  });
});
