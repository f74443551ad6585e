/**
 * The journal: one JSON record per line, written to the file at once and
 * made durable (fsync, or the sink) before the engine's next effect, so a
 * crash loses nothing that happened. A line the engine marks `deferred`
 * (one that only records a plan, a lock, an applied or verified step, after
 * which nothing is changed until the next line) becomes durable together
 * with the next line that is not: a crash can lose only such lines written
 * since the last effect, the same state as a crash just before the first of
 * them.
 *
 * Each line is `{"hash":"<sha256 of record>","record":<record JSON>}` and each
 * record holds the hash of the one before it. The hash covers the record's
 * exact bytes, so changing any byte of any line breaks the chain. A journal's
 * last hash (the head) can be copied into the change ticket: truncating the
 * tail is then detectable too.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, writeSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import { createHash, createHmac } from 'node:crypto';
import type { RunEvent } from './events.js';
import type { Redactor } from './redact.js';
import { makeDirs } from '../files.js';

export const GENESIS = '0'.repeat(64);
const PREFIX = '{"hash":"';
const RECORD_AT = PREFIX.length + 64 + '","record":'.length;

export interface JournalRecord {
  readonly seq: number;
  readonly ts: string;
  readonly prev: string;
  readonly event: RunEvent;
}

export const journalFile = (runDir: string) => path.join(runDir, 'journal.jsonl');

/**
 * Without a key each line's hash is sha256(record): anyone who edits a line
 * can recompute the chain after it. With a key (CUTOVER_JOURNAL_KEY) it is
 * HMAC-SHA256(key, record): recomputing it needs the key.
 */
const hashOf = (text: string, key: Buffer | undefined) =>
  key === undefined ? createHash('sha256').update(text).digest('hex') : createHmac('sha256', key).update(text).digest('hex');

export type ChainKind = 'sha256' | 'hmac-sha256';

/**
 * Where the durable copy of every journal line goes instead of the file's
 * fsync (queue mode: the queue's database, committed). Called synchronously
 * when lines must become durable (see Journal.append), with every line not
 * yet taken, in order; throwing refuses them (they stay pending, so the next
 * call offers them again first), and the run stops as it does when the file
 * cannot be written. With a sink the file
 * is a working copy in a temporary directory, read back by the engine and
 * rebuilt from the sink after a crash, so it is not fsync'ed: a second
 * durable write per line would cost the run without protecting anything.
 */
export interface JournalSink {
  append(line: JournalLine): void;
  /** Several lines in order, durable together or not at all (one round trip); without it, `append` for each. */
  appendAll?(lines: readonly JournalLine[]): void;
}

export interface JournalLine {
  readonly runId: string;
  readonly seq: number;
  readonly text: string;
}

export class Journal {
  private constructor(
    readonly file: string,
    private fd: number,
    private seq: number,
    private head: string,
    private readonly redactor: Redactor,
    private readonly key: Buffer | undefined,
    private readonly sink?: JournalSink,
  ) {}

  /** Written to the file, not yet durable: lines for the sink, or an fsync owed. */
  private pending: JournalLine[] = [];
  private unsynced = false;

  /** Starts a new journal; fails if one exists (run ids are unique). With a key, the chain is HMAC-SHA256. */
  static create(runDir: string, redactor: Redactor, key?: Buffer, sink?: JournalSink): Journal {
    makeDirs(runDir, 0o700);
    const file = journalFile(runDir);
    const fd = openSync(file, 'wx', 0o600);
    return new Journal(file, fd, 0, GENESIS, redactor, key, sink);
  }

