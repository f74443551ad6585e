/**
 * A step's own deadline reports before the engine's abort for the same step,
 * however busy the machine: the failure names what was still behind, never
 * an AbortError. The engine's ceiling (timeout plus a grace) only stops a
 * step that ignores its deadline, and then says so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registry, runRunbook } from '../../src/index.js';
import { stubbornKind } from '../helpers/kinds.js';
import { stepCeilingMs } from '../../src/engine/run-context.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { loadRunbookText, postgresRunbook } from '../helpers/runbook.js';

const version = VERSIONS[VERSIONS.length - 1] ?? 18;

describe(`step deadlines on PostgreSQL ${version}`, () => {
  let server: TestServer;
  before(async () => {
    server = await startPostgres(version);
  });
  after(async () => {
    await server.stop();
  });

  const load = (steps: string, extra = registry) =>
    loadRunbookText(postgresRunbook({ name: 'deadlines', connections: { db: server.url }, steps }), { registry: extra, env: {} });

  it('the grace is at least 5 s and a quarter of the timeout', () => {
    assert.equal(stepCeilingMs(2_000), 7_000);
    assert.equal(stepCeilingMs(600_000), 750_000);
  });

  it('a wait whose every poll is slow still fails with its own timeout and the last value', async () => {
    // Each poll takes 400 ms of a 1 s timeout, so the last one ends near the
    // deadline: the step's own check must still be what reports.
    const { runbook, dir } = load(
      '  - id: never\n    kind: wait\n    connection: db\n    query: SELECT 0 FROM pg_sleep(0.4)\n    expect: 1\n    interval: 100ms\n    timeout: 1s\n',
    );
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'rolled-back');
    assert.equal(result.steps[0]?.error?.name, 'WaitTimeoutError');
    assert.equal(result.steps[0]?.error?.message, 'timed out after 1000ms: last value 0, expected 1');
  });

  it('a step that ignores its deadline is stopped at the ceiling, and the error names its timeout', async () => {
    const stubborn = stubbornKind();
    const extended = { ...registry, stubborn };
    const { runbook, dir } = load('  - id: s\n    kind: stubborn\n    timeout: 100ms\n', extended);
    const result = await runRunbook(runbook, { registry: extended, stateDir: dir });
    assert.equal(result.status, 'rolled-back');
    assert.equal(result.steps[0]?.error?.name, 'StepTimeoutError');
    assert.equal(result.steps[0]?.error?.message, 'step "s" was still running 5000ms after its timeout of 100ms: stopped by the engine');
  });
});
