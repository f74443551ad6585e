/**
 * Files a runbook names (passwordFile, sslrootcert/sslcert/sslkey,
 * sequence-reset's from.file) are read only if they are regular files, and
 * never beyond a size cap: `/dev/zero` as a passwordFile must fail at once,
 * not eat the machine's memory, and a FIFO must not hang the process.
 */
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

/** A password, certificate or key file: far more than any real one needs. */
export const SMALL_FILE_LIMIT = 64 * 1024;
/** A value file (sequence values): override with CUTOVER_MAX_FILE_BYTES. */
export const DEFAULT_VALUE_FILE_LIMIT = 256 * 1024 * 1024;

export function valueFileLimit(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const configured = Number(env['CUTOVER_MAX_FILE_BYTES']);
  return Number.isSafeInteger(configured) && configured > 0 ? configured : DEFAULT_VALUE_FILE_LIMIT;
}

/** Why a named file cannot be used, in words a person can act on. */
const FS_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EROFS: 'read-only file system',
  EEXIST: 'it exists already',
};

/** A file-system error about a path a person gave, as they would say it (ENOENT: no such file or directory); undefined for any other error. */
export function fsReason(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return code === undefined ? undefined : FS_REASONS[code];
}

export class FileRefusal extends Error {
  override readonly name = 'FileRefusal';
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Throws FileRefusal unless `file` is a regular file of at most `maxBytes`. Does not open it. */
export function checkRegularFile(file: string, maxBytes: number): { size: number; mode: number } {
  let stat: Stats;
  try {
    stat = statSync(file);
  } catch (error) {
    throw new FileRefusal(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  if (!stat.isFile()) throw new FileRefusal(`${file} is ${kindOf(stat)}; expected a regular file`);
  if (stat.size > maxBytes) throw new FileRefusal(`${file} is ${stat.size} bytes; the limit is ${maxBytes}`);
  return { size: stat.size, mode: stat.mode };
}

/**
 * Reads a regular file of at most `maxBytes`. Opened non-blocking and checked
 * again on the open descriptor, so a file swapped for a FIFO or device
 * between the check and the read is still refused, and never read past the cap.
 */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  checkRegularFile(file, maxBytes);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new FileRefusal(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new FileRefusal(`${file} is ${kindOf(stat)}; expected a regular file`);
    const buffer = Buffer.alloc(Math.min(maxBytes, stat.size) + 1);
    let length = 0;
    while (length < buffer.length) {
      let read: number;
      try {
        read = readSync(fd, buffer, length, buffer.length - length, null);
      } catch (error) {
        // A regular file the kernel will not read (/proc/self/mem: EIO).
        throw new FileRefusal(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      }
      if (read === 0) break;
      length += read;
    }
    if (length > maxBytes) throw new FileRefusal(`${file} is larger than the limit of ${maxBytes} bytes`);
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/** True when group or others may read the file (a password file should be 0600). */
export function readableByOthers(mode: number): boolean {
  return (mode & 0o077) !== 0;
}

/**
 * `mkdir -p`, one level at a time: Node 20's recursive mkdirSync spins for
 * ever where a parent that exists answers ENOENT (under /proc), and no
 * signal stops it. Here that ENOENT is thrown like any other error.
 */
export function makeDirs(dir: string, mode?: number): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); !existsSync(at); at = path.dirname(at)) {
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const level of missing) {
    try {
      mkdirSync(level, mode !== undefined ? { mode } : {});
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
