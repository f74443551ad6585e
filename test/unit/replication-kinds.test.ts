/**
 * The replication kinds at validation: each kind's cross-field rules, and the
 * old form (`kind: replication-slots` with `action:`) read as the kind that
 * replaced it, with a deprecation note at its place in the file. Positions
 * are found by content, not counted by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunbookValidationError, type ValidationIssue } from '../../src/errors.js';
import { parseRunbook, type Runbook } from '../../src/runbook/load.js';
import { registry } from '../../src/steps/index.js';
import { formatBytes } from '../../src/replication/slots.js';

const FILE = 'slots.yaml';

/** A runbook with connections `pub` and `sub` and these step lines (indented as list items under `steps:`). */
const runbook = (...steps: string[]) =>
  [
    'version: 1',
    'name: slots',
    'connections:',
    '  pub: { kind: postgres, host: localhost }',
    '  sub: { kind: postgres, host: localhost }',
    'steps:',
    ...steps,
    '',
  ].join('\n');

/** 1-based line and column of the first occurrence of `text` at or after line `from`. */
function at(yaml: string, text: string, from = 1): { line: number; column: number } {
  const lines = yaml.split('\n');
  for (let i = from - 1; i < lines.length; i++) {
    const column = lines[i]?.indexOf(text) ?? -1;
    if (column >= 0) return { line: i + 1, column: column + 1 };
  }
  throw new Error(`${text} not in the runbook`);
}

const parse = (yaml: string): Runbook => parseRunbook(yaml, FILE, { registry, env: {} });

function issues(yaml: string): readonly ValidationIssue[] {
  try {
    parse(yaml);
  } catch (error) {
    assert.ok(error instanceof RunbookValidationError, String(error));
    return error.issues;
  }
  return assert.fail('expected the runbook to be rejected');
}

const shown = (list: readonly ValidationIssue[]) => list.map((i) => `${i.position.line}:${i.position.column} ${i.path}: ${i.message}`);

