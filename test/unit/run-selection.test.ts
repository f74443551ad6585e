/**
 * Which earlier runs keep `cutover run` from starting: the answer read from a
 * journal's first and last lines must be the answer the whole journal gives.
 * Journals are written with the real Journal class, without a database.
 */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Journal } from '../../src/audit/journal.js';
import { Redactor } from '../../src/audit/redact.js';
import type { RunEvent } from '../../src/audit/events.js';
import { mayBeUnfinished, unfinishedRuns } from '../../src/engine/run-selection.js';
import { listRunIds, runsDir } from '../../src/engine/runs.js';
import { tempDir } from '../helpers/cli.js';

const RUNBOOK = '/srv/runbooks/cutover.yaml';
const TARGET = 'cutover@db:5432/shop';

function started(runId: string, over: { mode?: 'run' | 'plan'; file?: string; target?: string; steps?: readonly string[] } = {}): RunEvent {
  return {
    type: 'run.started',
    runId,
    mode: over.mode ?? 'run',
    runbook: { file: over.file ?? RUNBOOK, sha256: 'f'.repeat(64), name: 'cutover' },
    operator: 'test',
    host: 'localhost',
    // Not a live process: pid 0 is never a run's.
    pid: 0,
    toolVersion: '0.1.0',
    connections: [{ name: 'db', kind: 'postgres', target: over.target ?? TARGET }],
    steps: over.steps ?? ['a'],
    options: { yes: true },
  };
}

const applied: RunEvent[] = [
  { type: 'step.started', stepId: 'a', attempt: 1 },
  { type: 'step.applied', stepId: 'a', durationMs: 1 },
];
const finished = (status: 'succeeded' | 'stopped' | 'rolled-back' | 'refused'): RunEvent => ({ type: 'run.finished', status, durationMs: 1 });
/** A run that succeeded, then a `cutover rollback` of it that died while undoing its step. */
const rollbackCrashed: RunEvent[] = [
  started('r'),
  ...applied,
  finished('succeeded'),
  { type: 'run.resumed', operator: 't', host: 'h', pid: 0, command: 'rollback' },
  { type: 'rollback.step.started', stepId: 'a' },
];
const notifyFailed: RunEvent = { type: 'notify.failed', url: 'https://hooks.example/x', event: 'run.finished', reason: 'timeout' };

function writeRun(stateDir: string, runId: string, events: readonly RunEvent[]): string {
  const runDir = path.join(runsDir(stateDir), runId);
  const journal = Journal.create(runDir, new Redactor());
  for (const event of events) journal.append(event);
  journal.close();
  return runDir;
}

/** Long enough that its run.started or its last lines do not fit in the 8 KB the fast path reads. */
const manySteps = Array.from({ length: 600 }, (_, i) => `step-with-a-long-name-${String(i).padStart(4, '0')}`);

describe('runs that keep `cutover run` from starting', () => {
  const cases: { name: string; events: RunEvent[]; unfinished: boolean; fast?: boolean }[] = [
    { name: 'stopped with a step applied', events: [started('r'), ...applied, finished('stopped')], unfinished: true },
    { name: 'crashed mid-step (no run end)', events: [started('r'), applied[0] as RunEvent], unfinished: true },
    { name: 'succeeded', events: [started('r'), ...applied, finished('succeeded')], unfinished: false, fast: true },
    {
      name: 'succeeded, then a webhook failed',
      events: [started('r'), ...applied, finished('succeeded'), notifyFailed, notifyFailed],
      unfinished: false,
      fast: true,
    },
    { name: 'succeeded, then a rollback that crashed', events: rollbackCrashed, unfinished: true },
    {
      name: 'stopped, then resumed and succeeded',
      events: [
        started('r'),
        ...applied,
        finished('stopped'),
        { type: 'run.resumed', operator: 't', host: 'h', pid: 0, command: 'resume' },
        finished('succeeded'),
      ],
      unfinished: false,
      fast: true,
    },
    {
      name: 'succeeded, then abandoned',
      events: [started('r'), ...applied, finished('succeeded'), { type: 'run.abandoned', reason: 'x', operator: 't', host: 'h', pid: 0 }],
      unfinished: false,
    },
    { name: 'a dry run', events: [started('r', { mode: 'plan' }), finished('stopped')], unfinished: false, fast: true },
    { name: 'another runbook', events: [started('r', { file: '/srv/other.yaml' }), ...applied, finished('stopped')], unfinished: false, fast: true },
    { name: 'other targets', events: [started('r', { target: 'cutover@db:5432/other' }), ...applied, finished('stopped')], unfinished: false, fast: true },
    {
      name: 'stopped, with a run.started longer than the window',
      events: [started('r', { steps: ['a', ...manySteps] }), ...applied, finished('stopped')],
      unfinished: true,
    },
    {
      name: 'stopped after a run.finished(succeeded) that is outside the window',
      events: [...rollbackCrashed, ...manySteps.slice(0, 200).map((s): RunEvent => ({ type: 'run.stopped', reason: s }))],
      unfinished: true,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: ${c.unfinished ? 'keeps' : 'does not keep'} a new run from starting`, () => {
      const stateDir = tempDir();
      const runDir = writeRun(stateDir, 'r', c.events);
      assert.deepEqual(
        unfinishedRuns(stateDir, RUNBOOK, [TARGET]).map((s) => s.runId),
        c.unfinished ? ['r'] : [],
      );
      // The journal's edges never rule out a run the whole journal keeps; for the common endings they decide alone.
      if (c.unfinished) assert.equal(mayBeUnfinished(runDir, RUNBOOK, TARGET), true);
      if (c.fast === true) assert.equal(mayBeUnfinished(runDir, RUNBOOK, TARGET), false);
    });
  }

  it('a torn last line (the process died mid-write) is read like the rest of the journal', () => {
    const stateDir = tempDir();
    const runDir = writeRun(stateDir, 'r', [started('r'), ...applied, finished('succeeded')]);
    appendFileSync(path.join(runDir, 'journal.jsonl'), '{"hash":"abc","rec');
    assert.equal(mayBeUnfinished(runDir, RUNBOOK, TARGET), false);
    assert.deepEqual(unfinishedRuns(stateDir, RUNBOOK, [TARGET]), []);
  });

  it('a file given as the state directory is refused by name, not read as "no runs yet"', () => {
    const file = path.join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    assert.throws(() => listRunIds(file), { name: 'UsageError', message: `state directory ${file} is not a directory` });
    assert.deepEqual(listRunIds(path.join(tempDir(), 'absent')), []);
  });
});
