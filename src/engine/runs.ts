/**
 * Run ids, run directories, and the per-run lock file that keeps two
 * processes from writing one journal.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processLiveness } from './liveness.js';
import { UsageError } from '../errors.js';

export const DEFAULT_STATE_DIR = '.cutover';

export function runsDir(stateDir: string): string {
  return path.join(stateDir, 'runs');
}

/** Sortable by time, to the millisecond: `20261121T210639123Z-3f9a`. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:.]/g, '');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

export function listRunIds(stateDir: string): string[] {
  const dir = runsDir(stateDir);
  // A file given as the state directory holds no runs, and saying "no runs yet" would hide the typo.
  if (statSync(stateDir, { throwIfNoEntry: false })?.isDirectory() === false) throw new UsageError(`state directory ${stateDir} is not a directory`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'journal.jsonl')))
    .map((entry) => entry.name)
    .sort();
}

/** A run id as given, or the newest one for `--last`; a clear error otherwise. */
export function findRun(stateDir: string, runId: string | undefined, accept?: (id: string) => boolean): string {
  const ids = listRunIds(stateDir);
  if (runId !== undefined) {
    if (!ids.includes(runId)) {
      throw new UsageError(`no run "${runId}" under ${runsDir(stateDir)}${ids.length ? ` (newest: ${ids.at(-1)})` : ''}`);
    }
    return runId;
  }
  const candidates = accept ? ids.filter(accept) : ids;
  const last = candidates.at(-1);
  if (last === undefined) throw new UsageError(`no runs under ${runsDir(stateDir)}`);
  return last;
}

/**
 * Takes `<runDir>/lock` for this process. A lock left by a process that no
 * longer exists (kill -9) is taken over; a live holder is an error.
 */
export function lockRunDir(runDir: string): () => void {
  const file = path.join(runDir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        rmSync(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processLiveness(os.hostname(), holder) !== 'dead') {
        throw new UsageError(`run directory ${runDir} is in use by process ${holder}`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new UsageError(`cannot lock run directory ${runDir}`);
}
