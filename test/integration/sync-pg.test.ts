/**
 * The queue database's synchronous session (SyncPg) and the journal sink on
 * it, on a real PostgreSQL 18: each query gets its own answer even after one
 * gave up waiting; a statement stuck on a lock is cancelled by the server, so
 * its outcome is known; and a journal line and a lease takeover that meet are
 * serialized on the lease row, so the new owner never misses a line and the
 * old owner never adds one after the takeover. A job's delivery claims its
 * target (or finds its result) in one statement, and its result and the
 * lease's release are one statement too.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { SyncPg, SyncPgError } from '../../src/db/sync-pg.js';
import { LeaseLostError, openQueueStore } from '../../src/fleet/queue-store.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { until } from '../helpers/wait.js';

describe('queue database session', { timeout: 120_000 }, () => {
  let server: TestServer;
  /** The other party: an operator's session, or another worker. */
  let other: pg.Client;
  let watcher: pg.Client;

  before(async () => {
    server = await startPostgres(18);
    other = new pg.Client({ connectionString: server.url, application_name: 'sync-pg-other' });
    watcher = new pg.Client({ connectionString: server.url });
    await Promise.all([other.connect(), watcher.connect()]);
  });

  after(async () => {
    await other?.end();
    await watcher?.end();
    await server?.stop();
  });

  /** Until the session named `applicationName` waits for `event` (a lock, or pg_sleep's timeout). */
  const waiting = (applicationName: string, event: 'Lock' | 'PgSleep') =>
    until(
      `${applicationName} waits (${event})`,
      async () =>
        (
          await watcher.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND (wait_event_type = $2 OR wait_event = $2)', [
            applicationName,
            event,
          ])
        ).rowCount === 1,
      10_000,
    );

  test('a query that gave up waiting does not hand its late answer to the next query', () => {
    const db = new SyncPg(server.url, { timeoutMs: 300, statementTimeoutMs: 0 });
    try {
      assert.equal(db.query<{ v: string }>("SELECT 'first' AS v").rows[0]?.v, 'first');
      assert.throws(
        () => db.query("SELECT pg_sleep(1), 'late' AS v"),
        (e: unknown) => e instanceof SyncPgError && e.code === undefined && /within 300 ms/.test(e.message),
      );
      // Queued behind the late one, the next queries may give up too (each leaving a late answer); the first that
      // does not must get its own answer, not one of theirs.
      const deadline = Date.now() + 5_000;
      let mine: string | undefined;
      while (mine === undefined && Date.now() < deadline) {
        try {
          mine = db.query<{ v: string }>("SELECT 'mine' AS v").rows[0]?.v;
        } catch (error) {
          if (!(error instanceof SyncPgError) || error.code !== undefined) throw error;
        }
      }
      assert.equal(mine, 'mine');
      assert.equal(db.query<{ n: number }>('SELECT 2 AS n').rows[0]?.n, 2);
    } finally {
      db.close();
    }
  });

  test('a statement stuck on a lock is cancelled by the server (SQLSTATE 57014) before the caller gives up, and the session goes on', async () => {
    await other.query('CREATE TABLE stuck (id int PRIMARY KEY)');
    await other.query('BEGIN');
    await other.query('LOCK TABLE stuck IN ACCESS EXCLUSIVE MODE');
    // The session's statement_timeout is four fifths of that: 4 s.
    const db = new SyncPg(server.url, { timeoutMs: 5_000 });
    try {
      // Connected first: the first query's wait also covers the thread's start and the connection, which a busy machine can make slow.
      db.query('SELECT 1');
      // No code would mean the caller gave up (5 s) and the outcome is unknown; 57014 is the server's statement_timeout.
      assert.throws(
        () => db.query('INSERT INTO stuck VALUES (1)'),
        (e: unknown) => e instanceof SyncPgError && e.code === '57014',
      );
      await other.query('ROLLBACK');
      assert.equal(db.query('INSERT INTO stuck VALUES (1)').rowCount, 1);
      assert.equal((await other.query<{ n: number }>('SELECT count(*)::int AS n FROM stuck')).rows[0]?.n, 1);
    } finally {
      db.close();
      await other.query('ROLLBACK').catch(() => {});
      await other.query('DROP TABLE IF EXISTS stuck');
    }
  });

  test("an old owner's journal line that meets a takeover waits for it, and is refused", async () => {
    const store = openQueueStore(server.url, 'sync/old-owner', 4);
    try {
      assert.equal(store.takeLease('t1', 'old-owner', 4), true);
      const sink = store.journals('t1').sink('old-owner');
      sink.append({ runId: 'r1', seq: 1, text: 'line one' });
      // Another worker's takeover, open: it changed the lease and commits in a second, on the server's own clock
      // (one message, so it needs nothing from this thread, which append blocks).
      await other.query('BEGIN');
      await other.query("UPDATE cutover_fleet.lease SET owner = 'new-owner' WHERE fleet = 'sync/old-owner' AND target = 't1'");
      const commit = other.query('SELECT pg_sleep(1); COMMIT');
      await waiting('sync-pg-other', 'PgSleep');
      let refused: unknown;
      try {
        sink.append({ runId: 'r1', seq: 2, text: 'line two' });
      } catch (error) {
        refused = error;
      }
      await commit;
      assert.ok(
        refused instanceof LeaseLostError,
        `the old owner's line was ${refused === undefined ? 'accepted' : `refused with ${refused instanceof Error ? refused.message : typeof refused}`}`,
      );
      assert.equal(store.journals('t1').text('r1'), 'line one\n');
    } finally {
      await other.query('ROLLBACK').catch(() => {});
      store.db.close();
    }
  });

  test('a takeover that meets a journal line being written waits for it, so the new owner reads the line', async () => {
    const store = openQueueStore(server.url, 'sync/new-owner', 4);
    try {
      assert.equal(store.takeLease('t1', 'old-owner', 4), true);
      const sink = store.journals('t1').sink('old-owner');
      // The old owner's line, written and not yet committed.
      store.db.query('BEGIN');
      sink.append({ runId: 'r1', seq: 1, text: 'line one' });
      const takeover = other.query("UPDATE cutover_fleet.lease SET owner = 'new-owner' WHERE fleet = 'sync/new-owner' AND target = 't1'");
      // It waits for the line's transaction (a plain read of the lease would not have made it wait).
      await waiting('sync-pg-other', 'Lock');
      store.db.query('COMMIT');
      assert.equal((await takeover).rowCount, 1);
      // What the new owner reads once its takeover is through.
      assert.equal(
        (await other.query<{ n: number }>("SELECT count(*)::int AS n FROM cutover_fleet.journal_line WHERE fleet = 'sync/new-owner'")).rows[0]?.n,
        1,
      );
    } finally {
      store.db.query('ROLLBACK');
      store.db.close();
    }
  });

  test("a job's delivery in one statement: the lease of a free or stale target, none of a live one, and an earlier result instead of a lease", async () => {
    const store = openQueueStore(server.url, 'sync/claim', 4);
    const lease = async () =>
      (await other.query<{ owner: string }>("SELECT owner FROM cutover_fleet.lease WHERE fleet = 'sync/claim' AND target = 't1'")).rows.map((r) => r.owner);
    try {
      assert.deepEqual(store.claim('job-1', 't1', 'first', 4), { taken: true });
      assert.deepEqual(await lease(), ['first']);
      // A second delivery of the job while the first runs: the lease is live.
      assert.deepEqual(store.claim('job-1', 't1', 'second', 4), { taken: false });
      assert.deepEqual(await lease(), ['first']);
      // Stale (no heartbeat for longer than 4 s): taken over.
      await other.query("UPDATE cutover_fleet.lease SET heartbeat_at = now() - interval '5 seconds' WHERE fleet = 'sync/claim'");
      assert.deepEqual(store.claim('job-1', 't1', 'second', 4), { taken: true });
      // Finishing by an owner that lost the lease leaves the new owner's lease alone; the result is saved once.
      store.finish('job-1', '{"status":"succeeded"}', 't1', 'first');
      assert.deepEqual(await lease(), ['second']);
      store.finish('job-1', '{"status":"failed"}', 't1', 'second');
      assert.deepEqual(await lease(), []);
      // Delivered once more after the result: the result, and no lease taken.
      assert.deepEqual(store.claim('job-1', 't1', 'third', 4), { output: '{"status":"succeeded"}' });
      assert.deepEqual(await lease(), []);
    } finally {
      store.db.close();
    }
  });

  test("many targets' journals in one read: the same files as one target's, none for a target without", async () => {
    const store = openQueueStore(server.url, 'sync/dirs', 4);
    try {
      for (const [target, runs] of [
        ['a', ['r1', 'r2']],
        ['b', ['r1']],
      ] as const) {
        assert.equal(store.takeLease(target, 'me', 4), true);
        const sink = store.journals(target).sink('me');
        for (const run of runs) for (const seq of [1, 2, 3]) sink.append({ runId: run, seq, text: `${target} ${run} line ${seq}` });
      }
      const dirs = store.targetStateDirs(['a', 'b', 'c']);
      const files = (dir: string) =>
        readdirSync(path.join(dir, 'runs'))
          .sort()
          .map((run) => readFileSync(path.join(dir, 'runs', run, 'journal.jsonl'), 'utf8'));
      assert.deepEqual(files(dirs.get('a') ?? ''), ['a r1 line 1\na r1 line 2\na r1 line 3\n', 'a r2 line 1\na r2 line 2\na r2 line 3\n']);
      assert.deepEqual(files(dirs.get('b') ?? ''), [store.journals('b').text('r1')]);
      assert.equal(existsSync(dirs.get('c') ?? ''), false);
    } finally {
      store.dispose();
      store.db.close();
    }
  });
});
