/**
 * What a run prints after the live list about its read-only steps: only those
 * whose plan did all their work (a precheck, a comparison); a step that
 * waits in its apply (a lag check) planned before it waited, so its plan
 * table is stale by the end of the run and is not shown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFindings } from '../../src/cli/format-plan.js';
import type { RunResult, StepResult } from '../../src/index.js';

const table = (rows: number) => ({
  title: 'lag',
  columns: [{ key: 'slot', title: 'slot' }],
  rows: Array.from({ length: rows }, (_, i) => ({ slot: `s${i}` })),
  footer: `${rows} slot(s)`,
});

const step = (id: string, fields: Partial<StepResult>): StepResult => ({ id, kind: 'k', status: 'completed', connections: [], ...fields });

const result = (steps: StepResult[]): RunResult => ({
  runId: '20261205T000000000Z-abcd',
  dryRun: false,
  runDir: '/tmp/x',
  journalFile: '/tmp/x/journal.jsonl',
  status: 'succeeded',
  steps,
  journalHead: '0'.repeat(64),
});

describe('findings after a run', () => {
  it('shows a read-only step whose plan has no actions; not one that waits in its apply, nor one that writes', () => {
    const text = formatFindings(
      result([
        step('precheck', { readsOnly: true, plan: { actions: [], planned: null, tables: [table(1)] } }),
        step('caught-up', {
          readsOnly: true,
          plan: {
            actions: [{ type: 'poll', connection: 'db', sql: 'SELECT 1', expect: 1, intervalMs: 1000, timeoutMs: 5000 }],
            planned: null,
            tables: [table(1)],
          },
        }),
        step('writes', { plan: { actions: [], planned: null, tables: [table(1)] } }),
      ]),
    );
    assert.equal(
      text,
      ['', 'What the read-only steps found:', ' 1. precheck [k] completed', '      lag:', '        slot', '        s0', '        1 slot(s)'].join('\n'),
    );
  });

  it('a table of more than 20 rows by its title and footer, and where to read every row', () => {
    const text = formatFindings(result([step('compare', { readsOnly: true, plan: { actions: [], planned: null, tables: [table(21)] } })])) ?? '';
    assert.match(text, /lag: 21 rows, in the report\n {8}21 slot\(s\)\n\(every row: cutover report 20261205T000000000Z-abcd\)$/);
    assert.doesNotMatch(text, /s20/);
  });

  it('nothing to say: nothing printed', () => {
    assert.equal(formatFindings(result([step('a', { plan: { actions: [], planned: null } })])), undefined);
  });
});
