/**
 * The fleet inventory: what it accepts, and every refusal with its
 * file:line:column and words a person can act on. No server needed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  FileFleetStore,
  FleetBusyError,
  allowedFailures,
  inventoryJsonSchema,
  loadInventory,
  loadTargets,
  registry,
  RunbookValidationError,
} from '../../src/index.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

const dir = tempDir('cutover-inventory-');

function problems(text: string, env: Record<string, string> = {}): string[] {
  const file = writeRunbook(dir, `inv-${Math.random().toString(36).slice(2)}.yaml`, text);
  try {
    loadInventory(file, { env });
  } catch (error) {
    assert.ok(error instanceof RunbookValidationError, String(error));
    return error.issues.map((i) => `${i.position.line}:${i.position.column} ${i.path}: ${i.message}`);
  }
  assert.fail('expected the inventory to be refused');
}

const targets = (n: number, extra = '') =>
  Array.from(
    { length: n },
    (_, i) => `  - name: db${i + 1}\n    labels: { tier: ${i < 2 ? 'gold' : 'silver'} }\n    variables: { DB_URL: "postgres://app@h/db${i + 1}" }${extra}`,
  ).join('\n');

describe('fleet inventory', () => {
  test('a YAML 1.1 tag is refused by its tag, as in a runbook', () => {
    assert.deepEqual(problems(`version: 1\nname: t\ntargets: !!binary AAAA\n`), [
      '3:10 (yaml): the YAML tag !!binary is not supported here: write the value as plain text',
    ]);
  });

  test('a full inventory: waves in order, the first wave that selects a target takes it, a wave without a selector takes the rest', () => {
    writeFileSync(path.join(dir, 'pw'), 'from-a-file-1234\n');
    const file = writeRunbook(
      dir,
      'ok.yaml',
      `version: 1
name: tenants
approval: between-waves
maxFailures: 10%
secrets:
  DB_PASSWORD: { env: SHARED_PW }
concurrencyGroups:
  - { label: tier, max: 1 }
targets:
${targets(5)}
  - name: special
    variables: { DB_URL: "postgres://app@h/special", PORT: 5433, SSL: true }
    secrets:
      DB_PASSWORD: { file: pw }
waves:
  - name: canary
    targets: [db1]
    maxFailures: 0
  - name: gold
    labels: { tier: gold }
  - name: rest
    parallel: 2
`,
    );
    const inventory = loadInventory(file, { env: { SHARED_PW: 'from-the-env-99' } });
    assert.deepEqual(
      inventory.waves.map((w) => [w.name, w.targets, w.maxFailures, w.parallel]),
      [
        ['canary', ['db1'], 0, undefined],
        ['gold', ['db2'], '10%', undefined],
        ['rest', ['db3', 'db4', 'db5', 'special'], '10%', 2],
      ],
    );
    const special = inventory.targets.find((t) => t.name === 'special');
    assert.deepEqual(special?.secrets, { DB_PASSWORD: 'from-a-file-1234' });
    assert.deepEqual(special?.variables, { DB_URL: 'postgres://app@h/special', PORT: '5433', SSL: 'true' });
    assert.equal(inventory.targets.find((t) => t.name === 'db3')?.secrets['DB_PASSWORD'], 'from-the-env-99');
    assert.equal(inventory.approval, 'between-waves');
    assert.deepEqual(inventory.concurrencyGroups, [{ label: 'tier', max: 1 }]);
    // Status and approve never need the secrets.
    const blind = loadInventory(file, { env: {}, resolveSecrets: false });
    assert.doesNotMatch(JSON.stringify(blind), /from-the-env-99|from-a-file-1234/);
  });

  test('maxFailures: a number, or a percentage of the wave rounded down', () => {
    assert.equal(allowedFailures({ maxFailures: 3 }, 100), 3);
    assert.equal(allowedFailures({ maxFailures: '10%' }, 25), 2);
    assert.equal(allowedFailures({ maxFailures: '10%' }, 9), 0);
    assert.equal(allowedFailures({ maxFailures: '100%' }, 7), 7);
  });

  test('inline passwords are refused: in a URL, or in a variable named like one', () => {
    const found = problems(`version: 1
name: x
targets:
  - name: a
    variables:
      DB_URL: postgres://app:hunter2@db/a
      DB_PASSWORD: hunter22
`);
    assert.deepEqual(found, [
      '6:15 targets[0].variables.DB_URL: DB_URL holds a URL with a password: leave the password out of the URL and put it under secrets ({ env: NAME } or { file: path })',
      '7:7 targets[0].variables.DB_PASSWORD: "DB_PASSWORD" looks like a credential: declare it under secrets as { env: NAME } or { file: path }, never inline',
    ]);
  });

  test('secrets by reference only: an unset variable, a missing file, an inline value, a short secret', () => {
    const found = problems(
      `version: 1
name: x
targets:
  - name: a
    secrets:
      ONE: { env: NOT_SET_ANYWHERE }
      TWO: { file: does-not-exist.pw }
      FOUR: { env: SHORT }
`,
      { SHORT: 'abc' },
    );
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0] ?? '', /^6:19 targets\[0\]\.secrets\.ONE\.env: secret ONE: the environment variable NOT_SET_ANYWHERE is not set$/);
    assert.match(found[1] ?? '', /^7:20 targets\[0\]\.secrets\.TWO\.file: secret TWO: cannot read .*does-not-exist\.pw \(ENOENT\)$/);
    assert.match(found[2] ?? '', /^8:13 targets\[0\]\.secrets\.FOUR: secret FOUR is shorter than 4 characters/);
    assert.deepEqual(problems('version: 1\nname: x\ntargets:\n  - name: a\n    secrets:\n      THREE: hunter2-inline\n'), [
      '6:14 targets[0].secrets.THREE: a secret is given by reference, never inline: { env: NAME } or { file: path }',
    ]);
  });

  test('waves: unknown keys, duplicates, a wave named like a target, a name that selects nothing, targets left out', () => {
    const found = problems(`version: 1
name: x
targets:
${targets(3)}
  - name: db1
waves:
  - name: db2
    targets: [db1, nope]
  - name: gold
    labels: { tier: platinum }
    paralel: 2
`);
    assert.deepEqual(found, ['19:5 waves[1].paralel: unknown key "paralel" (did you mean "parallel"?)']);
    // At the top too, as a runbook's validation does.
    assert.deepEqual(problems(`version: 1\nname: x\nmaxFailurs: 1\ntargets:\n${targets(1)}\n`), [
      '3:1 maxFailurs: unknown key "maxFailurs" (did you mean "maxFailures"?)',
    ]);
    const semantic = problems(`version: 1
name: x
targets:
${targets(3)}
  - name: db1
waves:
  - name: db2
    targets: [db1, nope]
  - name: gold
    labels: { tier: platinum }
`);
    assert.deepEqual(semantic, [
      '13:11 targets[3].name: duplicate target name "db1" (first at line 4)',
      '15:3 waves: no wave selects targets db2, db3: add a last wave without a selector to take every target left',
      '15:11 waves[0].name: wave "db2" has the name of a target: cutover fleet approve <name> must mean one of them',
      '16:20 waves[0].targets[1]: no target named "nope"',
      '17:5 waves[1]: wave "gold" selects no target (earlier waves took the ones it matches, or none match)',
    ]);
  });

  test('a runbook reading a secret as plain ${NAME} is refused (it would be journaled in clear); a target lacking a variable is named', () => {
    const inventoryFile = writeRunbook(
      dir,
      'secret-ref.yaml',
      `version: 1
name: x
secrets:
  DB_PASSWORD: { env: PW }
targets:
  - name: a
    variables: { DB_URL: "postgres://app@127.0.0.1:1/a" }
  - name: b
`,
    );
    const runbookFile = writeRunbook(
      dir,
      'secret-ref-runbook.yaml',
      `version: 1
name: r
connections:
  db:
    kind: postgres
    url: \${DB_URL}
    password: \${DB_PASSWORD}
steps:
  - id: one
    kind: sql
    connection: db
    sql: SELECT 1
`,
    );
    const inventory = loadInventory(inventoryFile, { env: { PW: 'long-enough-secret' } });
    assert.throws(
      () => loadTargets(inventory, runbookFile, registry),
      (error: unknown) => {
        assert.ok(error instanceof RunbookValidationError);
        const lines = error.issues.map((i) => `${i.position.line}:${i.position.column} ${i.message}`);
        assert.ok(
          lines.includes(`7:15 \${DB_PASSWORD} is a secret in inventory ${inventoryFile}: write \${secret:DB_PASSWORD} so it is redacted everywhere`),
          lines.join('\n'),
        );
        assert.ok(
          lines.some((l) => /^6:10 target "b": unset variable DB_URL/.test(l)),
          lines.join('\n'),
        );
        return true;
      },
    );
  });

  test('the CLI: positioned errors and exit 2, never a stack; the JSON Schema is published', async () => {
    const file = writeRunbook(dir, 'bad.yaml', 'version: 1\nname: x\ntargets:\n  - name: a\n    labelz: {}\n');
    const result = await cutover(['fleet', 'status', file, path.join(dir, 'ok.yaml')]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim(), `${file}:5:5: targets[0].labelz: unknown key "labelz" (did you mean "labels"?)\n1 problem in ${file}`);
    const schema = inventoryJsonSchema() as { title: string; properties: Record<string, unknown> };
    assert.equal(schema.title, 'cutover fleet inventory');
    assert.deepEqual(Object.keys(schema.properties).sort(), [
      'approval',
      'concurrencyGroups',
      'description',
      'maxFailures',
      'name',
      'secrets',
      'targets',
      'variables',
      'version',
      'waves',
    ]);
    const cli = await cutover(['fleet', 'schema']);
    assert.equal(cli.code, 0);
    assert.equal((JSON.parse(cli.stdout) as { title: string }).title, 'cutover fleet inventory');
  });

  test('one fleet process at a time: a live holder is named, a dead one is taken over', () => {
    const store = new FileFleetStore(path.join(dir, 'state'), 'locked', 'cutover.yaml');
    mkdirSync(store.location, { recursive: true });
    const lockFile = path.join(store.location, 'lock');
    // The test runner's parent is alive and is not this process.
    writeFileSync(lockFile, `${process.ppid} ${os.hostname()}`);
    assert.equal(store.holder(), process.ppid);
    assert.throws(
      () => store.lock(),
      (error: unknown) =>
        error instanceof FleetBusyError &&
        error.message === `fleet ${store.location} is being run by process ${process.ppid}; wait for it, or stop it (Ctrl-C) first`,
    );
    writeFileSync(lockFile, `2147483646 ${os.hostname()}`);
    const release = store.lock();
    assert.equal(store.holder(), process.pid);
    release();
    assert.equal(existsSync(lockFile), false);
  });
});

describe('a variable a target lacks', () => {
  test("is an error when other targets set it: the shell's own value would be used for that target", () => {
    const dir = tempDir();
    const inventoryFile = writeRunbook(
      dir,
      'typo.yaml',
      `version: 1
name: x
targets:
  - name: a
    variables: { DB_URL: "postgres://app@127.0.0.1:1/a" }
  - name: b
    variables: { DBURL: "postgres://app@127.0.0.1:1/b" }
`,
    );
    const runbookFile = writeRunbook(
      dir,
      'typo-runbook.yaml',
      `version: 1
name: r
connections:
  db:
    kind: postgres
    url: \${DB_URL}
steps:
  - id: one
    kind: sql
    connection: db
    sql: SELECT 1
`,
    );
    // The operator's shell points somewhere else entirely.
    process.env['DB_URL'] = 'postgres://app@127.0.0.1:1/operators-own';
    try {
      assert.throws(
        () => loadTargets(loadInventory(inventoryFile), runbookFile, registry),
        (error: unknown) => {
          assert.ok(error instanceof RunbookValidationError);
          assert.deepEqual(
            error.issues.map((i) => `${i.position.line}:${i.position.column} ${i.message}`),
            [
              `6:10 target "b": DB_URL is set for 1 other target(s) in ${inventoryFile} but not for this one, so it would come from this shell's environment; set it for this target`,
            ],
          );
          return true;
        },
      );
    } finally {
      delete process.env['DB_URL'];
    }
  });
});

describe('--queue', () => {
  test('a value that is not a postgres:// URL is refused before anything connects, without printing it', async () => {
    const dir = tempDir();
    const inventory = writeRunbook(dir, 'inventory.yaml', 'version: 1\nname: q\ntargets:\n  - name: a\n');
    const runbook = writeRunbook(dir, 'runbook.yaml', 'version: 1\nname: r\nsteps: []\n');
    const result = await cutover(['fleet', 'status', '--queue', 'notaurl password=hunter2', inventory, runbook]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim(), '--queue (queue database): expected a postgres:// URL (postgres://user@host:port/database)');
  });
});
