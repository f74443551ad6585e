/**
 * The CLI's housekeeping, run as a user would (no server needed: a runbook
 * of confirm gates): `runs` hides plans and refused runs unless --all and
 * filters by label and environment; `audit verify` names the first break
 * and counts the rest unless --verbose; `validate --json`; every option has
 * a description and the main commands show examples; --log-file appends
 * timestamped, redacted plain lines; --timestamps; --no-color and NO_COLOR.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { journalFile } from '../../src/index.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

const SECRET = 'gate-token-5f1e9a7c';

describe('housekeeping', () => {
  const dir = tempDir();
  const state = path.join(dir, 'state');
  const env = { GATE_TOKEN: SECRET };
  let file = '';
  const ids: Record<string, string> = {};
  before(async () => {
    file = writeRunbook(
      dir,
      'gates.yaml',
      'version: 1\nname: gates\nsteps:\n  - id: gate\n    kind: confirm\n    message: "token ${secret:GATE_TOKEN} ok?"\n  - id: gate2\n    kind: confirm\n    message: go on?\n',
    );
    for (let i = 0; i < 2; i++) assert.equal((await cutover(['plan', file, '--state-dir', state], env)).code, 0);
    for (const [label, environment] of [
      ['rehearsal-1', 'staging'],
      ['cutover', 'production'],
    ] as const) {
      const run = await cutover(['run', file, '--yes', '--json', '--label', label, '--environment', environment, '--state-dir', state], env);
      assert.equal(run.code, 0, run.stderr);
      ids[label] = (JSON.parse(run.stdout) as { runId: string }).runId;
    }
  });

  it('runs lists runs that did something; --all adds the plans; --label and --environment filter', async () => {
    const list = async (...args: string[]) =>
      (JSON.parse((await cutover(['runs', '--json', '--state-dir', state, ...args])).stdout) as { runId: string; mode: string }[]).map((r) => r.runId);
    assert.deepEqual(await list(), [ids['cutover'], ids['rehearsal-1']]);
    assert.equal((await list('--all')).length, 4);
    assert.deepEqual(await list('--label', 'rehearsal-1'), [ids['rehearsal-1']]);
    assert.deepEqual(await list('--environment', 'production'), [ids['cutover']]);
    assert.deepEqual(await list('--environment', 'nowhere'), []);
    const text = await cutover(['runs', '--state-dir', state]);
    assert.match(text.stdout, /\(2 more not shown: plans, refused runs; --all lists plans and refused runs\)/);
    assert.doesNotMatch(text.stdout, /\bplan\b {2}/, 'no plan row');
  });

  it('audit verify after a removed line: the first break and what kind, the rest counted; --verbose lists them', async () => {
    const copy = tempDir();
    const runDir = path.join(copy, 'runs', ids['rehearsal-1'] ?? '');
    const { cpSync } = await import('node:fs');
    cpSync(path.join(state, 'runs', ids['rehearsal-1'] ?? ''), runDir, { recursive: true });
    const lines = readFileSync(journalFile(runDir), 'utf8').split('\n');
    lines.splice(3, 1);
    writeFileSync(journalFile(runDir), lines.join('\n'));
    const summary = await cutover(['audit', 'verify', ids['rehearsal-1'] ?? '', '--state-dir', copy]);
    assert.equal(summary.code, 3);
    const said = summary.stderr.trimEnd().split('\n');
    assert.equal(said.length, 3, summary.stderr);
    assert.match(
      said[1] ?? '',
      /^ {2}first break at line 4: 1 line\(s\) before it were removed \(previous-hash link is broken; sequence number 5, expected 4\)$/,
    );
    assert.match(said[2] ?? '', /^ {2}\d+ later line\(s\) of \d+ do not hold either, most as a consequence of it \(--verbose lists them\)$/);
    const verbose = await cutover(['audit', 'verify', ids['rehearsal-1'] ?? '', '--verbose', '--state-dir', copy]);
    assert.match(verbose.stderr, /line 5: sequence number 6, expected 5/);
  });

  it('validate --json: the steps of a valid runbook; every problem with line and column, exit 2', async () => {
    const ok = await cutover(['validate', file, '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const valid = JSON.parse(ok.stdout) as { valid: boolean; steps: { id: string; kind: string; line: number }[] };
    assert.deepEqual(valid.steps, [
      { id: 'gate', kind: 'confirm', line: 4 },
      { id: 'gate2', kind: 'confirm', line: 7 },
    ]);
    const bad = writeRunbook(dir, 'bad.yaml', 'version: 1\nname: bad\nsteps:\n  - id: gate\n    kind: confirm\n    mesage: typo\n');
    const invalid = await cutover(['validate', bad, '--json']);
    assert.equal(invalid.code, 2);
    const parsed = JSON.parse(invalid.stdout) as { valid: boolean; issues: { line: number; column: number; message: string }[] };
    assert.equal(parsed.valid, false);
    assert.ok(
      parsed.issues.some((i) => i.line === 6 && i.column === 5),
      invalid.stdout,
    );
  });

  it('every option of every command is described, and the main commands show examples', async () => {
    const commands = [
      ['init'],
      ['validate'],
      ['check'],
      ['plan'],
      ['run'],
      ['resume'],
      ['rollback'],
      ['abandon'],
      ['status'],
      ['runs'],
      ['report'],
      ['audit', 'verify'],
      ['schema'],
    ];
    for (const command of commands) {
      const help = await cutover([...command, '--help']);
      assert.equal(help.code, 0, help.stderr);
      for (const line of help.stdout.split('\n')) {
        const option = /^\s+(?:-\w, )?(--[\w-]+)\s+(.*)$/.exec(line);
        if (option) assert.doesNotMatch(option[2] ?? '', /^\[/, `cutover ${command.join(' ')}: ${option[1]} has no description`);
      }
    }
    for (const command of [[], ['validate'], ['run'], ['rollback'], ['report'], ['runs']]) {
      assert.match((await cutover([...command, '--help'])).stdout, /Examples:/, `cutover ${command.join(' ')} --help shows examples`);
    }
  });

  it('--log-file appends plain timestamped lines with every event, secrets redacted; --timestamps prefixes the live list', async () => {
    const log = path.join(dir, 'cutover.log');
    for (let i = 0; i < 2; i++) {
      const run = await cutover(['run', file, '--yes', '--timestamps', '--log-file', log, '--state-dir', state], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^✔ \[\d\d:\d\d:\d\d\] gate \[\S+: plan \S+, apply \S+\]$/m);
    }
    const plan = await cutover(['plan', file, '--log-file', log, '--state-dir', state], env);
    assert.match(plan.stdout, /\? token \[redacted\] ok\?/);
    const text = readFileSync(log, 'utf8');
    const lines = text.trimEnd().split('\n');
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z .*\S/, line);
    assert.equal(lines.filter((l) => / run\.started /.test(l)).length, 3, 'appended, not overwritten');
    assert.ok(lines.some((l) => / step\.planned gate /.test(l)));
    assert.ok(lines.some((l) => / \? token \[redacted\] ok\?/.test(l)));
    assert.ok(!text.includes(SECRET));
    // eslint-disable-next-line no-control-regex -- looking for ANSI escapes
    assert.doesNotMatch(text, /\u001b\[/);
  });

  it('colour: on when forced, off with --no-color or NO_COLOR', async () => {
    // eslint-disable-next-line no-control-regex -- looking for ANSI escapes
    const ansi = /\u001b\[/;
    const forced = await cutover(['run', file, '--yes', '--state-dir', state], { ...env, FORCE_COLOR: '1' });
    assert.match(forced.stdout, ansi);
    const flag = await cutover(['run', file, '--yes', '--no-color', '--state-dir', state], { ...env, FORCE_COLOR: '1' });
    assert.doesNotMatch(flag.stdout + flag.stderr, ansi);
    const variable = await cutover(['run', file, '--yes', '--state-dir', state], { ...env, FORCE_COLOR: '1', NO_COLOR: '1' });
    assert.doesNotMatch(variable.stdout + variable.stderr, ansi);
  });
});
