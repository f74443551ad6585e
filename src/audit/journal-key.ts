/**
 * The optional journal key: `CUTOVER_JOURNAL_KEY` (the key itself) or
 * `CUTOVER_JOURNAL_KEY_FILE` (a file holding it). With a key, every journal
 * line is chained with HMAC-SHA256 instead of plain SHA-256.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

const MIN_BYTES = 16;

export function journalKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  const inline = env['CUTOVER_JOURNAL_KEY'];
  const file = env['CUTOVER_JOURNAL_KEY_FILE'];
  let key: Buffer | undefined;
  if (inline !== undefined && inline !== '') key = Buffer.from(inline, 'utf8');
  else if (file !== undefined && file !== '') {
    try {
      key = Buffer.from(readFileSync(file, 'utf8').replace(/\r?\n$/, ''), 'utf8');
    } catch (error) {
      throw new UsageError(`CUTOVER_JOURNAL_KEY_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
  }
  if (key !== undefined && key.length < MIN_BYTES) {
    throw new UsageError(`the journal key must be at least ${MIN_BYTES} bytes long`);
  }
  return key;
}
