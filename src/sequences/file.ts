/**
 * Sequence values from a file, for when the source is not a PostgreSQL
 * database we can read (an Oracle migration done with ora2pg, a spreadsheet).
 * Three formats are read:
 *
 * - ora2pg: the SQL of its SEQUENCE_VALUES export (`ALTER SEQUENCE s START
 *   WITH n;` in older releases, `RESTART WITH n;` in later ones) or of its
 *   data export (`ALTER SEQUENCE IF EXISTS s RESTART WITH n;`), one statement
 *   per line, names resolved the way PostgreSQL would resolve them;
 * - csv: a header naming `schema`, `name` and `next` columns;
 * - json: `[{ "schema": ..., "name": ..., "next": ... }]`.
 *
 * Every entry means "n is the next value the sequence must hand out". That is
 * the file's intent, and it is what we honour, even for `START WITH n`: run
 * as written, that statement only changes the value a later RESTART goes
 * back to and would not move the sequence at all.
 *
 * Bad input is never skipped: an ignored line could be a sequence left behind,
 * so everything unrecognised is a UsageError with its file:line:column.
 */
import path from 'node:path';
import { UsageError } from '../errors.js';
import { displayName, type SourceValue } from './model.js';

export type SequenceFileFormat = 'ora2pg' | 'csv' | 'json';

export function formatOf(file: string): SequenceFileFormat {
  const ext = path.extname(file).toLowerCase();
  return ext === '.csv' ? 'csv' : ext === '.json' ? 'json' : 'ora2pg';
}

export function parseSequenceFile(text: string, file: string, format: SequenceFileFormat): SourceValue[] {
  // Editors on Windows save a BOM; it would otherwise end up in the first name.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const entries =
    format === 'csv' ? parseCsv(body, file) : format === 'json' ? parseJson(body, file) : parseOra2pg(body, file);
  return unique(file, entries);
}

interface Entry {
  readonly value: SourceValue;
  /** Error prefix pointing at the entry: `file:line:column` or `file: [i]`. */
  readonly where: string;
  /** `line 7` or `[2]`, to name both places of a duplicate. */
  readonly label: string;
}

/** Two values for one sequence would make the result depend on the order they are applied in. */
function unique(file: string, entries: readonly Entry[]): SourceValue[] {
  if (entries.length === 0) throw new UsageError(`${file}: no sequence values found`);
  const seen = new Map<string, Entry>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.value.schema, entry.value.name]);
    const first = seen.get(key);
    if (first !== undefined) {
      const name = displayName(entry.value.schema, entry.value.name);
      throw new UsageError(`${entry.where}: sequence ${name} is listed twice (${first.label} and ${entry.label})`);
    }
    seen.set(key, entry);
  }
  return entries.map((e) => e.value);
}

const INTEGER = /^[+-]?\d+$/;

/** 1-based, in characters as an editor counts them (not UTF-16 units). */
function columnOf(line: string, index: number): number {
  return Array.from(line.slice(0, index)).length + 1;
}

// ---------------------------------------------------------------- ora2pg

const IDENT_CHAR = 'A-Za-z0-9_$\\u0080-\\uFFFF';
const UNQUOTED = /[A-Za-z_\u0080-\uFFFF][A-Za-z0-9_$\u0080-\uFFFF]*/y;
const QUOTED = /"((?:[^"]|"")*)"/y;
// An integer must not run on into a fraction, exponent or name: `1.5` is not `1`.
const SQL_INTEGER = new RegExp(`[+-]?\\d+(?![${IDENT_CHAR}.])`, 'y');

