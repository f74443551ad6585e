/**
 * Whether the process recorded in a journal still runs. `kill(pid, 0)`
 * succeeds on a zombie (a SIGKILLed process not yet reaped), so on Linux the
 * state letter in /proc/<pid>/stat decides: `Z` and `X` are dead.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export type Liveness = 'alive' | 'dead' | 'unknown';

export function processLiveness(host: string, pid: number): Liveness {
  // Another machine's process cannot be checked from here.
  if (host !== os.hostname()) return 'unknown';
  if (!Number.isInteger(pid) || pid <= 0) return 'dead';
  if (pid === process.pid) return 'alive';
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'dead';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may hold spaces and parentheses, so read after the last ')'.
    const stateLetter = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return stateLetter === 'Z' || stateLetter === 'X' ? 'dead' : 'alive';
  } catch {
    // No /proc (not Linux): kill(pid, 0) succeeded, so count it alive.
    return 'alive';
  }
}
