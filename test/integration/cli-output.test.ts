/**
 * What the CLI promises about its output as a whole: a closed pipe is not an
 * error for any command that prints, and the README's exit-code table lists
 * every code the CLI returns. No server needed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { CLI, cutover, tempDir, writeRunbook } from '../helpers/cli.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { exitCodeFor } from '../../src/cli/options.js';
import { ConnectionFailedError, LockedError, type RunResult } from '../../src/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Runs the CLI with its stdout closed by the reader before it writes (as `| head -0` would). */
function withClosedStdout(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      resolve({ code, stderr });
    });
  });
}

describe('a closed pipe is not an error', () => {
  const dir = tempDir();
  const stateDir = path.join(dir, 'state');
  let file = '';
  before(async () => {
    file = writeRunbook(dir, 'gate.yaml', 'version: 1\nname: gate\nsteps:\n  - id: gate\n    kind: confirm\n    message: go?\n');
    // A few runs, so `runs`, `status` and `report` have something to print.
    for (let i = 0; i < 3; i++) assert.equal((await cutover(['plan', file, '--state-dir', stateDir])).code, 0);
  });

  for (const args of [
    ['runs'],
    ['runs', '--json'],
    ['status', '--json'],
    ['report', '--format', 'html'],
    ['schema'],
    ['plan', '<runbook>', '--json'],
    ['validate', '<runbook>'],
    ['check', '<runbook>'],
    ['--help'],
  ]) {
    it(`cutover ${args.join(' ')} with its stdout closed exits 0 and prints no error`, async () => {
      const argv = args.map((a) => (a === '<runbook>' ? file : a));
      const needsState = ['runs', 'status', 'report', 'plan'].includes(args[0] ?? '');
      const result = await withClosedStdout(needsState ? [...argv, '--state-dir', stateDir] : argv);
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /EPIPE|Error|\bat /);
    });
  }

  it('`cutover runs | true` in a shell exits 0 quietly', () => {
    const result = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" runs --state-dir "${stateDir}" | true`], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
  });
});

describe('the README lists every exit code', () => {
  it('one row per code the CLI returns, and no other', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Exit codes'), readme.indexOf('\n## ', readme.indexOf('### Exit codes')));
    const documented = [...section.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    // 130 is the shell's code for a process ended by SIGINT, which the CLI does not catch itself.
    const returned = [...Object.values(ExitCode), 130];
    assert.deepEqual(
      [...documented].sort((a, b) => a - b),
      [...returned].sort((a, b) => a - b),
    );
  });
});

describe('a run outcome has one exit code', () => {
  const result = (status: RunResult['status'], error: unknown, dryRun = false): RunResult => ({
    runId: 'r',
    dryRun,
    runDir: '/tmp/r',
    journalFile: '/tmp/r/journal.jsonl',
    status,
    steps: [],
    journalHead: '0',
    ...(error !== undefined ? { error } : {}),
  });
  const cases: [string, RunResult, number][] = [
    ['succeeded', result('succeeded', undefined), ExitCode.ok],
    ['planned', result('planned', undefined, true), ExitCode.ok],
    ['rolled back', result('rolled-back', new Error('x')), ExitCode.rolledBack],
    [
      'a connection that could not be opened before any step (a wrong password)',
      result('failed', new ConnectionFailedError('password authentication failed', { connection: 'db' })),
      ExitCode.invalidInput,
    ],
    ['a failed real run under onFailure: stop', result('failed', new Error('step failed')), ExitCode.stopped],
    ['a failed dry run', result('failed', new Error('step failed'), true), ExitCode.rolledBack],
    ['locked', result('stopped', new LockedError('db', 'other run')), ExitCode.locked],
    ['stopped at a confirmation', result('stopped', new Error('no terminal')), ExitCode.stopped],
    ['needs attention', result('needs-attention', new Error('x')), ExitCode.needsAttention],
  ];
  for (const [label, run, code] of cases)
    it(`${label} -> ${code}`, () => {
      assert.equal(exitCodeFor(run), code);
    });
});
