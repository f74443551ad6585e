/**
 * The only place the CLI writes to the terminal or to files it is asked to
 * write. Every byte goes through one Redactor: once a command has loaded a
 * runbook it registers the runbook's secrets (`io.protect`), and from then on
 * nothing it prints (the live list, the closing error block, --json) or
 * writes (reports, saved plans) can carry them. The streams themselves are
 * wrapped too, so output from libraries (listr2) is covered.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { Redactor } from '../runbooks.js';

const redactor = new Redactor();
let installed = false;
/** `--log-file`: plain, timestamped lines appended to it (see io.logTo). */
let logFd: number | undefined;

// eslint-disable-next-line no-control-regex -- ANSI escapes are exactly what a log file must not hold.
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

function logLines(text: string): void {
  if (logFd === undefined) return;
  const ts = new Date().toISOString();
  const lines = redactor
    .redact(text.replace(ANSI, ''))
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => `${ts} ${l}\n`)
    .join('');
  try {
    writeSync(logFd, lines);
  } catch {
    // A log file that cannot be written (disk full) must not stop a cutover.
  }
}

function wrap(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  // A closed pipe (`cutover runs | head -1`) is the reader's choice, not an
  // error: stop writing to it and carry on, so a run is never cut short by it.
  let closed = false;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') closed = true;
    else throw error;
  });
  stream.write = (chunk: unknown, ...rest: unknown[]) => {
    if (closed) {
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }
    if (redactor.size > 0) {
      if (typeof chunk === 'string') chunk = redactor.redact(chunk);
      else if (chunk instanceof Uint8Array) chunk = redactor.redact(Buffer.from(chunk).toString('utf8'));
    }
    return write(chunk, ...rest);
  };
}

/** Wraps stdout and stderr once, so every writer in the process is redacted. */
export function installRedaction(): void {
  if (installed) return;
  installed = true;
  wrap(process.stdout);
  wrap(process.stderr);
}

export const io = {
  out(text: string): void {
    process.stdout.write(redactor.redact(text.endsWith('\n') ? text : `${text}\n`));
    logLines(text);
  },
  err(text: string): void {
    process.stderr.write(redactor.redact(text.endsWith('\n') ? text : `${text}\n`));
    logLines(text);
  },
  /** A progress line on stderr (a fleet's target started or finished): with --timestamps, the time in front, as the live list has it. */
  progress(text: string): void {
    io.err(io.timestamps ? `[${new Date().toTimeString().slice(0, 8)}] ${text}` : text);
  },
  /** A line for the log file only (e.g. each engine event); nothing without --log-file. */
  log(text: string): void {
    logLines(text);
  },
  /**
   * `--log-file`: from now on everything this process prints through io (and
   * each line given to io.log) is appended to `file` as plain lines, each
   * with an ISO timestamp, redacted like the terminal. Always appended: one
   * file can hold every run of a night.
   */
  logTo(file: string): void {
    if (logFd !== undefined) closeSync(logFd);
    logFd = openSync(file, 'a', 0o600);
  },
  /** Writes a file the user asked for (a report, a saved plan), redacted like the terminal. */
  writeFile(file: string, text: string): void {
    writeFileSync(file, redactor.redact(text));
  },
  redact(text: string): string {
    return redactor.redact(text);
  },
  /** Registers secrets: from now on nothing printed or written can carry them. */
  protect(secrets: Iterable<string>): void {
    redactor.add(secrets);
  },
  /** `--timestamps`: the live list prints plain lines, each with the time; so do progress lines. */
  timestamps: false,
  interactive(): boolean {
    return process.stdin.isTTY && process.stdout.isTTY;
  },
};