/** A cursor over one line of SQL; every method skips blanks and comments first. */
class Cursor {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
    readonly line: number,
  ) {}

  fail(message: string, at = this.pos): never {
    throw new UsageError(`${this.file}:${this.line}:${columnOf(this.text, at)}: ${message}`);
  }

  /** Where the next token starts, to report an error about it after it has been read. */
  mark(): number {
    this.blanks();
    return this.pos;
  }

  columnAt(at: number): number {
    return columnOf(this.text, at);
  }

  blanks(): void {
    for (;;) {
      while (/\s/.test(this.text.charAt(this.pos))) this.pos++;
      if (!this.text.startsWith('/*', this.pos)) return;
      const close = this.text.indexOf('*/', this.pos + 2);
      if (close < 0) this.fail('a /* comment must end on the line it starts on');
      this.pos = close + 2;
    }
  }

  /** True at the end of the line or of its statement part (a `--` comment or a psql `\` command). */
  atEnd(): boolean {
    this.blanks();
    return this.pos === this.text.length || this.text.startsWith('--', this.pos);
  }

  isMetaCommand(): boolean {
    this.blanks();
    return this.text.startsWith('\\', this.pos);
  }

  /** Consumes all the words, or none of them. */
  keyword(...words: string[]): boolean {
    const start = this.pos;
    for (const word of words) {
      this.blanks();
      const re = new RegExp(`${word}(?![${IDENT_CHAR}])`, 'iy');
      re.lastIndex = this.pos;
      if (!re.test(this.text)) {
        this.pos = start;
        return false;
      }
      this.pos = re.lastIndex;
    }
    return true;
  }

  char(ch: string): boolean {
    this.blanks();
    if (!this.text.startsWith(ch, this.pos)) return false;
    this.pos += ch.length;
    return true;
  }

  expect(ch: string, context: string): void {
    if (!this.char(ch)) this.fail(`expected "${ch}" ${context}, found ${this.found()}`);
  }

  /** Quoted identifiers are kept exactly; unquoted ones are folded as PostgreSQL folds them (ASCII only). */
  ident(what: string): string {
    this.blanks();
    const quoted = this.match(QUOTED);
    if (quoted !== undefined) {
      if (quoted === '""') this.fail('a quoted identifier cannot be empty', this.pos - 2);
      return quoted.slice(1, -1).replaceAll('""', '"');
    }
    const plain = this.match(UNQUOTED);
    if (plain !== undefined) return plain.replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (this.text.charAt(this.pos) === '"') this.fail('unterminated quoted identifier');
    return this.fail(`expected ${what}, found ${this.found()}`);
  }

  integer(what: string): bigint {
    this.blanks();
    const digits = this.match(SQL_INTEGER);
    if (digits === undefined) this.fail(`expected ${what}, found ${this.found()}`);
    return BigInt(digits);
  }

  /** One statement per line, so the result never depends on how lines were split. */
  end(): void {
    if (!this.atEnd()) this.fail(`expected the end of the line (one statement per line), found ${this.found()}`);
  }

  /** The token at the cursor, for error messages. */
  found(): string {
    this.blanks();
    if (this.pos >= this.text.length) return 'the end of the line';
    const token = /"(?:[^"]|"")*"?|[^\s;,()=]+|./y;
    token.lastIndex = this.pos;
    const text = token.exec(this.text)?.[0] ?? '';
    return `"${text.length > 30 ? `${text.slice(0, 30)}...` : text}"`;
  }

  private match(re: RegExp): string | undefined {
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (m === null) return undefined;
    this.pos = re.lastIndex;
    return m[0];
  }
}

function parseOra2pg(text: string, file: string): Entry[] {
  const entries: Entry[] = [];
  let schema = 'public';
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    const c = new Cursor(line, file, index + 1);
    if (c.atEnd() || c.isMetaCommand()) return;
    if (c.keyword('alter')) {
      entries.push(alterSequence(c, file, schema));
    } else if (c.keyword('set')) {
      schema = setSearchPath(c) ?? schema;
    } else if (c.keyword('begin') || c.keyword('commit') || c.keyword('end')) {
      if (!c.keyword('transaction')) c.keyword('work');
      c.expect(';', 'after the transaction command');
      c.end();
    } else if (c.keyword('start', 'transaction')) {
      c.expect(';', 'after START TRANSACTION');
      c.end();
    } else {
      c.fail(`expected "ALTER SEQUENCE name RESTART WITH n;" (or START WITH n), found ${c.found()}`);
    }
  });
  return entries;
}

