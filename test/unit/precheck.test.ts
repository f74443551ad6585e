/** upgrade-precheck's pure parts: reading pg_upgrade's output, and the disk space rule. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diskSpaceFinding } from '../../src/precheck/checks.js';
import { parsePgUpgradeOutput, pgUpgradeArgv } from '../../src/precheck/pg-upgrade.js';

describe('pg_upgrade --check output', () => {
  it('reads a failed check as 15 prints it (no "fatal") with its explanation', () => {
    const output = `Performing Consistency Checks on Old Live Server
------------------------------------------------
Checking cluster versions                                   ok
Checking for prepared transactions
The source cluster contains prepared transactions
Failure, exiting`;
    assert.deepEqual(
      parsePgUpgradeOutput(output).map((f) => f.message),
      ['pg_upgrade --check: Checking for prepared transactions failed: The source cluster contains prepared transactions'],
    );
  });

  it('reads a failed check as later releases print it ("fatal")', () => {
    const output = `Checking for reg* data types in user tables                 fatal

Your installation contains one of the reg* data types in user tables.
Failure, exiting`;
    assert.deepEqual(
      parsePgUpgradeOutput(output).map((f) => f.objects.join()),
      ['Checking for reg* data types in user tables'],
    );
  });

  it('finds nothing in a passing run', () => {
    assert.deepEqual(parsePgUpgradeOutput('Checking cluster versions   ok\n*Clusters are compatible*'), []);
  });

  it('builds argv, with the runAs prefix and live-check options', () => {
    assert.deepEqual(
      pgUpgradeArgv({
        oldBindir: '/o/bin',
        newBindir: '/n/bin',
        oldDatadir: '/o/data',
        newDatadir: '/n/data',
        user: 'postgres',
        oldPort: 5432,
        runAs: ['sudo', '-u', 'postgres'],
      }),
      [
        'sudo',
        '-u',
        'postgres',
        '/n/bin/pg_upgrade',
        '--check',
        '-b',
        '/o/bin',
        '-B',
        '/n/bin',
        '-d',
        '/o/data',
        '-D',
        '/n/data',
        '-U',
        'postgres',
        '-j',
        '1',
        '-p',
        '5432',
      ],
    );
  });
});

describe('disk space for copy mode', () => {
  it('warns only when the free space is smaller than the databases', () => {
    assert.deepEqual(diskSpaceFinding(10 * 2 ** 30, 20 * 2 ** 30, '/data/18'), []);
    assert.deepEqual(
      diskSpaceFinding(10 * 2 ** 30, 4 * 2 ** 30, '/data/18').map((f) => `${f.id} ${f.severity}: ${f.objects.join()}`),
      ["disk-space-for-copy warning: /data/18: 4.0 GiB free, the old cluster's databases take 10.0 GiB"],
    );
  });
});
