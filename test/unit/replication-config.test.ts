/** The cross-field rules of replication-slots, as reported at validation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig, type SlotsConfig } from '../../src/replication/config.js';
import { formatBytes } from '../../src/replication/slot-actions.js';

const cases: { name: string; config: SlotsConfig; want: string[] }[] = [
  { name: 'inventory of everything is fine', config: { action: 'inventory' }, want: [] },
  {
    name: 'a field the action does not use is reported, with what it uses',
    config: { action: 'inventory', terminate: true },
    want: ['terminate: "terminate" does nothing for action inventory (it uses: slots, type, retainedWarning)'],
  },
  {
    name: 'drop needs a selection and, for logical slots, acceptPositionLoss',
    config: { action: 'drop' },
    want: [
      'slots: drop needs an explicit selection: slots: [names or patterns]',
      'acceptPositionLoss: dropping a logical slot loses its position: a recreated slot starts at the current WAL position and changes in between are never decoded. Set acceptPositionLoss: true to accept that (or type: physical)',
    ],
  },
  { name: 'dropping physical slots needs no acknowledgement', config: { action: 'drop', slots: ['standby_*'], type: 'physical' }, want: [] },
  {
    name: 'create takes names and a type',
    config: { action: 'create', slots: ['fallback_*'] },
    want: ['slots: create takes slot names, not patterns', 'type: create needs type: logical or physical'],
  },
  {
    name: 'physical slots have no plugin',
    config: { action: 'create', slots: ['s'], type: 'physical', plugin: 'pgoutput' },
    want: ['type: plugin, twoPhase and failover apply to logical slots only'],
  },
  {
    name: 'slots or standbys, not both',
    config: { action: 'assert-caught-up', slots: ['a'], standbys: ['b'] },
    want: ['standbys: wait for slots or for standbys, not both in one step'],
  },
  {
    name: 'detach needs subscriptions, and a publisher to drop the remote slot',
    config: { action: 'detach-subscription', dropRemoteSlot: true },
    want: [
      'subscriptions: detach-subscription needs an explicit selection: subscriptions: [names]',
      'publisher: dropRemoteSlot needs publisher: the connection where the slot lives',
    ],
  },
];

describe('replication-slots validation', () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(
        validateConfig(c.config).map((i) => `${i.path.join('.')}: ${i.message}`),
        c.want,
      );
    });
  }
});

describe('formatBytes', () => {
  it('uses 1024-based units with one decimal', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 5 * 1024 ** 3, null].map(formatBytes), ['0 B', '1023 B', '1.0 kB', '1.5 kB', '5.0 GB', null]);
  });
});
