/**
 * The templates validate as `cutover init` writes them, the README's runbook
 * reference is what the schema generates, and the demo performs the whole
 * logical-replication cutover (runbooks/shop-cutover.yaml, the template
 * filled in for it, on two real servers) and leaves no PostgreSQL running.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listTemplates, registry } from '../../src/index.js';
import { REFERENCE_END, REFERENCE_START, runbookReference } from '../../src/runbook/reference.js';
import { cutover, tempDir } from '../helpers/cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('templates', () => {
  it('cutover init --list names every template', async () => {
    const listed = await cutover(['init', '--list']);
    assert.equal(listed.code, 0);
    assert.deepEqual(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
      ['logical-replication-cutover', 'oracle-to-postgres', 'patroni-switchover', 'pg-major-upgrade'],
    );
  });

  for (const template of listTemplates()) {
    it(`cutover init --template ${template.name} writes a runbook that validates, and its JSON Schema`, async () => {
      const dir = tempDir();
      const out = path.join(dir, 'cutover.yaml');
      const init = await cutover(['init', '--template', template.name, '--out', out]);
      assert.equal(init.code, 0, init.stderr);
      assert.match(readFileSync(out, 'utf8'), /^# yaml-language-server: \$schema=\.\/runbook\.schema\.json\n/);
      assert.ok(existsSync(path.join(dir, 'runbook.schema.json')));
      // Files a runbook names must exist to validate.
      const existing = path.join(dir, 'existing.ini');
      writeFileSync(existing, '[databases]\n');
      const sample = (v: string) =>
        v.endsWith('_URL') ? 'postgres://cutover@db.example/app' : v.endsWith('_PORT') ? '5432' : v.endsWith('_FILE') ? existing : 'value';
      const env = Object.fromEntries(template.variables.map((v) => [v, sample(v)]));
      const valid = await cutover(['validate', out], env);
      assert.equal(valid.code, 0, valid.stderr);
      const again = await cutover(['init', '--template', template.name, '--out', out]);
      assert.equal(again.code, 2, 'an existing file is never overwritten');
    });
  }
});

describe('README', () => {
  it('the runbook reference is the one the schema generates (npm run reference rewrites it)', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf(REFERENCE_START) + REFERENCE_START.length, readme.indexOf(REFERENCE_END));
    assert.equal(section.trim(), runbookReference(registry).trim());
  });
});

describe('npm run demo', () => {
  it('performs the whole cutover through PgBouncer, prints the report path, and leaves no server running', async () => {
    const child = spawn(process.execPath, [path.join(root, 'dist', 'scripts', 'demo.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    // The end of the output first: it says what failed, and CI keeps only the beginning of a long message.
    const lines = stdout.trimEnd().split('\n');
    assert.equal(code, 0, `the last 40 of ${lines.length} lines:\n${lines.slice(-40).join('\n')}`);
    assert.match(stdout, /^run \S+: succeeded$/m);
    assert.match(
      stdout,
      /[1-9]\d* writes were refused after the freeze, then [1-9]\d* orders went to the new primary through PgBouncer and reached the old primary over the fallback subscription/,
    );
    const report = /^report: (.+)$/m.exec(stdout)?.[1];
    assert.ok(report !== undefined && existsSync(report), `no report at ${report}`);
    assert.match(readFileSync(report, 'utf8'), /logical replication cutover/);
    const dirs = [...stdout.matchAll(/primary: port \d+, (\S+)/g)].map((m) => m[1] ?? '');
    assert.equal(dirs.length, 2, 'the demo names both servers');
    for (const dir of dirs) {
      const running = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(dir));
      assert.deepEqual(running, [], `a server of ${dir} is still running`);
    }
    const pooler = /^PgBouncer: port \d+, transaction pooling, \[databases\] in (\S+)$/m.exec(stdout)?.[1] ?? '';
    assert.notEqual(pooler, '', 'the demo names its PgBouncer');
    assert.deepEqual(
      execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(path.dirname(pooler))),
      [],
      'PgBouncer is stopped',
    );
  });
});
