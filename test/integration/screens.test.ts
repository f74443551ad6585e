/**
 * What a person reads after a run, a failure and a rollback preview, from
 * the real CLI against a real PostgreSQL 18: the failing step by id, kind and
 * connection; blockers once; SQLSTATE and hint; what is in place; the next
 * command; "(verified)" only where a verification ran; no rollback task after
 * a success; no internal error class name anywhere. `rollback --dry-run`
 * shows the statements each rollback would run and names the irreversible
 * step and why, and changes nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { journalFile, type RollbackPreview } from '../../src/index.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { postgresRunbook, runbookFile } from '../helpers/runbook.js';

/** An internal class name such as PlanBlockedError or DatabaseError. */
const CLASS_NAME = /\b[A-Z][a-z]+(?:[A-Z][a-z]+)*Error\b/;

const count = (text: string, part: string) => text.split(part).length - 1;

describe('failure screens and rollback preview on PostgreSQL 18', () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(18);
    for (const [db, rows] of [
      ['src', 1000],
      ['tgt', 990],
    ] as const) {
      await server.query(`CREATE DATABASE ${db}`);
      await server.query(`CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, ${rows})`, [], db);
    }
  });
  after(async () => {
    await server.stop();
  });

  const runbook = (dir: string, steps: string) =>
    runbookFile(postgresRunbook({ name: 'screens', connections: { source: server.urlFor('src'), target: server.urlFor('tgt') }, steps }), { dir }).file;

  it('a blocked plan: the step with its kind and connections, the blocker once, what was rolled back, and the next command', async () => {
    const dir = tempDir();
    const file = runbook(
      dir,
      `  - id: freeze
    kind: sql
    connection: source
    sql: SELECT 1
    rollback: SELECT 2
  - id: compare
    kind: compare
    source: source
    target: target
  - id: detach
    kind: sql
    connection: target
    sql: SELECT 3
`,
    );
    const run = await cutover(['run', file, '--yes', '--state-dir', path.join(dir, 'state')]);
    assert.equal(run.code, 1, run.stderr);
    const all = run.stdout + run.stderr;
    assert.match(
      run.stderr,
      /✖ step "compare" \(compare, connections source, target\) failed while planning:\n {2}blocked:\n {4}- public\.orders: count-differs \(source 1000, target 990\)/,
    );
    assert.equal(count(all, 'count-differs (source 1000, target 990)'), 1, 'the blocker is printed once');
    // Without a terminal the list is plain lines (listr2 prints a failed task's line on stderr).
    assert.match(all, /✖ compare \[FAILED: plan failed \[\S+: plan \S+\]: blocked \(reasons below\)\]/);
    assert.match(run.stdout, /↓ detach \[SKIPPED: not run\]/, 'a step that did not run keeps its name');
    assert.match(run.stderr, /Where things stand:\n {2}rolled back: freeze \(sql\)/);
    assert.match(run.stderr, new RegExp(`Next: fix the cause, then run the runbook again:\\n {2}cutover run ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.doesNotMatch(all, CLASS_NAME);

    const plan = await cutover(['plan', file, '--state-dir', path.join(dir, 'state')]);
    assert.equal(plan.code, 1, plan.stderr);
    const planned = plan.stdout + plan.stderr;
    assert.equal(count(planned, 'count-differs (source 1000, target 990)'), 1, 'a plan prints the blocker once, in the plan');
    assert.match(
      plan.stderr,
      /✖ step "compare" \(compare, connections source, target\) cannot be applied: 1 blocker, marked "! blocked" in its plan above\n\nNothing was applied \(a plan runs read-only\)\./,
    );
    assert.doesNotMatch(planned, CLASS_NAME);

    // Two blocked steps: the summary names both, not only the first.
    const twice = runbook(
      tempDir(),
      `  - id: compare
    kind: compare
    source: source
    target: target
  - id: compare-again
    kind: compare
    source: source
    target: target
`,
    );
    const both = await cutover(['plan', twice, '--state-dir', path.join(dir, 'state')]);
    assert.equal(both.code, 1, both.stderr);
    assert.match(
      both.stderr,
      /✖ 2 steps cannot be applied, each marked "! blocked" in its plan above:\n {2}compare \(compare, connections source, target\): 1 blocker\n {2}compare-again \(compare, connections source, target\): 1 blocker\n/,
    );
  });

  it('a failed statement: SQLSTATE and hint under the step that ran it', async () => {
    const dir = tempDir();
    const file = runbook(
      dir,
      `  - id: prepare
    kind: sql
    connection: target
    sql: SELECT 1
    rollback: SELECT 1
  - id: call
    kind: sql
    connection: target
    sql: SELECT no_such_function(1)
`,
    );
    const run = await cutover(['run', file, '--yes', '--state-dir', path.join(dir, 'state')]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /✖ step "call" \(sql, connection target\) failed while applying:\n {2}target: ERROR 42883: function no_such_function\(integer\) does not exist/,
    );
    assert.match(run.stderr, /HINT: No function matches the given name and argument types/);
    assert.equal(count(run.stdout + run.stderr, 'HINT: No function matches'), 1, 'the cause in full once, after the list');
    assert.doesNotMatch(run.stdout + run.stderr, CLASS_NAME);
  });

  it("after a run, what its read-only steps found: a precheck's warning row by row, a long comparison by its footer; none of it for steps that write", async () => {
    const dir = tempDir();
    await server.query('CREATE ROLE screens_admin SUPERUSER LOGIN');
    // 25 tables on both sides: more rows than a run prints.
    for (const db of ['src', 'tgt']) {
      await server.query(Array.from({ length: 25 }, (_, i) => `CREATE TABLE many_${i} (id int PRIMARY KEY)`).join(';'), [], db);
    }
    const file = runbookFile(
      postgresRunbook({
        name: 'findings',
        connections: { source: server.urlFor('src'), target: server.urlFor('tgt'), other: server.urlFor('src').replace('postgres@', 'screens_admin@') },
        steps: `  - id: precheck
    kind: upgrade-precheck
    connection: other
    targetVersion: 18
  - id: compare
    kind: compare
    source: source
    target: target
    include: [public.many_*]
  - id: touch
    kind: sql
    connection: target
    sql: SELECT 1
`,
      }),
      { dir },
    ).file;
    const run = await cutover(['run', file, '--yes', '--state-dir', path.join(dir, 'state')]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const found = run.stdout.slice(run.stdout.indexOf('What the read-only steps found:'));
    assert.ok(found.length > 0 && found.startsWith('What'), run.stdout);
    assert.match(found, / 1\. precheck \[upgrade-precheck\] completed\n/);
    assert.match(found, /warning\s+not-install-user\s+screens_admin\s+Run pg_upgrade with -U postgres/);
    assert.match(found, /0 error\(s\), 1 warning\(s\), 0 to verify/);
    // 25 rows are not printed; the footer and where to read them are.
    assert.match(found, / 2\. compare \[compare\] completed\n\s+.*: 25 rows, in the report\n\s+25 same, 0 different\n/);
    assert.doesNotMatch(found, /many_0/);
    assert.match(found, /\(every row: cutover report \d{8}T\d{9}Z-[0-9a-f]{4}\)/);
    assert.doesNotMatch(found, /touch/);
    assert.doesNotMatch(run.stdout + run.stderr, CLASS_NAME);
  });

  it(
    'rollback --dry-run of sequence-reset: each sequence now and what it goes back to; a sequence that handed out values since is refused, as the rollback then does; the preview returns',
    { timeout: 60_000 },
    async () => {
      const dir = tempDir();
      const state = path.join(dir, 'state');
      await server.query("CREATE SEQUENCE prev_a; CREATE SEQUENCE prev_b; SELECT setval('prev_a', 500), setval('prev_b', 77)", [], 'src');
      await server.query('CREATE SEQUENCE prev_a; CREATE SEQUENCE prev_b', [], 'tgt');
      const file = runbook(
        dir,
        `  - id: reset
    kind: sequence-reset
    connection: target
    from: { connection: source }
    include: [public.prev_*]
`,
      );
      assert.equal((await cutover(['run', file, '--yes', '--state-dir', state])).code, 0);
      await server.query("SELECT nextval('prev_b')", [], 'tgt');
      // The CLI exits by itself: the preview's sessions are closed (it used to hang here).
      const preview = await cutover(['rollback', '--dry-run', '--last', '--state-dir', state]);
      assert.equal(preview.code, 0, preview.stderr);
      assert.match(preview.stdout, /public\.prev_a\s+501\s+1\s+restore\n/);
      assert.match(preview.stdout, /public\.prev_b\s+79\s+1\s+refuse: values handed out since the step \(--force restores\)\n/);
      assert.match(preview.stdout, /1 to restore, 1 refused, 0 already restored/);
      assert.match(preview.stdout, /It would end needs-attention \(exit 3\): reset's rollback would refuse part of its undo \(above\)\./);
      // With --force the preview shows what the forced rollback does, not the refusal it overrides.
      const forced = await cutover(['rollback', '--dry-run', '--force', '--last', '--state-dir', state]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /public\.prev_b\s+79\s+1\s+restore \(--force: values handed out since the step will be handed out again\)\n/);
      assert.match(forced.stdout, /2 to restore, 0 refused, 0 already restored/);
      assert.doesNotMatch(forced.stdout, /needs-attention|refuse:/);
      assert.match(forced.stdout, /To do it: cutover rollback \S+ --force\n/);
      const rollback = await cutover(['rollback', '--last', '--state-dir', state]);
      assert.equal(rollback.code, 3, rollback.stderr);
      assert.match(rollback.stderr, /1 sequence\(s\) handed out values after the step ran.*public\.prev_b/);
      assert.deepEqual(await server.query("SELECT nextval('prev_a')::int AS a", [], 'tgt'), [{ a: 1 }]);
      assert.doesNotMatch(preview.stdout + preview.stderr + rollback.stdout + rollback.stderr, CLASS_NAME);
    },
  );

  it('a rollback that fails does not end its progress lines with a tick; one that succeeds does', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const steps = (undo: string) => `  - id: first
    kind: sql
    connection: target
    sql: SELECT 1
    rollback: SELECT 1
  - id: second
    kind: sql
    connection: target
    sql: SELECT 2
    rollback: ${undo}
`;
    const failing = runbook(dir, steps('SELECT 1/0'));
    assert.equal((await cutover(['run', failing, '--yes', '--state-dir', state])).code, 0);
    const failed = await cutover(['rollback', '--last', '--state-dir', state]);
    assert.equal(failed.code, 3, failed.stderr);
    // listr2 writes failures to stderr.
    assert.match(failed.stderr, /^✖ undo second \[FAILED: rollback failed: ERROR 22012: division by zero\]$/m);
    assert.match(failed.stderr, /^✖ rollback \[FAILED: undo of second failed\]$/m);
    assert.doesNotMatch(failed.stdout + failed.stderr, /✔ rollback/);

    const passing = runbook(tempDir(), steps('SELECT 2'));
    assert.equal((await cutover(['run', passing, '--yes', '--state-dir', state])).code, 0);
    const passed = await cutover(['rollback', '--last', '--state-dir', state]);
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stdout, /^✔ rollback \(requested by cutover rollback\)$/m);
    assert.doesNotMatch(passed.stdout + passed.stderr, /✖/);
  });

  it('a success shows no rollback task and "(verified)" only where a verification ran; rollback --dry-run previews, changes nothing; the rollback says what it left', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state');
    const file = runbook(
      dir,
      `  - id: add-column
    kind: sql
    connection: target
    sql: ALTER TABLE orders ADD COLUMN note text
    rollback: ALTER TABLE orders DROP COLUMN note
  - id: check
    kind: sql
    connection: target
    sql: SELECT 1
    verify: { query: "SELECT count(*) FROM orders", expect: 990 }
    rollback: SELECT 1
  - id: detach
    kind: sql
    connection: target
    sql: SELECT 2
`,
    );
    const run = await cutover(['run', file, '--yes', '--state-dir', state]);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /rollback/, 'no rollback task after a success');
    assert.match(run.stdout, /✔ check \(verified\) \[\S+: plan \S+, apply \S+, verify \S+\]/);
    assert.match(run.stdout, /✔ add-column \[\S+: plan \S+, apply \S+\]/);
    assert.doesNotMatch(run.stdout, /add-column \(verified\)|detach \(verified\)/);
    assert.equal(run.stderr, '');

    const journalBefore = readFileSync(journalFile(path.join(state, 'runs', (/run (\S+): succeeded/.exec(run.stdout) ?? [])[1] ?? '')), 'utf8');
    const preview = await cutover(['rollback', '--dry-run', '--last', '--state-dir', state]);
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(
      preview.stdout,
      /^Rollback of run \S+ would \(nothing was changed\):\n 1\. detach \[sql\] IRREVERSIBLE, left as it is: no rollback SQL was given\n 2\. check \[sql\] undo\n {6}\[target\] SELECT 1\n 3\. add-column \[sql\] undo\n {6}\[target\] ALTER TABLE orders DROP COLUMN note\n\nIt would end needs-attention \(exit 3\): detach cannot be rolled back \(no rollback SQL was given\)\.\nTo do it: cutover rollback \S+\n$/,
    );
    const json = JSON.parse((await cutover(['rollback', '--dry-run', '--json', '--state-dir', state])).stdout) as RollbackPreview;
    assert.deepEqual(
      json.steps.map((s) => [s.id, s.action, s.plan?.actions.map((a) => (a.type === 'sql' ? a.sql : a.type))]),
      [
        ['detach', 'irreversible', undefined],
        ['check', 'undo', ['SELECT 1']],
        ['add-column', 'undo', ['ALTER TABLE orders DROP COLUMN note']],
      ],
    );
    assert.equal(json.outcome, 'needs-attention');
    const runDir = path.join(state, 'runs', json.runId);
    assert.equal(readFileSync(journalFile(runDir), 'utf8'), journalBefore, 'the preview journals nothing');
    assert.deepEqual(
      await server.query("SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'note'", [], 'tgt'),
      [{ n: 1 }],
      'the preview changed nothing',
    );

    const rollback = await cutover(['rollback', '--last', '--state-dir', state]);
    assert.equal(rollback.code, 3, rollback.stderr);
    assert.match(
      rollback.stderr,
      /rolled back: add-column \(sql\), check \(sql\)\n {2}still in place, cannot be rolled back: detach \(sql\): no rollback SQL was given/,
    );
    assert.match(rollback.stderr, /undo detach by hand if it must be undone: cutover cannot/);
    assert.doesNotMatch(rollback.stdout + rollback.stderr, CLASS_NAME);
    assert.deepEqual(
      await server.query(
        "SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'note' AND NOT attisdropped",
        [],
        'tgt',
      ),
      [{ n: 0 }],
    );
  });
});
