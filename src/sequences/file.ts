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
import { CsvError, parse as parseCsvText } from 'csv-parse/sync';
import { z } from 'zod';
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
  const entries = format === 'csv' ? parseCsv(body, file) : format === 'json' ? parseJson(body, file) : parseOra2pg(body, file);
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

/** A place in the text: 1-based line and column (in characters, as an editor counts them). */
interface Place {
  readonly line: number;
  readonly column: number;
}

/** A CSV field and the place it starts at. */
interface Field extends Place {
  readonly value: string;
}

/** Where `text.slice(0, offset)` ends, counted from `start` (the place of text[0]). */
function placeAfter(start: Place, text: string, offset: number): Place {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf('\n');
  if (lastBreak < 0) return { line: start.line, column: start.column + Array.from(before).length };
  return { line: start.line + (before.split('\n').length - 1), column: Array.from(before.slice(lastBreak + 1)).length + 1 };
}

/** How a field stood in the file; csv-parse wrote it back only as its value. */
function rawLength(raw: string, offset: number, value: string): number {
  return raw.charAt(offset) === '"' ? value.length + 2 + (value.match(/"/g)?.length ?? 0) : value.length;
}

/** Where csv-parse stopped, in the words and at the place the file's author needs. */
function csvFailure(error: unknown, file: string, recordStart: Place): never {
  if (!(error instanceof CsvError)) throw error;
  const raw = typeof error['raw'] === 'string' ? error['raw'] : '';
  const at = (offset: number, message: string): never => {
    const place = placeAfter(recordStart, raw, offset);
    throw new UsageError(`${file}:${place.line}:${place.column}: ${message}`);
  };
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return at(openingQuote(raw), 'unterminated quoted field');
    case 'INVALID_OPENING_QUOTE':
      return at(raw.length - 1, "unexpected '\"' inside an unquoted field (quote the whole field)");
    case 'CSV_INVALID_CLOSING_QUOTE':
      return at(raw.length, 'expected "," or the end of the line after the field');
    default:
      return at(raw.length, error.message);
  }
}

/**
 * The quote that opened the field still open at the end of `raw`: scanning
 * back, `""` is an escaped quote and the first lone one is where it began.
 */
function openingQuote(raw: string): number {
  for (let i = raw.length - 1; i >= 0; i--) {
    if (raw.charAt(i) !== '"') continue;
    if (i > 0 && raw.charAt(i - 1) === '"') i--;
    else return i;
  }
  return 0;
}

/**
 * RFC 4180 records (quoted fields may hold commas, `""` and line breaks), read
 * by csv-parse; each field keeps the line and column it starts at. Blank lines
 * are skipped.
 */
function csvRecords(text: string, file: string): Field[][] {
  // One record delimiter, so csv-parse hands back every record's raw text whole.
  const body = text.replaceAll('\r\n', '\n');
  let read = ''; // the raw text of the records read so far: where a failing record starts
  let parsed: unknown;
  try {
    parsed = parseCsvText(body, {
      raw: true,
      relax_column_count: true,
      record_delimiter: '\n',
      on_record: (record, context) => {
        read += context.raw ?? '';
        return record;
      },
    });
  } catch (error) {
    csvFailure(error, file, placeAfter({ line: 1, column: 1 }, read, read.length));
  }
  const records: Field[][] = [];
  let start: Place = { line: 1, column: 1 };
  // csv-parse's types do not describe `raw: true` records, so they are parsed, not cast.
  for (const { record, raw } of CSV_RAW_RECORDS.parse(parsed)) {
    const recordStart = start;
    start = placeAfter(start, raw, raw.length);
    if (/^[ \t]*\n?$/.test(raw)) continue;
    let offset = 0;
    records.push(
      record.map((value) => {
        const place = placeAfter(recordStart, raw, offset);
        offset += rawLength(raw, offset, value) + 1;
        return { value, ...place };
      }),
    );
  }
  return records;
}

const CSV_RAW_RECORDS = z.array(z.object({ record: z.array(z.string()), raw: z.string() }));

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
    const column = (Object.keys(CSV_COLUMNS) as CsvColumn[]).find((c) => (CSV_COLUMNS[c] as readonly string[]).includes(heading));
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

const JSON_INTEGER = z.union(
  [
    z.string().regex(INTEGER, { error: (issue) => `${JSON.stringify(issue.input)} is not an integer` }),
    // JSON.parse has already rounded an integer beyond 2^53 - 1, so its digits cannot be trusted.
    z.number().refine(Number.isSafeInteger, {
      error: (issue) =>
        Number.isInteger(issue.input)
          ? `${String(issue.input)} is beyond the safe integer range of JSON numbers (2^53 - 1) and may have been rounded; write it as a string`
          : `${String(issue.input)} is not an integer`,
    }),
  ],
  { error: 'expected an integer or a string holding one' },
);

const NON_EMPTY = z.string({ error: 'expected a non-empty string' }).min(1, { error: 'expected a non-empty string' });

/** Keys other than these are allowed (a comment, the source's own value), as in a CSV file. */
const JSON_FILE = z.array(z.object({ schema: NON_EMPTY, name: NON_EMPTY, next: JSON_INTEGER }, { error: 'expected an object with schema, name and next' }), {
  error: 'expected an array of { schema, name, next } objects',
});

function parseJson(text: string, file: string): Entry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const result = JSON_FILE.safeParse(data);
  if (!result.success) {
    // The first problem, as the file's author reads it: `file: [1].next: ...`.
    const issue = result.error.issues[0];
    const where = (issue?.path ?? []).map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)).join('');
    throw new UsageError(`${file}: ${where === '' ? '' : `${where}: `}${issue?.message ?? 'not a list of sequence values'}`);
  }
  return result.data.map((item, i): Entry => ({
    value: { schema: item.schema, name: item.name, next: BigInt(item.next), evidence: `json [${i}]` },
    where: `${file}: [${i}]`,
    label: `[${i}]`,
  }));
}