function alterSequence(c: Cursor, file: string, defaultSchema: string): Entry {
  if (!c.keyword('sequence')) c.fail(`expected SEQUENCE after ALTER, found ${c.found()}`);
  c.keyword('if', 'exists');
  const start = c.mark();
  let schema = defaultSchema;
  let name = c.ident('a sequence name');
  if (c.char('.')) {
    schema = name;
    name = c.ident('a sequence name after "."');
  }
  const keyword = c.keyword('restart') ? 'RESTART' : c.keyword('start') ? 'START' : undefined;
  if (keyword === undefined) c.fail(`expected START WITH or RESTART WITH after the sequence name, found ${c.found()}`);
  c.keyword('with');
  const next = c.integer(`an integer after ${keyword} WITH`);
  c.expect(';', `after ${keyword} WITH ${next}`);
  c.end();
  return {
    value: { schema, name, next, evidence: `${keyword} WITH ${next} (line ${c.line})` },
    where: `${file}:${c.line}:${c.columnAt(start)}`,
    label: `line ${c.line}`,
  };
}

/**
 * The new default schema when the line sets search_path, else undefined: other
 * settings (client_encoding, ...) do not affect names. Only the first schema
 * counts, because that is where ora2pg's unqualified sequences were created.
 */
function setSearchPath(c: Cursor): string | undefined {
  if (!c.keyword('session')) c.keyword('local');
  if (!c.keyword('search_path')) return undefined;
  if (!c.char('=') && !c.keyword('to')) c.fail(`expected "=" or TO after search_path, found ${c.found()}`);
  let first: string | undefined;
  if (c.keyword('default')) {
    first = 'public';
  } else {
    const start = c.mark();
    do {
      const schema = c.ident('a schema name');
      // "$user" stands for a role name we cannot know here.
      if (schema !== '$user') first ??= schema;
    } while (c.char(','));
    if (first === undefined) c.fail('search_path names no schema but "$user"; qualify the sequence names', start);
  }
  c.expect(';', 'after the search_path');
  c.end();
  return first;
}

// ---------------------------------------------------------------- csv

interface Field {
  readonly value: string;
  readonly line: number;
  readonly column: number;
}

