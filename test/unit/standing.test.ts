/**
 * Where a run's steps stand when it ended: the one classification behind the
 * CLI's "Where things stand" and a fleet rollback's line per target.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { standing, type StepResult } from '../../src/engine/result.js';

const step = (id: string, status: StepResult['status'], extra: Partial<StepResult> = {}): StepResult => ({
  id,
  kind: 'sql',
  status,
  connections: ['db'],
  ...extra,
});
const ids = (steps: readonly StepResult[]) => steps.map((s) => s.id);

describe('standing', () => {
  it('puts every step where it stands, and a step that writes nothing nowhere it could be undone', () => {
    const s = standing({
      steps: [
        step('undone', 'rolled-back'),
        step('kept', 'rollback-skipped', { applied: true, rollbackSkipped: { reason: 'no rollback SQL was given', irreversible: true } }),
        step('undo-failed', 'rollback-failed', { error: { name: 'DatabaseError', message: 'boom', sqlstate: '42P01' } }),
        step('in-place', 'completed'),
        step('applied-only', 'applied'),
        step('check', 'completed', { readsOnly: true }),
        step('verify-failed', 'failed', { applied: true }),
        step('plan-failed', 'failed'),
        step('cut-short', 'applying'),
        step('reading', 'applying', { readsOnly: true }),
        step('later', 'pending'),
      ],
    });
    assert.deepEqual(ids(s.rolledBack), ['undone']);
    assert.deepEqual(ids(s.irreversible), ['kept']);
    assert.deepEqual(ids(s.rollbackFailed), ['undo-failed']);
    assert.deepEqual(ids(s.inPlace), ['in-place', 'applied-only']);
    assert.deepEqual(ids(s.unverified), ['verify-failed']);
    assert.deepEqual(ids(s.stoppedWriting), ['cut-short']);
    assert.deepEqual(ids(s.stoppedReading), ['reading']);
  });
});
