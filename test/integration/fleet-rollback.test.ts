/**
 * `cutover fleet rollback`: four targets in two waves on one real
 * PostgreSQL server. After the fleet ran, rollback undoes every target's
 * run, the last wave first (the canary last), each from its own journal;
 * a second rollback finds nothing to undo.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadInventory, registry, runFleet, loadRunState, type FleetStatus } from '../../src/index.js';
import { FileFleetStore } from '../../src/fleet/store.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';
import { createTargets, inventoryText } from '../helpers/fleet.js';

const TARGETS = ['r1', 'r2', 'r3', 'r4'];

/** A runbook on the target's DB_URL: its name, then its steps (YAML). */
const dbRunbook = (name: string, steps: string) => `version: 1
name: ${name}
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
${steps}`;

describe('fleet rollback', { timeout: 120_000 }, () => {
  let s: TestServer;
  let dir: string;
  let inventoryFile: string;
  let runbookFile: string;
  let stateDir: string;

  before(async () => {
    s = await startPostgres(18);
    dir = tempDir('cutover-fleet-rollback-');
    stateDir = path.join(dir, 'state');
    await createTargets(TARGETS, () => s);
    inventoryFile = writeRunbook(
      dir,
      'inv.yaml',
      inventoryText({
        name: 'rb',
        targets: TARGETS.map((t) => ({ name: t, variables: { DB_URL: s.urlFor(t) } })),
        waves: [{ name: 'canary', targets: ['r1'] }, { name: 'rest' }],
      }),
    );
    runbookFile = writeRunbook(
      dir,
      'cutover.yaml',
      `version: 1
name: rollback me
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
  - id: one
    kind: sql
    connection: db
    sql: INSERT INTO effects (step) VALUES ('one')
    rollback: DELETE FROM effects WHERE step = 'one'
  - id: two
    kind: sql
    connection: db
    sql: INSERT INTO effects (step) VALUES ('two')
    rollback: DELETE FROM effects WHERE step = 'two'
`,
    );
  });

  after(async () => {
    await s?.stop();
  });

  const count = async (t: string) => {
    const rows = await s.query<{ n: string }>('SELECT count(*)::text AS n FROM effects', [], t);
    await s.release(t);
    return Number(rows[0]?.n);
  };

  test('undoes every target, the last wave first, then finds nothing to undo', async () => {
    const ran = await runFleet(loadInventory(inventoryFile), runbookFile, 'run', { registry, stateDir, jobs: 2 });
    assert.equal(ran.outcome, 'succeeded');
    for (const t of TARGETS) assert.equal(await count(t), 2, t);

    const rolled = await cutover(['fleet', 'rollback', inventoryFile, runbookFile, '--state-dir', stateDir, '--json']);
    assert.equal(rolled.code, 0, rolled.stderr);
    const results = JSON.parse(rolled.stdout) as { name: string; wave: string; status: string; runId: string }[];
    assert.deepEqual(
      results.map((r) => [r.name, r.status]),
      [
        ['r4', 'rolled-back'],
        ['r3', 'rolled-back'],
        ['r2', 'rolled-back'],
        ['r1', 'rolled-back'],
      ],
    );
    for (const t of TARGETS) assert.equal(await count(t), 0, t);

    // The journals agree: each run is rolled back, and the canary's rollback finished after every other one.
    const store = new FileFleetStore(stateDir, 'rb', runbookFile);
    const finished = new Map(
      results.map((r) => {
        const state = loadRunState(r.runId, store.targetStateDir(r.name)).state;
        assert.equal(state.status, 'rolled-back', r.name);
        return [r.name, Date.parse(state.finishedAt ?? '')];
      }),
    );
    for (const t of ['r2', 'r3', 'r4']) assert.ok((finished.get('r1') ?? 0) >= (finished.get(t) ?? Infinity), `r1 after ${t}`);

    const again = await cutover(['fleet', 'rollback', inventoryFile, runbookFile, '--state-dir', stateDir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /0 rolled back, 4 had nothing to undo/);
    // fleet status says the same as the targets' journals: no wave reads done after its rollback.
    const status = await fleetStatusJson();
    assert.deepEqual(
      [status.lastCommand, status.lastOutcome, status.waves.map((w) => [w.name, w.status])],
      [
        'rollback',
        'rolled-back',
        [
          ['canary', 'rolled-back'],
          ['rest', 'rolled-back'],
        ],
      ],
    );
    assert.deepEqual(status.summary, { 'rolled-back': 4 });
  });

  test('a rollback that fails on one target: that wave reads partly rolled back, the fleet too', async () => {
    // After a rollback, resume runs every target again.
    const ran = await runFleet(loadInventory(inventoryFile), runbookFile, 'resume', { registry, stateDir, jobs: 2 });
    assert.equal(ran.outcome, 'succeeded');
    let status = await fleetStatusJson();
    assert.deepEqual([status.lastCommand, status.lastOutcome, status.waves.map((w) => w.status)], ['resume', 'succeeded', ['done', 'done']]);

    await s.query('ALTER TABLE effects RENAME TO gone', [], 'r3');
    try {
      const rolled = await cutover(['fleet', 'rollback', inventoryFile, runbookFile, '--state-dir', stateDir]);
      assert.notEqual(rolled.code, 0);
      assert.match(rolled.stdout, /3 rolled back, 0 had nothing to undo, 1 need attention \(see each above\), 0 not rolled back/);
      assert.match(
        rolled.stderr,
        /r3 \(rest\): needs-attention run \S+: rollback failed: two \(42P01: relation "effects" does not exist\); not rolled back yet: one\n/,
      );
    } finally {
      await s.query('ALTER TABLE gone RENAME TO effects', [], 'r3');
      await s.release('r3');
    }
    status = await fleetStatusJson();
    assert.deepEqual(
      [status.lastCommand, status.lastOutcome, status.waves.map((w) => [w.name, w.status])],
      [
        'rollback',
        'partly-rolled-back',
        [
          ['canary', 'rolled-back'],
          ['rest', 'partly-rolled-back'],
        ],
      ],
    );
    const text = await cutover(['fleet', 'status', inventoryFile, runbookFile, '--state-dir', stateDir]);
    assert.match(text.stdout, /last rollback: partly-rolled-back\nwaves: canary \(1\): rolled-back, rest \(3\): partly-rolled-back/);
  });

  test('a step that cannot be undone: each target says what was undone and what is left; the wave reads partly rolled back, not "not rolled back"', async () => {
    const state = path.join(dir, 'state-irreversible');
    const partial = writeRunbook(
      dir,
      'irreversible.yaml',
      dbRunbook(
        'partly',
        `  - id: add
    kind: sql
    connection: db
    sql: INSERT INTO effects (step) VALUES ('add')
    rollback: DELETE FROM effects WHERE step = 'add'
  - id: keep
    kind: sql
    connection: db
    sql: SELECT 1
`,
      ),
    );
    const ran = await runFleet(loadInventory(inventoryFile), partial, 'run', { registry, stateDir: state, jobs: 2 });
    assert.equal(ran.outcome, 'succeeded');
    const rolled = await cutover(['fleet', 'rollback', inventoryFile, partial, '--state-dir', state]);
    assert.equal(rolled.code, 3, rolled.stderr);
    assert.match(rolled.stdout, /fleet rollback: 0 rolled back, 0 had nothing to undo, 4 need attention \(see each above\), 0 not rolled back/);
    assert.match(
      rolled.stderr,
      /r1 \(canary\): needs-attention run \S+: rolled back: add; still in place, cannot be rolled back: keep: no rollback SQL was given/,
    );
    for (const t of TARGETS) {
      assert.deepEqual(await s.query("SELECT count(*)::int AS n FROM effects WHERE step = 'add'", [], t), [{ n: 0 }], t);
      await s.release(t);
    }
    const shown = await cutover(['fleet', 'status', inventoryFile, partial, '--state-dir', state]);
    assert.match(shown.stdout, /last rollback: partly-rolled-back\nwaves: canary \(1\): partly-rolled-back, rest \(3\): partly-rolled-back/);
  });

  test('a run that needs a person names the target, why, and the command that shows its run', async () => {
    const state = path.join(dir, 'state-attention');
    const bad = writeRunbook(
      dir,
      'bad-undo.yaml',
      dbRunbook(
        'bad undo',
        `  - id: one
    kind: sql
    connection: db
    sql: SELECT 1
    rollback: SELECT 1/0
  - id: two
    kind: sql
    connection: db
    sql: SELECT 1/0
`,
      ),
    );
    const ran = await cutover(['fleet', 'run', inventoryFile, bad, '--state-dir', state]);
    assert.equal(ran.code, 3, ran.stderr);
    const runId = /r1: started run (\S+)/.exec(ran.stdout + ran.stderr)?.[1] ?? '';
    assert.notEqual(runId, '', ran.stdout + ran.stderr);
    const store = new FileFleetStore(state, 'rb', bad);
    assert.ok(
      ran.stdout.includes(
        `fleet needs-attention: a target needs a person before the fleet can go on:\n  r1: step "two" failed during apply: division by zero; cutover status ${runId} --state-dir ${store.targetStateDir('r1')}`,
      ),
      ran.stdout,
    );
  });

  test('status of a runbook path that is mistyped, or of another runbook of the same file name, is an error, not a fleet that never ran', async () => {
    const missing = await cutover(['fleet', 'status', inventoryFile, path.join(dir, 'cutvoer.yaml'), '--state-dir', stateDir]);
    assert.equal(missing.code, 2, missing.stdout);
    assert.match(missing.stderr, /runbook \S+cutvoer\.yaml: no such file, and no fleet of \S+ ran it/);
    const elsewhere = path.join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const namesake = writeRunbook(elsewhere, 'cutover.yaml', readFileSync(runbookFile, 'utf8'));
    const other = await cutover(['fleet', 'status', inventoryFile, namesake, '--state-dir', stateDir]);
    assert.equal(other.code, 2, other.stdout);
    assert.match(other.stderr, /fleet state \S+ belongs to runbook \S+, not \S+elsewhere\/cutover\.yaml; rename one of them/);
  });

  test('an approval is for the runbook as it was approved: after a change, the confirm waits for a new one', async () => {
    const state = path.join(dir, 'state-approval');
    const gated = (comment: string) => `version: 1
name: gated
# ${comment}
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
  - id: gate
    kind: confirm
    message: go on?
  - id: after
    kind: sql
    connection: db
    sql: INSERT INTO effects (step) VALUES ('gated')
    rollback: DELETE FROM effects WHERE step = 'gated'
`;
    const file = writeRunbook(dir, 'gated.yaml', gated('as reviewed'));
    for (const wave of ['canary', 'rest']) assert.equal((await cutover(['fleet', 'approve', inventoryFile, file, wave, '--state-dir', state])).code, 0);
    writeRunbook(dir, 'gated.yaml', gated('changed after the review'));
    const controller = new AbortController();
    const waited: string[] = [];
    const stopped = await runFleet(loadInventory(inventoryFile), file, 'run', {
      registry,
      stateDir: state,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type !== 'target.waiting') return;
        waited.push(event.target);
        controller.abort();
      },
    });
    assert.equal(stopped.outcome, 'stopped');
    assert.deepEqual(waited, ['r1'], 'the canary waits: the approvals were for the runbook before its change');
    for (const wave of ['canary', 'rest']) assert.equal((await cutover(['fleet', 'approve', inventoryFile, file, wave, '--state-dir', state])).code, 0);
    const resumed = await runFleet(loadInventory(inventoryFile), file, 'resume', {
      registry,
      stateDir: state,
      onEvent: (event) => {
        if (event.type === 'target.waiting') waited.push(event.target);
      },
    });
    assert.equal(resumed.outcome, 'succeeded');
    assert.deepEqual(waited, ['r1'], 'approved again for the runbook as it is: nothing waits');
    for (const t of TARGETS) {
      assert.deepEqual(await s.query("SELECT count(*)::int AS n FROM effects WHERE step = 'gated'", [], t), [{ n: 1 }], t);
      await s.release(t);
    }
  });

  async function fleetStatusJson(): Promise<FleetStatus> {
    const shown = await cutover(['fleet', 'status', inventoryFile, runbookFile, '--state-dir', stateDir, '--json']);
    assert.equal(shown.code, 0, shown.stderr);
    return JSON.parse(shown.stdout) as FleetStatus;
  }
});
