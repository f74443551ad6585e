/**
 * The one place errors become text. User mistakes get a message that names
 * the file, line, column, step, SQLSTATE or command; never a stack trace.
 * Set CUTOVER_DEBUG=1 to see stacks of unexpected errors.
 */
import {
  CommandError,
  ConfirmationDeclinedError,
  ConfirmationRequiredError,
  DatabaseError,
  LockedError,
  PlanBlockedError,
  PlanDriftError,
  RefusedError,
  RunbookValidationError,
  StepFailedError,
  UnknownOutcomeError,
  UnfinishedRunError,
  JournalUntrustedError,
  InterruptedError,
  LockLostError,
  UsageError,
  fsReason,
} from '../runbooks.js';
import type { SerializedError } from '../index.js';
import { displayWidth } from './table.js';

/** `file:line:column: path: message`, as validation problems and deprecation notes are printed. */
export function formatIssue(issue: {
  readonly position: { readonly file: string; readonly line: number; readonly column: number };
  readonly path: string;
  readonly message: string;
}): string {
  return `${issue.position.file}:${issue.position.line}:${issue.position.column}: ${issue.path}: ${issue.message}`;
}

/** The deprecation notes of a runbook that loaded, one line each, for stderr. */
export function deprecationLines(runbook: { readonly deprecations: readonly Parameters<typeof formatIssue>[0][] }): string[] {
  return runbook.deprecations.map((d) => `deprecated: ${formatIssue(d)}`);
}

/**
 * A file or directory a person named (`--out`, `--log-file`, `--plan`,
 * `--state-dir`) that cannot be used, as one sentence; undefined for
 * anything else.
 */
export function fileProblem(error: unknown): string | undefined {
  const reason = fsReason(error);
  if (!(error instanceof Error) || reason === undefined) return undefined;
  const { path, syscall } = error as NodeJS.ErrnoException;
  if (path === undefined) return undefined;
  return `cannot ${syscall === 'open' || syscall === undefined ? 'open' : syscall} ${path}: ${reason}`;
}

export function formatError(error: unknown): string {
  const file = fileProblem(error);
  if (file !== undefined) return file;
  if (error instanceof RunbookValidationError) {
    const lines = error.issues.map(formatIssue);
    return [...lines, `${error.issues.length} problem${error.issues.length === 1 ? '' : 's'} in ${error.file}`].join('\n');
  }
  if (error instanceof StepFailedError) return `step "${error.stepId}" failed (${error.phase}):\n${indent(formatError(error.cause))}`;
  if (error instanceof DatabaseError) return formatDatabaseError(error);
  if (error instanceof CommandError) {
    const stderr = error.stderr.trim().split('\n').slice(-15).join('\n');
    return [error.message, ...(stderr ? ['stderr:', indent(stderr)] : [])].join('\n');
  }
  if (error instanceof LockedError) return `${error.message}\nWait for that run to finish, or find it with: cutover status`;
  if (error instanceof ConfirmationRequiredError) {
    return `${error.message}\nNo terminal to ask on: run it again with --yes once the answer is yes (the run stopped before this step; cutover resume continues it).`;
  }
  if (error instanceof ConfirmationDeclinedError) {
    return `${error.message}\nThe run stopped before going further: cutover resume continues it, cutover rollback undoes it.`;
  }
  if (error instanceof UnknownOutcomeError) {
    return `${error.message}.\nCheck by hand whether it took effect. Then: mark the step idempotent and resume with --yes, or resume on a terminal and answer the question, or roll back.`;
  }
  if (error instanceof UnfinishedRunError || error instanceof JournalUntrustedError) return error.message;
  if (error instanceof LockLostError) return error.message;
  if (error instanceof InterruptedError) return `${error.message}: the statement in flight was cancelled and the run stopped before its next write`;
  if (error instanceof UsageError || error instanceof PlanBlockedError || error instanceof RefusedError || error instanceof PlanDriftError) {
    return error.message;
  }
  if (error instanceof Error) {
    // Never an internal class name: the message is what a person can act on.
    return process.env['CUTOVER_DEBUG'] ? (error.stack ?? error.message) : error.message;
  }
  return String(error);
}

export function formatDatabaseError(error: DatabaseError): string {
  const d = error.details;
  const lines = [`${d.connection}: ERROR${d.sqlstate ? ` ${d.sqlstate}` : ''}: ${error.message}`];
  if (d.sql !== undefined && d.position !== undefined) lines.push(...caret(d.sql, d.position));
  else if (d.sql !== undefined) lines.push(`  in: ${firstLines(d.sql)}`);
  if (d.detail) lines.push(`DETAIL: ${d.detail}`);
  if (d.hint) lines.push(`HINT: ${d.hint}`);
  return lines.join('\n');
}

/**
 * Shows the failing line of the SQL with a caret under the reported position.
 * The server counts characters (code points); the caret is pushed along by
 * what a terminal draws before it: two columns for a CJK character or an
 * emoji, and a tab kept as a tab so it reaches the same tab stop.
 */
function caret(sql: string, position: number): string[] {
  const before = Array.from(sql)
    .slice(0, Math.max(0, position - 1))
    .join('');
  const lineNumber = before.split('\n').length;
  const line = sql.split('\n')[lineNumber - 1] ?? '';
  const prefix = `  LINE ${lineNumber}: `;
  const onLine = before.slice(before.lastIndexOf('\n') + 1);
  const pad = Array.from(onLine, (ch) => (ch === '\t' ? '\t' : ' '.repeat(displayWidth(ch)))).join('');
  return [`${prefix}${line}`, `${' '.repeat(prefix.length)}${pad}^`];
}

function firstLines(sql: string): string {
  const lines = sql.trim().split('\n');
  return lines.length > 3 ? `${lines.slice(0, 3).join('\n      ')} …` : lines.join('\n      ');
}

export function formatSerialized(error: SerializedError): string {
  const lines = [`${error.sqlstate ? `ERROR ${error.sqlstate}: ` : ''}${error.message}`];
  if (error.detail) lines.push(`DETAIL: ${error.detail}`);
  if (error.hint) lines.push(`HINT: ${error.hint}`);
  if (error.stderr) lines.push(`stderr: ${error.stderr.trim().split('\n').slice(-5).join('\n        ')}`);
  return lines.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
