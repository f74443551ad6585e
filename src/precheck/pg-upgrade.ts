/**
 * The real `pg_upgrade --check`, when both versions' binaries and both data
 * directories are on this host. It reads only, so it runs in a dry run too.
 * Its output goes to the journal; each check it reports as failed becomes a
 * finding.
 */
import os from 'node:os';
import path from 'node:path';
import { CommandError } from '../errors.js';
import type { CommandRunner } from '../step/commands.js';
import type { Finding } from './checks.js';

export interface PgUpgradeConfig {
  readonly oldBindir: string;
  readonly newBindir: string;
  readonly oldDatadir: string;
  readonly newDatadir: string;
  readonly user: string;
  readonly jobs?: number | undefined;
  /** The running old cluster's port and socket directory, for a live check. */
  readonly oldPort?: number | undefined;
  readonly newPort?: number | undefined;
  readonly socketDir?: string | undefined;
  /** Prefix to run it as the data directories' owner, e.g. [sudo, -u, postgres]. */
  readonly runAs?: readonly string[] | undefined;
}

export function pgUpgradeArgv(c: PgUpgradeConfig): string[] {
  return [
    ...(c.runAs ?? []),
    path.join(c.newBindir, 'pg_upgrade'),
    '--check',
    '-b',
    c.oldBindir,
    '-B',
    c.newBindir,
    '-d',
    c.oldDatadir,
    '-D',
    c.newDatadir,
    '-U',
    c.user,
    '-j',
    String(c.jobs ?? 1),
    ...(c.oldPort !== undefined ? ['-p', String(c.oldPort)] : []),
    ...(c.newPort !== undefined ? ['-P', String(c.newPort)] : []),
    ...(c.socketDir !== undefined ? ['-s', c.socketDir] : []),
  ];
}

/**
 * A failed check is a `Checking ...` line that does not end in `ok` (newer
 * releases print `fatal`, 15 prints nothing), followed by its explanation up
 * to a blank line or `Failure, exiting`.
 */
export function parsePgUpgradeOutput(output: string): Finding[] {
  const lines = output.split('\n').map((l) => l.trimEnd());
  const findings: Finding[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('Checking ') || /\sok$/.test(line)) return;
    const check = line.replace(/\s+fatal$/, '').trim();
    const rest = lines.slice(i + 1);
    const end = rest.findIndex((l) => l.trim() === '' || l.startsWith('Failure, exiting') || l.startsWith('Checking '));
    const detail = (end < 0 ? rest : rest.slice(0, end)).join(' ').replace(/\s+/g, ' ').trim();
    findings.push({
      id: 'pg-upgrade-check',
      severity: 'error',
      objects: [check],
      message: `pg_upgrade --check: ${check} failed${detail ? `: ${detail.slice(0, 300)}` : ''}`,
      remediation: 'See the pg_upgrade output in the journal, and the online finding for the same defect.',
    });
  });
  return findings;
}

export async function runPgUpgradeCheck(runner: CommandRunner, config: PgUpgradeConfig, signal: AbortSignal): Promise<{ output: string; findings: Finding[] }> {
  const argv = pgUpgradeArgv(config);
  try {
    const result = await runner(argv, { cwd: os.tmpdir(), signal });
    return { output: result.stdout, findings: parsePgUpgradeOutput(result.stdout) };
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    const findings = parsePgUpgradeOutput(error.stdout);
    return {
      output: `${error.stdout}\n${error.stderr}`.trim(),
      findings:
        findings.length > 0
          ? findings
          : [
              {
                id: 'pg-upgrade-check',
                severity: 'error',
                objects: [error.command],
                message: `pg_upgrade --check failed: ${error.message}`,
                remediation: error.stderr.trim().slice(0, 400) || 'See the pg_upgrade output in the journal.',
              },
            ],
    };
  }
}
