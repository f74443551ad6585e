/**
 * Every step kind has the two tests issue 16 asks of it: a saved plan that
 * stops when what the kind's plan reads changed (drift), and apply executing
 * its planned payload (apply). This table says where each is; the test
 * fails when a registered kind has no row, a row names no registered kind,
 * or the named test is not in the named file. So a new kind cannot land
 * without both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { registry } from '../../src/steps/index.js';

interface Where {
  /** The test file under test/integration, without `.test.ts`. */
  readonly file: string;
  /** The start of the test's name. */
  readonly test: string;
}

const DRIFT = 'plan-drift';
const APPLY = 'apply-planned';

const COVERAGE: Readonly<Record<string, { readonly drift: Where; readonly apply: Where }>> = {
  sql: { drift: { file: DRIFT, test: 'sql:' }, apply: { file: APPLY, test: 'sql:' } },
  shell: { drift: { file: DRIFT, test: 'shell:' }, apply: { file: APPLY, test: 'shell:' } },
  wait: { drift: { file: DRIFT, test: 'wait:' }, apply: { file: APPLY, test: 'wait:' } },
  confirm: { drift: { file: DRIFT, test: 'confirm:' }, apply: { file: APPLY, test: 'confirm:' } },
  'sequence-reset': {
    drift: { file: 'review', test: 'a plan is executed exactly as saved, and refused with a diff naming the sequence' },
    apply: { file: APPLY, test: 'sequence-reset:' },
  },
  'freeze-writes': { drift: { file: DRIFT, test: 'freeze-writes:' }, apply: { file: APPLY, test: 'freeze-writes:' } },
  analyze: { drift: { file: DRIFT, test: 'analyze:' }, apply: { file: APPLY, test: 'analyze:' } },
  'slot-create': { drift: { file: DRIFT, test: 'slot-create:' }, apply: { file: APPLY, test: 'slot-create:' } },
  'slot-drop': { drift: { file: DRIFT, test: 'slot-drop:' }, apply: { file: APPLY, test: 'slot-drop:' } },
  'slots-inventory': {
    drift: { file: DRIFT, test: 'slots-inventory:' },
    apply: { file: APPLY, test: 'compare, upgrade-precheck, plan-check, slots-inventory:' },
  },
  'replication-caught-up': { drift: { file: DRIFT, test: 'replication-caught-up:' }, apply: { file: APPLY, test: 'replication-caught-up:' } },
  'subscriptions-disable': { drift: { file: DRIFT, test: 'subscriptions-disable:' }, apply: { file: APPLY, test: 'subscriptions-disable:' } },
  'subscriptions-enable': { drift: { file: DRIFT, test: 'subscriptions-enable:' }, apply: { file: APPLY, test: 'subscriptions-enable:' } },
  'subscription-detach': { drift: { file: DRIFT, test: 'subscription-detach:' }, apply: { file: APPLY, test: 'subscription-detach:' } },
  compare: { drift: { file: DRIFT, test: 'compare:' }, apply: { file: APPLY, test: 'compare, upgrade-precheck, plan-check, slots-inventory:' } },
  'upgrade-precheck': {
    drift: { file: DRIFT, test: 'upgrade-precheck:' },
    apply: { file: APPLY, test: 'compare, upgrade-precheck, plan-check, slots-inventory:' },
  },
  'plan-check': { drift: { file: DRIFT, test: 'plan-check:' }, apply: { file: APPLY, test: 'compare, upgrade-precheck, plan-check, slots-inventory:' } },
  pgbouncer: {
    drift: { file: 'pgbouncer', test: 'a saved switch plan stops with the difference when the databases file changed since' },
    apply: { file: 'pgbouncer', test: 'apply sends only its payload' },
  },
  patroni: {
    drift: { file: 'patroni', test: 'a saved switchover plan stops with the difference when another member leads since' },
    apply: { file: 'patroni', test: 'apply sends the POST of its payload, to its URL, only while the payload leader leads' },
  },
};

// Compiled to dist/test/unit/: the integration tests are beside, in dist/test/integration/.
const integration = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../integration');
const source = (file: string) => readFileSync(path.join(integration, `${file}.test.js`), 'utf8');

describe('every step kind has a drift test and an apply-the-payload test', () => {
  it('the table names exactly the registered kinds', () => {
    assert.deepEqual(Object.keys(COVERAGE).sort(), Object.keys(registry).sort());
  });

  for (const [kind, where] of Object.entries(COVERAGE)) {
    it(`${kind}: both named tests exist`, () => {
      for (const [what, at] of Object.entries(where)) {
        assert.ok(source(at.file).includes(`it('${at.test}`), `${kind}: no ${what} test starting "${at.test}" in test/integration/${at.file}.test.ts`);
      }
    });
  }
});