  /**
   * Opens an existing journal to append to it. A torn last line (the process
   * died mid-write) is moved aside to `journal.torn` so the chain stays whole.
   */
  static open(runDir: string, redactor: Redactor, key?: Buffer, sink?: JournalSink): { journal: Journal; records: JournalRecord[]; tornBytes: number } {
    const file = journalFile(runDir);
    const text = readFileSync(file, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    const tornBytes = Buffer.byteLength(text.slice(end));
    if (tornBytes > 0) {
      const torn = path.join(runDir, 'journal.torn');
      if (existsSync(torn)) renameSync(torn, `${torn}.${Date.now()}`);
      const fdTorn = openSync(torn, 'w', 0o600);
      writeSync(fdTorn, text.slice(end));
      closeSync(fdTorn);
    }
    const records = parseLines(text.slice(0, end)).map((line) => line.record);
    const fd = openSync(file, 'r+');
    ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
    closeSync(fd);
    const last = parseLines(text.slice(0, end)).at(-1);
    return {
      journal: new Journal(
        file,
        openSync(file, 'a', 0o600),
        records.length,
        last?.hash ?? GENESIS,
        redactor,
        chainOf(records) === 'hmac-sha256' ? key : undefined,
        sink,
      ),
      records,
      tornBytes,
    };
  }

  /**
   * Appends a record. It is durable when this returns, with every line before
   * it, unless `deferred`: then it is written to the file (a killed process
   * does not lose it there) and made durable by the next append that is not
   * deferred, by sync() or by close().
   */
  append(event: RunEvent, options: { readonly deferred?: boolean } = {}): JournalRecord {
    const record: JournalRecord = { seq: this.seq + 1, ts: new Date().toISOString(), prev: this.head, event };
    const body = this.redactor.redact(JSON.stringify(record));
    const hash = hashOf(body, this.key);
    const line = `${PREFIX}${hash}","record":${body}}`;
    if (this.sink !== undefined) this.pending.push({ runId: path.basename(path.dirname(this.file)), seq: record.seq, text: line });
    writeSync(this.fd, `${line}\n`);
    this.unsynced = true;
    this.seq += 1;
    this.head = hash;
    if (options.deferred !== true) this.sync();
    return JSON.parse(body) as JournalRecord;
  }

  /**
   * Makes every line written so far durable: the sink takes them (it throws
   * to refuse them, and they stay pending), or the file is fsync'ed. With a
   * sink the file is a working copy and is not fsync'ed.
   */
  sync(): void {
    if (!this.unsynced) return;
    if (this.sink !== undefined) {
      const lines = this.pending;
      if (this.sink.appendAll !== undefined) this.sink.appendAll(lines);
      else for (const line of lines) this.sink.append(line);
      this.pending = [];
    } else {
      fsyncSync(this.fd);
    }
    this.unsynced = false;
  }

  get headHash(): string {
    return this.head;
  }

  /** Makes what is pending durable, then closes the file; a sink that refuses the last lines leaves them as a crash would. */
  close(): void {
    if (this.fd < 0) return;
    try {
      this.sync();
    } catch {
      // Only deferred lines can be pending here (every run ends on a line that is not): losing them is what a
      // crash at this point loses, and resume and status read the journal as they would after one.
    } finally {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}

interface ParsedLine {
  readonly hash: string;
  readonly body: string;
  readonly record: JournalRecord;
}

function parseLine(line: string): ParsedLine | undefined {
  if (!line.startsWith(PREFIX) || !line.endsWith('}') || line.slice(PREFIX.length + 64, RECORD_AT) !== '","record":') {
    return undefined;
  }
  const hash = line.slice(PREFIX.length, PREFIX.length + 64);
  const body = line.slice(RECORD_AT, -1);
  try {
    return { hash, body, record: JSON.parse(body) as JournalRecord };
  } catch {
    return undefined;
  }
}

function parseLines(text: string): ParsedLine[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line, index) => {
      const parsed = parseLine(line);
      if (parsed === undefined) throw new JournalCorruptError(index + 1, 'line is not a journal record');
      return parsed;
    });
}

export class JournalCorruptError extends Error {
  override readonly name = 'JournalCorruptError';
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`journal line ${line}: ${problem}`);
  }
}

export function readJournal(runDir: string): JournalRecord[] {
  const text = readFileSync(journalFile(runDir), 'utf8');
  return parseLines(text.slice(0, text.lastIndexOf('\n') + 1)).map((line) => line.record);
}

/**
 * The whole records within a journal's first or last `bytes` bytes: how a
 * run began or ended, without reading the whole journal. A line cut by the
 * window is left out, so a long first or last line yields nothing; hashes
 * are not checked (a caller that acts on a run verifies it in full).
 */
