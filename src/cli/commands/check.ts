/**
 * `cutover check <runbook>`: preflight. Opens every connection (read-only),
 * then asks each step's kind what it needs. Exit 2 when a connection fails
 * or a check finds an error: the environment is not ready.
 */
import type { CommandModule } from 'yargs';
import { loadRunbook, preflight, registry, type PreflightResult } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { deprecationLines } from '../format-error.js';
import { withJson } from '../options.js';
import { table } from '../table.js';

export function formatPreflight(result: PreflightResult): string {
  const lines: string[] = ['Connections:'];
  lines.push(
    table(
      ['connection', 'target', 'status', 'server', 'TLS', 'role', 'password from'],
      result.connections.map((c) => [
        c.name,
        c.target,
        c.status === 'ok' ? (c.inRecovery ? 'ok (standby)' : 'ok') : c.status,
        c.serverVersion ?? '',
        c.tls ?? '',
        c.role !== undefined ? `${c.role}${c.superuser ? ' (superuser)' : ''}` : '',
        c.passwordFrom,
      ]),
    ),
  );
  for (const c of result.connections) {
    if (c.status === 'failed') lines.push(`  ${c.name}: ${c.error ?? 'failed'}`, `    fix: ${c.fix ?? ''}`);
    if (c.status === 'not-checked' && c.fix !== undefined) lines.push(`  ${c.name}: not checked: ${c.fix}`);
    for (const warning of c.warnings) lines.push(`  ${c.name}: warning: ${warning}`);
  }
  const rows = result.steps.flatMap((s) =>
    s.blockedBy.length > 0
      ? [
          [
            s.stepId,
            s.kind,
            'skipped',
            'connection',
            `not checked: connection ${s.blockedBy.map((n) => `"${n}"`).join(', ')} ${blockedText(result, s.blockedBy)}`,
            '',
          ],
        ]
      : s.findings.map((f) => [s.stepId, s.kind, f.severity, f.check, f.message]),
  );
  if (rows.length > 0) lines.push('', 'Steps:', table(['step', 'kind', 'result', 'check', 'found'], rows));
  // Under the table, as for connections: a long finding then wraps in the last column only.
  for (const s of result.steps)
    for (const f of s.findings) if (f.severity !== 'ok' && f.fix !== undefined) lines.push(`  ${s.stepId}: ${f.check}: fix: ${f.fix}`);
  const errors =
    result.connections.filter((c) => c.status === 'failed').length + result.steps.flatMap((s) => s.findings).filter((f) => f.severity === 'error').length;
  const warnings = result.steps.flatMap((s) => s.findings).filter((f) => f.severity === 'warning').length;
  lines.push('', result.ok ? `check passed${warnings > 0 ? ` with ${warnings} warning(s)` : ''}` : `check failed: ${errors} problem(s) to fix`);
  return lines.join('\n');
}

export const checkCommand: CommandModule<object, { runbook: string; json: boolean }> = {
  command: 'check <runbook>',
  describe: "Preflight: open every connection (auth, TLS, version, recovery) and check each step's privileges, settings and programs",
  builder: (y) => withJson(y.positional('runbook', { type: 'string', demandOption: true })),
  handler: async (args) => {
    const runbook = loadRunbook(args.runbook, { registry });
    io.protect(runbook.secrets);
    for (const line of deprecationLines(runbook)) io.err(line);
    const result = await preflight(runbook, {
      registry,
      protect: (secrets) => {
        io.protect(secrets);
      },
    });
    io.out(args.json ? JSON.stringify(result, null, 2) : formatPreflight(result));
    process.exitCode = result.ok ? ExitCode.ok : ExitCode.invalidInput;
  },
};

/** Why a step's connections were not opened: they failed, or a step of the runbook starts their server. */
function blockedText(result: { readonly connections: readonly { readonly name: string; readonly status: string }[] }, names: readonly string[]): string {
  const failed = names.some((n) => result.connections.find((c) => c.name === n)?.status === 'failed');
  return failed ? 'failed (see above)' : 'is started by a step of this runbook (see above)';
}
