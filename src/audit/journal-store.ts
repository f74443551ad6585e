/**
 * Where journals are kept. The engine always writes a run's journal to a
 * file under its state directory; in queue mode every line also goes to
 * the queue's database first (a JournalSink), and that copy is the one
 * that counts: a worker taking over a target writes the journals from the
 * database back to files (`materialize`) and resumes from them.
 *
 * Both stores hand out the journal's exact text, so one function verifies
 * the hash chain wherever it is kept.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { journalFile, verifyJournalText, type VerifyOptions, type VerifyResult } from './journal.js';
import { makeDirs } from '../files.js';

export interface JournalStore {
  /** Shown to people: where the journals are. */
  readonly location: string;
  /** Run ids, oldest first. */
  runIds(): string[];
  /** The journal's exact text, every line ended by a newline. */
  text(runId: string): string;
}

/** Journals as files: `<stateDir>/runs/<runId>/journal.jsonl`. */
export class FileJournalStore implements JournalStore {
  readonly location: string;
  constructor(private readonly stateDir: string) {
    this.location = path.join(stateDir, 'runs');
  }

  runIds(): string[] {
    const dir = this.location;
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(journalFile(path.join(dir, e.name))))
      .map((e) => e.name)
      .sort();
  }

  text(runId: string): string {
    return readFileSync(journalFile(path.join(this.location, runId)), 'utf8');
  }
}

/** Verifies a stored journal exactly as `cutover audit verify` verifies a file. */
export function verifyStoredJournal(store: JournalStore, runId: string, options: VerifyOptions = {}): VerifyResult {
  return verifyJournalText(store.text(runId), options);
}

/**
 * Writes every journal of `store` under `stateDir` as files, so the engine
 * (which reads files) can fold, verify and resume them. A file that already
 * holds the same text is left alone.
 */
export function materialize(store: JournalStore, stateDir: string): string[] {
  const ids = store.runIds();
  writeJournals(stateDir, new Map(ids.map((id) => [id, store.text(id)])));
  return ids;
}

/** Writes journals (run id -> exact text) under `stateDir` as files; a file that already holds the same text is left alone. */
export function writeJournals(stateDir: string, journals: ReadonlyMap<string, string>): void {
  for (const [id, text] of journals) {
    const runDir = path.join(stateDir, 'runs', id);
    const file = journalFile(runDir);
    if (existsSync(file) && readFileSync(file, 'utf8') === text) continue;
    makeDirs(runDir, 0o700);
    writeFileSync(file, text, { mode: 0o600 });
  }
}