/** RFC 4180 records: quoted fields may hold commas, `""` and line breaks. Blank lines are skipped. */
function csvRecords(text: string, file: string): Field[][] {
  const records: Field[][] = [];
  let record: Field[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const column = (from: number, at: number) => Array.from(text.slice(from, at)).length + 1;
  const fail = (message: string, at: number, atLine = line, from = lineStart): never => {
    throw new UsageError(`${file}:${atLine}:${column(from, at)}: ${message}`);
  };
  const newline = (at: number): number => (text.startsWith('\r\n', at) ? 2 : text.charAt(at) === '\n' ? 1 : 0);

  for (;;) {
    if (record.length === 0) {
      const blank = /[ \t]*/y;
      blank.lastIndex = i;
      blank.test(text);
      const end = newline(blank.lastIndex);
      if (end > 0) {
        i = blank.lastIndex + end;
        line++;
        lineStart = i;
        continue;
      }
      if (blank.lastIndex >= text.length) break;
    }
    const start = i;
    const fieldLine = line;
    const fieldLineStart = lineStart;
    let value = '';
    if (text.charAt(i) === '"') {
      for (i++; ; i++) {
        if (i >= text.length) fail('unterminated quoted field', start, fieldLine, fieldLineStart);
        const ch = text.charAt(i);
        if (ch === '"') {
          if (text.charAt(i + 1) !== '"') break;
          i++;
        } else if (ch === '\n') {
          line++;
          lineStart = i + 1;
        }
        value += ch;
      }
      i++;
    } else {
      const plain = /[^,"\r\n]*/y;
      plain.lastIndex = i;
      value = plain.exec(text)?.[0] ?? '';
      i = plain.lastIndex;
      if (text.charAt(i) === '"') fail('unexpected \'"\' inside an unquoted field (quote the whole field)', i);
    }
    record.push({ value, line: fieldLine, column: column(fieldLineStart, start) });
    if (text.charAt(i) === ',') {
      i++;
      continue;
    }
    const end = newline(i);
    if (end === 0 && i < text.length) fail('expected "," or the end of the line after the field', i);
    records.push(record);
    record = [];
    if (end === 0) break;
    i += end;
    line++;
    lineStart = i;
  }
  return records;
}

const CSV_COLUMNS = {
  schema: ['schema'],
  name: ['name', 'sequence'],
  next: ['next', 'next_value', 'value'],
} as const;

type CsvColumn = keyof typeof CSV_COLUMNS;

function parseCsv(text: string, file: string): Entry[] {
  const [header, ...rows] = csvRecords(text, file);
  if (header === undefined) return [];
  const at = (f: Field) => `${file}:${f.line}:${f.column}`;

  const index: Partial<Record<CsvColumn, number>> = {};
  header.forEach((field, i) => {
    const heading = field.value.trim().toLowerCase();
    const column = (Object.keys(CSV_COLUMNS) as CsvColumn[]).find((c) =>
      (CSV_COLUMNS[c] as readonly string[]).includes(heading),
    );
    if (column === undefined) return; // extra columns (a comment, the source's own value) are allowed
    const previous = index[column];
    if (previous !== undefined) {
      throw new UsageError(`${at(field)}: column "${field.value}" repeats column "${header[previous]?.value}"`);
    }
    index[column] = i;
  });
  for (const column of Object.keys(CSV_COLUMNS) as CsvColumn[]) {
    if (index[column] === undefined) {
      const [main, ...aliases] = CSV_COLUMNS[column];
      const also = aliases.length > 0 ? ` (or ${aliases.join(', ')})` : '';
      throw new UsageError(`${at(header[0] as Field)}: missing column "${main}"${also} in the header`);
    }
  }

  return rows.map((row) => {
    const first = row[0] as Field;
    if (row.length !== header.length) {
      const where = row[header.length] ?? first;
      throw new UsageError(`${at(where)}: expected ${header.length} fields as in the header, found ${row.length}`);
    }
    const field = (column: CsvColumn): Field => row[index[column] as number] as Field;
    const text = (column: CsvColumn): string => {
      const f = field(column);
      if (f.value === '') throw new UsageError(`${at(f)}: the ${column} is empty`);
      return f.value;
    };
    const next = field('next');
    if (!INTEGER.test(next.value)) throw new UsageError(`${at(next)}: next value "${next.value}" is not an integer`);
    return {
      value: { schema: text('schema'), name: text('name'), next: BigInt(next.value), evidence: `csv line ${first.line}` },
      where: at(field('name')),
      label: `line ${first.line}`,
    };
  });
}

// ---------------------------------------------------------------- json

function parseJson(text: string, file: string): Entry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!Array.isArray(data)) throw new UsageError(`${file}: expected an array of { schema, name, next } objects`);
  return data.map((item: unknown, i): Entry => {
    const where = `${file}: [${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new UsageError(`${where}: expected an object with schema, name and next`);
    }
    const record = item as Record<string, unknown>;
    const text = (key: 'schema' | 'name'): string => {
      const v = record[key];
      if (typeof v !== 'string' || v === '') throw new UsageError(`${where}.${key}: expected a non-empty string`);
      return v;
    };
    return {
      value: { schema: text('schema'), name: text('name'), next: jsonInteger(record['next'], `${where}.next`), evidence: `json [${i}]` },
      where,
      label: `[${i}]`,
    };
  });
}

function jsonInteger(v: unknown, where: string): bigint {
  if (typeof v === 'string') {
    if (!INTEGER.test(v)) throw new UsageError(`${where}: "${v}" is not an integer`);
    return BigInt(v);
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new UsageError(`${where}: ${v} is not an integer`);
    // JSON.parse has already rounded such a number, so its digits cannot be trusted.
    if (!Number.isSafeInteger(v)) {
      throw new UsageError(
        `${where}: ${v} is beyond the safe integer range of JSON numbers (2^53 - 1) and may have been rounded; write it as a string`,
      );
    }
    return BigInt(v);
  }
  throw new UsageError(`${where}: expected an integer or a string holding one`);
}