export function readJournalEdge(runDir: string, edge: 'head' | 'tail', bytes = 8192): JournalRecord[] {
  const fd = openSync(journalFile(runDir), 'r');
  let text: string;
  let cut: boolean;
  try {
    const size = fstatSync(fd).size;
    const from = edge === 'head' ? 0 : Math.max(0, size - bytes);
    const buffer = Buffer.alloc(Math.min(bytes, size));
    text = buffer.toString('utf8', 0, readSync(fd, buffer, 0, buffer.length, from));
    cut = from > 0;
  } finally {
    closeSync(fd);
  }
  const whole = text.slice(cut ? text.indexOf('\n') + 1 : 0, text.lastIndexOf('\n') + 1);
  return whole.length === 0 ? [] : parseLines(whole).map((line) => line.record);
}

/** The chain a journal says it uses (its run.started record); journals from 0.1 are sha256. */
export function chainOf(records: readonly JournalRecord[]): ChainKind {
  const first = records[0]?.event;
  return first?.type === 'run.started' && first.journal?.chain === 'hmac-sha256' ? 'hmac-sha256' : 'sha256';
}

export interface VerifyOptions {
  /** The journal key: demands an HMAC chain made with it. */
  readonly key?: Buffer | undefined;
  /** The head hash recorded elsewhere (ticket, report): the journal must end exactly there. */
  readonly head?: string | undefined;
  /** A torn last line (the process died mid-write) is not a problem (resume moves it aside). */
  readonly allowTornTail?: boolean;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly records: number;
  readonly head: string;
  readonly chain: ChainKind;
  readonly problems: readonly { readonly line: number; readonly problem: string }[];
}

/**
 * Re-computes every hash and link; reports each line that does not hold.
 * With a key, an unkeyed (sha256) chain is itself a problem: whoever
 * rewrote the journal without the key would have produced exactly that.
 */
export function verifyJournal(runDir: string, options: VerifyOptions = {}): VerifyResult {
  return verifyJournalText(readFileSync(journalFile(runDir), 'utf8'), options);
}

/** The same check over a journal's text, wherever it is kept (a file, the queue's database). */
export function verifyJournalText(text: string, options: VerifyOptions = {}): VerifyResult {
  const problems: { line: number; problem: string }[] = [];
  let prev = GENESIS;
  let count = 0;
  const lines = text.split('\n');
  if (lines.at(-1) !== '' && options.allowTornTail !== true) {
    problems.push({ line: lines.length, problem: 'last line is incomplete (no newline)' });
  }
  const complete = lines.slice(0, -1);
  const firstParsed = complete.length > 0 ? parseLine(complete[0] ?? '') : undefined;
  const chain: ChainKind = firstParsed !== undefined ? chainOf([firstParsed.record]) : 'sha256';
  const key = chain === 'hmac-sha256' ? options.key : undefined;
  if (chain === 'hmac-sha256' && options.key === undefined) {
    problems.push({ line: 1, problem: 'the journal is keyed (HMAC-SHA256): set CUTOVER_JOURNAL_KEY or CUTOVER_JOURNAL_KEY_FILE to verify it' });
  } else if (chain === 'sha256' && options.key !== undefined) {
    problems.push({
      line: 1,
      problem: 'a journal key is set but this journal is not keyed: it was written without the key, or rewritten by someone who lacked it',
    });
  }
  const heads: string[] = [];
  complete.forEach((line, index) => {
    if (line.length === 0) return;
    const number = index + 1;
    const parsed = parseLine(line);
    if (parsed === undefined) {
      problems.push({ line: number, problem: 'not a journal record' });
      prev = '';
      return;
    }
    count++;
    if ((chain === 'sha256' || key !== undefined) && hashOf(parsed.body, key) !== parsed.hash) {
      problems.push({
        line: number,
        problem: key !== undefined ? 'record does not match its HMAC (edited, or another key)' : 'record does not match its hash',
      });
    }
    if (parsed.record.prev !== prev) problems.push({ line: number, problem: 'previous-hash link is broken' });
    if (parsed.record.seq !== count) problems.push({ line: number, problem: `sequence number ${parsed.record.seq}, expected ${count}` });
    prev = parsed.hash;
    heads.push(parsed.hash);
  });
  if (options.head !== undefined && options.head !== prev) {
    const at = heads.indexOf(options.head);
    problems.push({
      line: count,
      problem:
        at >= 0
          ? `the journal goes on past the expected head: it is line ${at + 1} of ${count}`
          : `the journal ends at ${prev}, not at the expected head ${options.head}: lines were removed, or it was rewritten`,
    });
  }
  return { ok: problems.length === 0 && count > 0, records: count, head: prev, chain, problems };
}
