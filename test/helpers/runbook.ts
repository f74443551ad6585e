/**
 * Runbook fixtures: YAML text written to a file and loaded as a run would
 * (resume and rollback re-read the runbook from disk), and expected positions
 * marked in the YAML text itself, so no test counts lines by hand.
 *
 * @example
 * const { runbook, dir } = loadRunbookText(text, { env: {} });
 *
 * const doc = marked(`
 * version: 1
 * name: 12
 *       ^ name: expected a string
 * `);
 * doc.text;     // the YAML without the marker line
 * doc.marks[0]; // { line: 2, column: 7, label: 'name: expected a string' }
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseRunbook, type LoadOptions, type Runbook } from '../../src/runbook/load.js';
import type { StepRegistry } from '../../src/step/contract.js';
import { registry as allKinds } from '../../src/steps/index.js';

export interface FileOptions {
  /** Write into this directory (kept afterwards); a new temporary one otherwise. */
  readonly dir?: string;
  /** The file's name in the directory; `runbook.yaml` unless told. */
  readonly name?: string;
}

export interface RunbookFile {
  readonly file: string;
  readonly dir: string;
  /** Removes the directory if this helper made it; a directory given in the options is left alone. */
  dispose(): void;
}

/** Writes `text` to a runbook file. */
export function runbookFile(text: string, options: FileOptions = {}): RunbookFile {
  const made = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'cutover-test-'));
  const file = path.join(dir, options.name ?? 'runbook.yaml');
  writeFileSync(file, text);
  return {
    file,
    dir,
    dispose: () => {
      if (made) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface LoadTextOptions extends FileOptions {
  /** The step kinds; every built-in kind unless told. */
  readonly registry?: StepRegistry;
  /** The environment `${NAME}` reads; the process's own unless told (as the CLI does). */
  readonly env?: LoadOptions['env'];
}

export interface LoadedRunbook extends RunbookFile {
  readonly runbook: Runbook;
}

/** Writes `text` to a runbook file and parses it, as `cutover run` would load that file. */
export function loadRunbookText(text: string, options: LoadTextOptions = {}): LoadedRunbook {
  const written = runbookFile(text, options);
  const registry = options.registry ?? allKinds;
  const load: LoadOptions = options.env === undefined ? { registry } : { registry, env: options.env };
  return { ...written, runbook: parseRunbook(text, written.file, load) };
}

export interface PostgresRunbookSpec {
  readonly name: string;
  /** Connection name -> URL; each is written on one line, `name: { kind: postgres, url: "..." }`. */
  readonly connections: Readonly<Record<string, string>>;
  /** Lines between `name:` and `connections:` (ticket, defaults, notify), each ending in a newline. */
  readonly head?: string;
  /** The step lines as they stand under `steps:` (indented by two). */
  readonly steps: string;
}

/**
 * The runbook text most integration tests write: a header naming PostgreSQL
 * connections one line each, then the test's own steps. The header has one
 * line per connection plus `version`, `name`, `connections:` and `steps:`,
 * so a step's line number is easy to see from the spec.
 */
export function postgresRunbook(spec: PostgresRunbookSpec): string {
  const connections = Object.entries(spec.connections)
    .map(([name, url]) => `  ${name}: { kind: postgres, url: "${url}" }\n`)
    .join('');
  return `version: 1\nname: ${spec.name}\n${spec.head ?? ''}connections:\n${connections}steps:\n${spec.steps}`;
}

/** A step as a runbook has it: its id, its kind and the kind's own keys. */
export interface StepSpec {
  readonly id: string;
  readonly kind: string;
  readonly [key: string]: unknown;
}

export interface RunbookSpec {
  readonly name: string;
  /** Connection name -> a PostgreSQL URL (written `{ kind: postgres, url }`) or the connection's own object. */
  readonly connections?: Readonly<Record<string, string | Readonly<Record<string, unknown>>>>;
  readonly steps: readonly StepSpec[];
  /** Other top-level keys (ticket, defaults, notify, ...), written between name and connections. */
  readonly [key: string]: unknown;
}

export interface RunbookText {
  readonly text: string;
  /** The line number of the first line that contains `content`; throws if none does. */
  lineOf(content: string, nth?: number): number;
  /** The line of the step with this id (its `- id:` line). */
  stepLine(id: string): number;
}

/**
 * A runbook's YAML from an object, as `yaml.stringify` writes it (the
 * library the loader reads with), with line numbers found by content.
 *
 * @example
 * const { text, stepLine } = runbookText({ name: 'r', connections: { db: url }, steps: [{ id: 's', kind: 'sql', connection: 'db', sql: 'SELECT 1' }] });
 */
export function runbookText(spec: RunbookSpec): RunbookText {
  const { name, connections, steps, ...rest } = spec;
  const doc = {
    version: 1,
    name,
    ...rest,
    ...(connections !== undefined
      ? { connections: Object.fromEntries(Object.entries(connections).map(([key, c]) => [key, typeof c === 'string' ? { kind: 'postgres', url: c } : c])) }
      : {}),
    steps,
  };
  const text = stringify(doc, { lineWidth: 0 });
  return {
    text,
    lineOf: (content, nth = 1) => lineOf(text, content, nth),
    stepLine: (id) => lineOf(text, `- id: ${id}`),
  };
}

/** A place marked in a fixture: 1-based line and column, and what the marker line said after the caret. */
export interface Mark {
  readonly line: number;
  readonly column: number;
  readonly label: string;
}

export interface MarkedText {
  /** The text without its marker lines, ending with a newline. */
  readonly text: string;
  /** In the order they are written. */
  readonly marks: readonly Mark[];
  /** Just past the last line: where a parser reports "unexpected end of file". */
  readonly end: { readonly line: number; readonly column: number };
  /** The line number of the first line that contains `content`; throws if none does. */
  lineOf(content: string): number;
}

/** A line holding only a caret, optionally followed by a space and a label. */
const MARKER = /^(\s*)\^(?: (.*))?$/;

/** The escapes a YAML fixture needs in a template literal: \${ (a YAML reference), \t, \\ and \`. */
const ESCAPE = /\\([$t\\`])/g;

/**
 * A line of the template as written and as the runbook has it: `columns[i]`
 * is the 1-based column, in the runbook, of the character at index i of the
 * line as written. So a caret under a character points at that character even
 * when an escape (`\${NAME}`) stands before it on the line.
 */
interface SourceLine {
  readonly text: string;
  readonly columns: readonly number[];
}

function cook(written: string): SourceLine {
  let text = '';
  const columns: number[] = [];
  let at = 0;
  for (const match of written.matchAll(ESCAPE)) {
    for (; at < match.index; at++) {
      columns.push(Array.from(text).length + 1);
      text += written.charAt(at);
    }
    columns.push(Array.from(text).length + 1, Array.from(text).length + 1);
    text += match[1] === 't' ? '\t' : (match[1] ?? '');
    at += 2;
  }
  for (; at < written.length; at++) {
    columns.push(Array.from(text).length + 1);
    text += written.charAt(at);
  }
  return { text, columns };
}

/** A line that is already the runbook's text. */
function asIs(text: string): SourceLine {
  return { text, columns: Array.from({ length: text.length }, (_, i) => Array.from(text.slice(0, i)).length + 1) };
}

/**
 * Reads a fixture in which a marker line (`   ^ label`) points at the line
 * above it, at the caret's column. Several marker lines in a row all point at
 * the same line. One leading newline is dropped, so the template may start on
 * the line after its backtick; nothing is dedented, so write the YAML from the
 * left margin.
 *
 * Used as a tag (marked`...`), the template is read as written: a caret sits
 * under the character it means even after an escaped `\${NAME}`, and the
 * runbook gets `${NAME}`. Only `\${`, `\t`, `\\` and a backslash-backtick are read
 * as escapes (write line breaks as line breaks); values in `${...}` go in as
 * they are.
 * Called with a plain string, the string is the text.
 */
export function marked(template: TemplateStringsArray | string, ...values: readonly unknown[]): MarkedText {
  // A value is text already: its backslashes are doubled so that reading the escapes gives them back.
  const source = typeof template === 'string' ? template : String.raw({ raw: template.raw }, ...values.map((v) => String(v).replaceAll('\\', '\\\\')));
  const body = source.startsWith('\n') ? source.slice(1) : source;
  const lines: SourceLine[] = [];
  const marks: Mark[] = [];
  for (const written of body.replace(/\n$/, '').split('\n')) {
    const marker = MARKER.exec(written);
    if (marker === null) {
      lines.push(typeof template === 'string' ? asIs(written) : cook(written));
      continue;
    }
    const above = lines.at(-1);
    if (above === undefined) throw new Error(`marker line "${written}" has no line above it to point at`);
    const caret = (marker[1] ?? '').length;
    marks.push({
      line: lines.length,
      column: above.columns[caret] ?? Array.from(above.text).length + 1 + (caret - above.columns.length),
      label: typeof template === 'string' ? (marker[2] ?? '') : cook(marker[2] ?? '').text,
    });
  }
  const text = `${lines.map((l) => l.text).join('\n')}\n`;
  return { text, marks, end: { line: lines.length + 1, column: 1 }, lineOf: (content) => lineOf(text, content) };
}

/** The tables GATED_STEPS reads and writes, with the gate closed. */
export const GATED_TABLES = 'CREATE TABLE effects (step text); CREATE TABLE go (ok boolean); INSERT INTO go VALUES (false)';

/**
 * Three steps on connection `db` for runs that are stopped in the middle: s1
 * inserts 's1' into effects, s2 waits (up to 60 s) until go.ok is true, s3
 * inserts 's3'. A test opens the gate with `UPDATE go SET ok = true`.
 */
export const GATED_STEPS = `  - id: s1
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('s1')
  - id: s2
    kind: wait
    connection: db
    query: SELECT ok FROM go
    expect: true
    interval: 100ms
    timeout: 60s
  - id: s3
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('s3')
`;

/** The 1-based number of the `nth` line of `text` that contains `content`; throws if there is none. */
export function lineOf(text: string, content: string, nth = 1): number {
  let seen = 0;
  const index = text.split('\n').findIndex((line) => line.includes(content) && ++seen === nth);
  if (index < 0) throw new Error(`no line ${nth > 1 ? `(the ${nth}th) ` : ''}contains ${JSON.stringify(content)}`);
  return index + 1;
}
