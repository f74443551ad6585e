/**
 * `cutover fleet plan` at the size the fleet is built for: 200 databases over
 * two real PostgreSQL servers, a runbook of a transactional step, a
 * sequence-reset and a confirm, one target with a planted blocker. The CLI
 * prints one matrix row per target and the summary, names the blocker, exits
 * 1, and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';
import { createTargets, inventoryText } from '../helpers/fleet.js';
import { runbookText } from '../helpers/runbook.js';

const TARGETS = Array.from({ length: 200 }, (_, i) => `p${String(i + 1).padStart(3, '0')}`);
const onA = (t: string) => Number(t.slice(1)) <= 100;
const BLOCKED = 'p150';

describe('fleet plan: 200 databases on two servers', { timeout: 180_000 }, () => {
  let a: TestServer;
  let b: TestServer;
  let dir: string;
  const server = (t: string) => (onA(t) ? a : b);

  before(async () => {
    [a, b] = await Promise.all([startPostgres(18), startPostgres(18)]);
    dir = tempDir('cutover-fleet-scale-');
    await createTargets(TARGETS, server);
    await server(BLOCKED).query('ALTER SEQUENCE orders_id_seq MAXVALUE 5', [], BLOCKED);
    await server(BLOCKED).release(BLOCKED);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test('one matrix row per target, the summary, the blocker named; exit 1 and nothing written', async (t) => {
    const inventory = writeRunbook(
      dir,
      'tenants.yaml',
      inventoryText({
        name: 'scale',
        targets: TARGETS.map((name) => ({ name, variables: { DB_URL: server(name).urlFor(name) } })),
        waves: [{ name: 'canary', targets: ['p001'] }, { name: 'rest' }],
      }),
    );
    const runbook = writeRunbook(
      dir,
      'cutover.yaml',
      runbookText({
        name: 'tenant cutover',
        connections: { db: '${DB_URL}' },
        steps: [
          {
            id: 'migrate',
            kind: 'sql',
            connection: 'db',
            sql: ["INSERT INTO effects(step) VALUES ('migrate')", 'ALTER TABLE orders ADD COLUMN migrated boolean'],
            rollback: ['ALTER TABLE orders DROP COLUMN migrated', "DELETE FROM effects WHERE step = 'migrate'"],
          },
          { id: 'sequences', kind: 'sequence-reset', connection: 'db', from: 'data' },
          { id: 'switch', kind: 'confirm', message: "Point this tenant's application at the new database?" },
        ],
      }).text,
    );
    const started = Date.now();
    const cli = await cutover(['fleet', 'plan', inventory, runbook, '--state-dir', `${dir}/state`, '--jobs', '4']);
    t.diagnostic(`fleet plan of 200 targets: ${Date.now() - started} ms, --jobs 4`);
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stdout, /^ {2}target +wave +plan +migrate +sequences +switch$/m);
    const [matrix = ''] = cli.stdout.split('Blockers and failures:');
    const rows = matrix.split('\n').filter((line) => /^ {2}p\d{3} /.test(line));
    assert.deepEqual(
      rows.map((line) => line.trim().split(/ +/)),
      TARGETS.map((name) => [
        name,
        name === 'p001' ? 'canary' : 'rest',
        ...(name === BLOCKED ? ['blocked', 'ok', 'BLOCKED', 'ok'] : ['ready', 'ok', 'ok', 'ok']),
      ]),
    );
    assert.match(cli.stdout, new RegExp(`Blockers and failures:\\n {2}${BLOCKED} sequences: .*orders_id_seq`));
    assert.match(cli.stdout, /Summary: 200 targets in 2 wave\(s\) \(canary 1, rest 199\): 199 ready, 1 blocked, 0 failed to plan/);
    // A plan writes nothing: no effect row, no column.
    for (const name of ['p001', BLOCKED, 'p200']) {
      const state = await server(name).query<{ effects: string; columns: string }>(
        "SELECT (SELECT count(*) FROM effects)::text AS effects, (SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'migrated')::text AS columns",
        [],
        name,
      );
      await server(name).release(name);
      assert.deepEqual(state[0], { effects: '0', columns: '0' }, name);
    }
  });
});