describe('replication kinds: rules across fields', () => {
  const cases: { name: string; step: string[]; want: (yaml: string) => string[] }[] = [
    {
      name: 'slot-drop of logical slots needs acceptPositionLoss',
      step: ['  - id: d', '    kind: slot-drop', '    connection: pub', '    slots: [s1]'],
      want: (y) => [
        `${at(y, '- id: d').line}:${at(y, 'id: d').column} steps[0].acceptPositionLoss: step "d": dropping a logical slot loses its position: a recreated slot starts at the current WAL position and changes in between are never decoded. Set acceptPositionLoss: true to accept that (or type: physical)`,
      ],
    },
    {
      name: 'slot-drop needs slots',
      step: ['  - id: d', '    kind: slot-drop', '    connection: pub', '    type: physical', '    slots: []'],
      want: (y) => [`${at(y, '[]').line}:${at(y, '[]').column} steps[0].slots: step "d": name the slots to drop (names or patterns)`],
    },
    {
      name: 'slot-create takes names, not patterns, and a type',
      step: ['  - id: c', '    kind: slot-create', '    connection: pub', '    slots: [fallback_*]'],
      want: (y) => [`${at(y, '- id: c').line}:${at(y, 'id: c').column} steps[0].type: step "c": missing required key "type"`],
    },
    {
      name: 'slot-create of physical slots has no plugin',
      step: ['  - id: c', '    kind: slot-create', '    connection: pub', '    type: physical', '    plugin: pgoutput', '    slots: [fallback_*]'],
      want: (y) => [
        `${at(y, 'physical').line}:${at(y, 'physical').column} steps[0].type: step "c": plugin, twoPhase and failover apply to logical slots only`,
        `${at(y, 'fallback_*').line}:${at(y, '[fallback').column} steps[0].slots: step "c": slot-create takes slot names, not patterns`,
      ],
    },
    {
      name: 'replication-caught-up waits for slots or standbys, not both',
      step: ['  - id: w', '    kind: replication-caught-up', '    connection: pub', '    slots: [a]', '    standbys: [b]'],
      want: (y) => [`${at(y, '[b]').line}:${at(y, '[b]').column} steps[0].standbys: step "w": wait for slots or for standbys, not both in one step`],
    },
    {
      name: 'subscription-detach needs subscriptions, and a publisher to drop the remote slot',
      step: ['  - id: x', '    kind: subscription-detach', '    connection: sub', '    subscriptions: [s]', '    dropRemoteSlot: true'],
      want: (y) => [
        `${at(y, '- id: x').line}:${at(y, 'id: x').column} steps[0].publisher: step "x": dropRemoteSlot needs publisher: the connection where the slot lives`,
      ],
    },
    {
      name: 'a field of another kind is an unknown key',
      step: ['  - id: i', '    kind: slots-inventory', '    connection: pub', '    terminate: true'],
      want: (y) => [`${at(y, 'terminate').line}:${at(y, 'terminate').column} steps[0].terminate: step "i": unknown key "terminate"`],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const yaml = runbook(...c.step);
      assert.deepEqual(shown(issues(yaml)), c.want(yaml));
    });
  }

  it('each kind accepts its own fields', () => {
    const yaml = runbook(
      '  - { id: a, kind: slots-inventory, connection: pub, slots: ["s_*"], type: logical, retainedWarning: 1GB }',
      '  - { id: b, kind: replication-caught-up, connection: pub, standbys: [replica1], interval: 1s, timeout: 5m }',
      '  - { id: c, kind: slot-drop, connection: pub, slots: [s1], terminate: true, acceptPositionLoss: true }',
      '  - { id: d, kind: slot-create, connection: pub, slots: [s1], type: logical, plugin: pgoutput, twoPhase: true, failover: false }',
      '  - { id: e, kind: subscriptions-disable, connection: sub, subscriptions: [s] }',
      '  - { id: f, kind: subscriptions-enable, connection: sub }',
      '  - { id: g, kind: subscription-detach, connection: sub, subscriptions: [s], dropRemoteSlot: true, publisher: pub }',
    );
    const parsed = parse(yaml);
    assert.deepEqual(
      parsed.steps.map((s) => [s.kind, s.config]),
      [
        ['slots-inventory', { slots: ['s_*'], type: 'logical', retainedWarning: 1024 ** 3 }],
        ['replication-caught-up', { standbys: ['replica1'], interval: 1000 }],
        ['slot-drop', { slots: ['s1'], terminate: true, acceptPositionLoss: true }],
        ['slot-create', { slots: ['s1'], type: 'logical', plugin: 'pgoutput', twoPhase: true, failover: false }],
        ['subscriptions-disable', { subscriptions: ['s'] }],
        ['subscriptions-enable', {}],
        ['subscription-detach', { subscriptions: ['s'], dropRemoteSlot: true, publisher: 'pub' }],
      ],
    );
    assert.deepEqual(parsed.deprecations, []);
  });
});

