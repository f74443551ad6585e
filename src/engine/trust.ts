/**
 * Nothing acts on a journal that does not verify: resume, rollback, abandon,
 * status and report check the hash chain (with the journal key when one is
 * set) before they read a single record.
 */
import { verifyJournal } from '../audit/journal.js';
import { journalKeyFromEnv } from '../audit/journal-key.js';
import { JournalUntrustedError } from '../errors.js';

export function journalKey(option: Buffer | undefined): Buffer | undefined {
  return option ?? journalKeyFromEnv();
}

/** Throws JournalUntrustedError naming the first bad line; a torn last line (a crash mid-write) is allowed. */
export function trustJournal(runDir: string, runId: string, key: Buffer | undefined): void {
  const result = verifyJournal(runDir, { key, allowTornTail: true });
  if (result.ok) return;
  const first = result.problems[0];
  throw new JournalUntrustedError(
    `the journal of run ${runId} does not verify (line ${first?.line ?? 1}: ${first?.problem ?? 'no records'}); ` +
      `refusing to act on it. cutover audit verify ${runId} lists every problem`,
  );
}
