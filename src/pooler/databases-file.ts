/**
 * The file that holds PgBouncer's `[databases]` entries (usually pulled into
 * pgbouncer.ini with `%include`): read, edited key by key, written atomically.
 *
 * An entry is `name = key=value key='quoted value' ...`. Only the keys a
 * switch changes (host, port, dbname) are touched; every other byte of the
 * file, other parameters of the entry (a password among them) included, is
 * kept as it was, so neither the plan nor the journal needs to hold the line.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeFileSync, chownSync } from 'node:fs';
import path from 'node:path';

/** The keys a switch moves. A key absent from the entry is `null` (PgBouncer's default applies). */
export const TARGET_KEYS = ['host', 'port', 'dbname'] as const;
export type TargetKey = (typeof TARGET_KEYS)[number];
export type Target = { readonly [K in TargetKey]: string | null };

interface Token {
  readonly key: string;
  readonly value: string;
  /** Where ` key=value` starts in the line, leading space included. */
  readonly spanStart: number;
  /** Offsets of the value (quotes included) in the line. */
  readonly start: number;
  readonly end: number;
}

interface Entry {
  readonly name: string;
  readonly lineIndex: number;
  /** Offset in the line where the connect string starts. */
  readonly offset: number;
  readonly tokens: readonly Token[];
}

export class DatabasesFileError extends Error {
  override readonly name = 'DatabasesFileError';
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

const ENTRY = /^(\s*)("[^"]+"|[^\s=;#[][^=]*?)\s*=\s*/;
/** PgBouncer's connect-string syntax: a value is a word, or quoted with '' for a quote inside; a backslash is a backslash. */
const TOKEN = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^\s']*)/y;

function unquote(raw: string): string {
  if (!raw.startsWith("'")) return raw;
  return raw.slice(1, -1).replace(/''/g, "'");
}

function quote(value: string): string {
  return /^[^\s']+$/.test(value) ? value : `'${value.replace(/'/g, "''")}'`;
}

/** Every `[databases]` entry of the file (lines before any section header count as such). */
function entries(text: string): Map<string, Entry> {
  const found = new Map<string, Entry>();
  let section = 'databases';
  text.split('\n').forEach((line, lineIndex) => {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header !== null) {
      section = (header[1] ?? '').trim().toLowerCase();
      return;
    }
    if (section !== 'databases' || /^\s*([;#]|%|$)/.test(line)) return;
    const match = ENTRY.exec(line);
    if (match === null) return;
    const name = (match[2] ?? '').replace(/^"|"$/g, '');
    const offset = match[0].length;
    const tokens: Token[] = [];
    TOKEN.lastIndex = offset;
    for (let m = TOKEN.exec(line); m !== null && m[0].length > 0; m = TOKEN.exec(line)) {
      const raw = m[2] ?? '';
      tokens.push({ key: (m[1] ?? '').toLowerCase(), value: unquote(raw), spanStart: m.index, start: TOKEN.lastIndex - raw.length, end: TOKEN.lastIndex });
    }
    found.set(name, { name, lineIndex, offset, tokens });
  });
  return found;
}

/** The host, port and dbname an entry names now, or undefined when the file has no such entry. */
export function entryTarget(text: string, name: string): Target | undefined {
  const entry = entries(text).get(name);
  if (entry === undefined) return undefined;
  const value = (key: TargetKey) => entry.tokens.find((t) => t.key === key)?.value ?? null;
  return { host: value('host'), port: value('port'), dbname: value('dbname') };
}

/** The entry names in the file. */
export function entryNames(text: string): string[] {
  return [...entries(text).keys()];
}

/**
 * The file with each named entry's host, port and dbname set as given (a
 * `null` removes the key); everything else byte for byte as it was.
 */
export function withTargets(text: string, targets: Readonly<Record<string, Target>>): string {
  const lines = text.split('\n');
  const all = entries(text);
  for (const [name, target] of Object.entries(targets)) {
    const entry = all.get(name);
    if (entry === undefined) throw new DatabasesFileError(`no entry "${name}" in the [databases] section`);
    let line = lines[entry.lineIndex] ?? '';
    // Right to left, so earlier offsets stay valid.
    const edits: { start: number; end: number; text: string }[] = [];
    const appended: string[] = [];
    for (const key of TARGET_KEYS) {
      const token = entry.tokens.find((t) => t.key === key);
      const value = target[key];
      if (token !== undefined && value !== null) edits.push({ start: token.start, end: token.end, text: quote(value) });
      else if (token !== undefined) edits.push({ start: token.spanStart, end: token.end, text: '' });
      else if (value !== null) appended.push(`${key}=${quote(value)}`);
    }
    for (const edit of edits.sort((a, b) => b.start - a.start)) line = line.slice(0, edit.start) + edit.text + line.slice(edit.end);
    if (appended.length > 0) line = `${line.replace(/\s+$/, '')}${line.trim().endsWith('=') ? '' : ' '}${appended.join(' ')}`;
    lines[entry.lineIndex] = line;
  }
  return lines.join('\n');
}

export function readDatabasesFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new DatabasesFileError(`cannot read ${file} (${code})`);
  }
}

/** A copy of the file beside it, same mode, named by `suffix` (e.g. the run id); returns its path. */
export function backupDatabasesFile(file: string, text: string, suffix: string): string {
  const backup = `${file}.${suffix}`;
  writeFileSync(backup, text, { mode: statSync(file).mode & 0o7777 });
  return backup;
}

/**
 * Replaces the file's contents atomically: a sibling temporary file with the
 * same mode and owner, fsync'ed, renamed over the file, then the directory
 * fsync'ed. PgBouncer sees the old or the new file, never half of one.
 */
export function writeDatabasesFile(file: string, text: string): void {
  const stat = statSync(file);
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.cutover-${process.pid}`);
  writeFileSync(temporary, text, { mode: stat.mode & 0o7777 });
  if (process.getuid?.() === 0) chownSync(temporary, stat.uid, stat.gid);
  const fd = openSync(temporary, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