describe('kind: replication-slots, the form runbooks were written in before', () => {
  const ACTIONS = {
    inventory: 'slots-inventory',
    'assert-caught-up': 'replication-caught-up',
    drop: 'slot-drop',
    create: 'slot-create',
    'disable-subscriptions': 'subscriptions-disable',
    'enable-subscriptions': 'subscriptions-enable',
    'detach-subscription': 'subscription-detach',
  } as const;
  const FIELDS: Record<keyof typeof ACTIONS, string> = {
    inventory: '',
    'assert-caught-up': ', slots: [a]',
    drop: ', slots: [a], type: physical',
    create: ', slots: [a], type: logical',
    'disable-subscriptions': '',
    'enable-subscriptions': '',
    'detach-subscription': ', subscriptions: [s]',
  };

  it('every action runs as its new kind, with the same fields, and a deprecation note at its kind', () => {
    const entries = Object.entries(ACTIONS) as [keyof typeof ACTIONS, string][];
    const yaml = runbook(...entries.map(([action], n) => `  - { id: s${n}, kind: replication-slots, connection: pub, action: ${action}${FIELDS[action]} }`));
    const parsed = parse(yaml);
    assert.deepEqual(
      parsed.steps.map((s) => s.kind),
      entries.map(([, kind]) => kind),
    );
    assert.deepEqual(parsed.steps[2]?.config, { slots: ['a'], type: 'physical' }, 'the fields as written, without action');
    assert.deepEqual(
      parsed.deprecations.map((d) => `${d.position.file}:${d.position.line}:${d.position.column} ${d.path}: ${d.message}`),
      entries.map(([action, kind], n) => {
        const where = at(yaml, `id: s${n},`);
        return `${FILE}:${where.line}:${at(yaml, 'replication-slots', where.line).column} steps[${n}].kind: step "s${n}": kind: replication-slots with action: ${action} is deprecated and runs as kind: ${kind}; write "kind: ${kind}" without "action"`;
      }),
    );
  });

  it('the new form has no deprecation note, and plans the same step', () => {
    const old = parse(
      runbook('  - id: drop', '    kind: replication-slots', '    connection: pub', '    action: drop', '    slots: [a]', '    acceptPositionLoss: true'),
    );
    const now = parse(runbook('  - id: drop', '    kind: slot-drop', '    connection: pub', '    slots: [a]', '    acceptPositionLoss: true'));
    assert.equal(old.deprecations.length, 1);
    assert.deepEqual(now.deprecations, []);
    assert.deepEqual({ ...old.steps[0], line: 0 }, { ...now.steps[0], line: 0 });
  });

  it("problems in an old-form step are reported at the user's lines, naming the kind it runs as", () => {
    const unknown = runbook('  - id: look', '    kind: replication-slots', '    connection: pub', '    action: inventory', '    terminate: true');
    const terminate = at(unknown, 'terminate');
    assert.deepEqual(shown(issues(unknown)), [
      `${terminate.line}:${terminate.column} steps[0].terminate: step "look": unknown key "terminate" (kind: replication-slots with action: inventory runs as kind: slots-inventory, which takes: slots, type, retainedWarning)`,
    ]);
    const rule = runbook('  - id: drop', '    kind: replication-slots', '    connection: pub', '    action: drop', '    slots: [s_x]');
    const drop = at(rule, 'id: drop');
    assert.deepEqual(shown(issues(rule)), [
      `${drop.line}:${drop.column} steps[0].acceptPositionLoss: step "drop": dropping a logical slot loses its position: a recreated slot starts at the current WAL position and changes in between are never decoded. Set acceptPositionLoss: true to accept that (or type: physical)`,
    ]);
  });

  it('a missing or unknown action is one problem, listing the actions and their kinds', () => {
    const yaml = runbook(
      '  - id: a',
      '    kind: replication-slots',
      '    connection: pub',
      '  - id: b',
      '    kind: replication-slots',
      '    connection: pub',
      '    action: dorp',
    );
    const kind = at(yaml, 'replication-slots');
    const action = at(yaml, 'dorp');
    const choices =
      'inventory (now kind: slots-inventory), assert-caught-up (now kind: replication-caught-up), drop (now kind: slot-drop), create (now kind: slot-create), disable-subscriptions (now kind: subscriptions-disable), enable-subscriptions (now kind: subscriptions-enable), detach-subscription (now kind: subscription-detach)';
    assert.deepEqual(shown(issues(yaml)), [
      `${kind.line}:${kind.column} steps[0].kind: step "a": kind: replication-slots is replaced by one kind per action; it needs "action" (one of: ${choices}). Write the new kind instead`,
      `${action.line}:${action.column} steps[1].action: step "b": kind: replication-slots is replaced by one kind per action; "dorp" is not one (one of: ${choices}). Write the new kind instead`,
    ]);
  });
});

describe('formatBytes', () => {
  it('uses 1024-based units with one decimal', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 5 * 1024 ** 3, null].map(formatBytes), ['0 B', '1023 B', '1.0 kB', '1.5 kB', '5.0 GB', null]);
  });
});
