/**
 * Generators of malformed runbooks for the fuzz test (test/unit/fuzz.test.ts)
 * and the property every one of them must satisfy. Kept apart so the
 * property can run in a worker thread with a memory cap.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { RunbookValidationError } from '../../src/errors.js';
import { parseRunbook } from '../../src/runbook/load.js';
import { registry } from '../../src/steps/index.js';

export const JS_ERROR =
  /\b(RangeError|TypeError|ReferenceError|URIError|SyntaxError|EvalError|AggregateError|Maximum call stack|\[object Object\]|undefined is not|Cannot read propert)/;
export const ENV = { DEFINED: 'value-of-defined', SECRET: 'a-secret-value' };

/** Files the generated runbooks name (a FIFO, a directory, a password file), in `dir`. */
export function prepareFuzzDir(dir: string): void {
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  mkdirSync(path.join(dir, 'a-dir'));
  writeFileSync(path.join(dir, 'values.csv'), 'schema,sequence,next\npublic,s,1\n');
  writeFileSync(path.join(dir, 'pw.txt'), 'a-long-enough-password\n', { mode: 0o600 });
}

export function malformedRunbooks(dir: string): fc.Arbitrary<string> {
  const fifo = path.join(dir, 'fifo');
  const base = () => ({
    version: 1,
    name: 'fuzz',
    connections: {
      db: { kind: 'postgres', url: 'postgres://u@localhost:5432/db', passwordFile: 'pw.txt' },
      ora: { kind: 'oracle', connectString: 'h:1521/S', user: 'scott' },
    },
    defaults: { lockTimeout: '5s', statementTimeout: '10min', onFailure: 'rollback' },
    steps: [
      { id: 'a', kind: 'sql', connection: 'db', sql: 'SELECT 1', timeout: '5s', rollback: 'SELECT 2' },
      { id: 'b', kind: 'shell', command: ['true'], env: { X: 'y' } },
      { id: 'c', kind: 'wait', connection: 'db', query: 'SELECT 1', expect: 1, interval: '1s' },
      { id: 'd', kind: 'sequence-reset', connection: 'db', from: { file: 'values.csv' } },
      { id: 'e', kind: 'confirm', message: 'go?' },
    ],
  });

  type PathKey = string | number;
  const PATHS: readonly PathKey[][] = [
    [],
    ['version'],
    ['name'],
    ['connections'],
    ['connections', 'db'],
    ['connections', 'db', 'kind'],
    ['connections', 'db', 'url'],
    ['connections', 'db', 'port'],
    ['connections', 'db', 'password'],
    ['connections', 'db', 'passwordFile'],
    ['connections', 'db', 'sslmode'],
    ['connections', 'db', 'sslrootcert'],
    ['connections', '__proto__'],
    ['connections', 'constructor'],
    ['connections', 'ora', 'user'],
    ['defaults'],
    ['defaults', 'lockTimeout'],
    ['defaults', 'statementTimeout'],
    ['defaults', 'onFailure'],
    ['steps'],
    ['steps', 0],
    ['steps', 0, 'id'],
    ['steps', 0, 'kind'],
    ['steps', 0, 'connection'],
    ['steps', 0, 'sql'],
    ['steps', 0, 'timeout'],
    ['steps', 0, 'retries'],
    ['steps', 1, 'command'],
    ['steps', 1, 'command', 0],
    ['steps', 1, 'env'],
    ['steps', 1, 'cwd'],
    ['steps', 2, 'expect'],
    ['steps', 2, 'interval'],
    ['steps', 3, 'from'],
    ['steps', 3, 'from', 'file'],
    ['steps', 4, 'confirm'],
    ['steps', 4, 'id'],
    ['steps', 9],
    ['extra'],
    ['steps', 0, 'sqll'],
  ];

  const hostileString = fc.constantFrom(
    '${__proto__}',
    '${constructor}',
    '${toString}',
    '${valueOf}',
    '${hasOwnProperty}',
    '${secret:ab}',
    '${secret:}',
    '${',
    '${1x}',
    '$${x}',
    '${UNSET_VAR}',
    '%zz',
    'postgres://u:%zz@h/db',
    'postgres://u:p@h/db?sslmode=nope',
    'postgres://u@[::1/db',
    'postgresql://',
    'mysql://u@h/db',
    '/dev/zero',
    '/dev/urandom',
    '/dev/null',
    fifo,
    path.join(dir, 'a-dir'),
    'no-such-file',
    '../../../../etc/shadow',
    '9999999999999',
    '2147483648ms',
    '25d',
    '1e309',
    '5 mins',
    '1 min',
    '-1s',
    '0.0001us',
    'NaN',
    'Infinity',
    '__proto__',
    'constructor',
    'comapre',
    'rolback',
    '',
    ' ',
    '\u0000',
    '\uFEFF',
    'x'.repeat(10_000),
  );
  const hugeNumber = fc.constantFrom(2 ** 31, 2 ** 31 - 1, 9_999_999_999_999, Number.MAX_SAFE_INTEGER + 2, -1, 0.5, 1e308, -0, 65_536);
  const value: fc.Arbitrary<unknown> = fc.oneof(
    { weight: 3, arbitrary: hostileString },
    { weight: 2, arbitrary: hugeNumber },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.string().map((s) => `\${${s}}`) },
    { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, [[[]]], { kind: 'sql' }) },
  );

  function setIn(root: unknown, at: readonly PathKey[], v: unknown): unknown {
    if (at.length === 0) return v;
    if (root === null || typeof root !== 'object') return root;
    let node: unknown = root;
    for (const key of at.slice(0, -1)) {
      if (node === null || typeof node !== 'object') return root;
      const next = (node as Record<PathKey, unknown>)[key];
      if (next === null || typeof next !== 'object') (node as Record<PathKey, unknown>)[key] = {};
      node = (node as Record<PathKey, unknown>)[key];
    }
    if (node === null || typeof node !== 'object') return root;
    // defineProperty, so "__proto__" becomes a key, as YAML would write it.
    Object.defineProperty(node, at[at.length - 1] as PropertyKey, { value: v, enumerable: true, writable: true, configurable: true });
    return root;
  }

  /** Structure and type mutations: a few values replaced anywhere, serialized as YAML. */
  // Values aimed at the field that must handle them: without this, a bad URL
  // lands on `url` once in thousands of cases.
  const urls = fc.oneof(
    fc.constantFrom(
      'postgres://u:%zz@h/db',
      'postgres://u:%@h/db',
      'postgres://%zz@h/db',
      'postgres://u@h/%zz',
      'postgres://u@h/db?sslmode=%zz',
      'postgres://u@h/db?sslmode=nope',
      'postgres://u@h/db?x=1',
      'postgres://u@[::1/db',
      'postgres://u@h:99999/db',
      'postgres://u:ab@h/db',
      'mysql://u@h/db',
      'postgres:',
      '',
    ),
    fc.string().map((t) => `postgres://u:${t}@h/db`),
    fc.string().map((t) => `postgres://${t}`),
  );
  const files = fc.constantFrom('/dev/zero', '/dev/urandom', '/dev/null', fifo, path.join(dir, 'a-dir'), 'no-such-file', '', '.', '/', '/proc/self/mem');
  const durations = fc.oneof(
    hugeNumber,
    fc.constantFrom('9999999999999', '2147483648ms', '25d', '1e309', '5 mins', '-1s', '0.0001us', '1.5.5s', '1 h', '1  h', '1000000000000000d', 'NaNs'),
    fc.tuple(fc.nat(), fc.constantFrom('us', 'ms', 's', 'min', 'm', 'h', 'd', 'x', ' min', '')).map(([n, u]) => `${n}${u}`),
  );
  const names = fc.constantFrom('__proto__', 'constructor', 'toString', 'prototype', 'db', 'DB', 'd b', '', 'x'.repeat(64));
  const targeted = fc.oneof(
    urls.map((v) => [['connections', 'db', 'url'], v] as const),
    files.map((v) => [['connections', 'db', 'passwordFile'], v] as const),
    files.map((v) => [['connections', 'db', 'sslrootcert'], v] as const),
    fc.tuple(fc.constant(['steps', 3, 'from', 'file'] as PathKey[]), files),
    fc.tuple(
      fc.constantFrom<PathKey[]>(['steps', 0, 'timeout'], ['defaults', 'lockTimeout'], ['defaults', 'statementTimeout'], ['steps', 2, 'interval']),
      durations,
    ),
    fc.tuple(fc.constantFrom<PathKey[]>(['steps', 0, 'connection'], ['steps', 2, 'connection'], ['steps', 3, 'connection']), names),
    names.map((n) => [['connections', n], { kind: 'postgres' }] as const),
    fc.tuple(fc.constantFrom<PathKey[]>(['steps', 0, 'sql'], ['name'], ['connections', 'db', 'password'], ['steps', 1, 'env', 'X']), hostileString),
  ) as fc.Arbitrary<readonly [readonly PathKey[], unknown]>;
  const edit = fc.oneof(targeted, fc.tuple(fc.constantFrom(...PATHS), value));
  const structural = fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => {
    let doc: unknown = base();
    for (const [at, v] of edits) doc = setIn(doc, at, v);
    return stringify(doc, { aliasDuplicateObjects: false });
  });

  const TOKENS = [
    '&a ',
    '*a',
    '*zz',
    '[',
    ']',
    '{',
    '}',
    ': ',
    '- ',
    '\t',
    '"',
    "'",
    '!!binary ',
    '!!js/function ',
    '!!python/object ',
    '<<: *a\n',
    '%YAML 1.1\n',
    '---\n',
    '...\n',
    '#',
    '\\',
    '? ',
    '|\n',
    '>-\n',
    '${',
    '}',
    '\n  - ',
    ':\n    ',
    '&b [*a, *a]\n',
  ];

  /** YAML syntax mutations: tokens inserted, ranges deleted, lines duplicated in a valid file. */
  const textual = fc
    .tuple(
      fc.array(
        fc.oneof(
          fc.tuple(fc.constant('insert' as const), fc.nat(), fc.constantFrom(...TOKENS)),
          fc.tuple(fc.constant('delete' as const), fc.nat(), fc.integer({ min: 1, max: 40 })),
          fc.tuple(fc.constant('dup' as const), fc.nat(), fc.constant('')),
        ),
        { minLength: 1, maxLength: 5 },
      ),
    )
    .map(([edits]) => {
      let text = stringify(base());
      for (const [op, at, arg] of edits) {
        const i = at % (text.length + 1);
        if (op === 'insert') text = text.slice(0, i) + arg + text.slice(i);
        else if (op === 'delete') text = text.slice(0, i) + text.slice(i + arg);
        else {
          const lines = text.split('\n');
          const n = at % lines.length;
          lines.splice(n, 0, lines[n] ?? '');
          text = lines.join('\n');
        }
      }
      return text;
    });

  /** Deep nesting, flow or block, somewhere a value goes. */
  const deep = fc.tuple(fc.integer({ min: 50, max: 3000 }), fc.constantFrom('flow-seq', 'flow-map', 'block')).map(([n, style]) => {
    const head = 'version: 1\nname: deep\nsteps:\n  - id: a\n    kind: confirm\n    message: ok?\n    description: ';
    if (style === 'flow-seq') return `${head}${'['.repeat(n)}${']'.repeat(n)}\n`;
    if (style === 'flow-map') return `${head}${'{a: '.repeat(n)}1${'}'.repeat(n)}\n`;
    return `version: 1\nname: deep\nsteps:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i * 2)}- `).join('\n')}x\n`;
  });

  /** Alias bombs: each level repeats the one before `width` times. */
  const bomb = fc.tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 12 })).map(([levels, width]) => {
    const lines = ['version: 1', 'name: bomb', 'x0: &x0 [lol, lol]'];
    for (let i = 1; i < levels; i++) lines.push(`x${i}: &x${i} [${Array.from({ length: width }, () => `*x${i - 1}`).join(', ')}]`);
    lines.push('steps:', '  - id: a', '    kind: confirm', `    message: *x${levels - 1}`);
    return `${lines.join('\n')}\n`;
  });

  return fc.oneof({ weight: 6, arbitrary: structural }, { weight: 5, arbitrary: textual }, { weight: 1, arbitrary: deep }, { weight: 1, arbitrary: bomb });
}

export interface FuzzStats {
  readonly runs: number;
  readonly refused: number;
  readonly slowestMs: number;
}

/**
 * Validates `runs` generated runbooks in-process. Each must be accepted, or
 * refused with issues positioned inside the file and free of JavaScript
 * error names, within `caseCeilingMs`. Throws (with fast-check's shrunk
 * counter-example) otherwise.
 */
export function fuzzValidation(options: { readonly dir: string; readonly seed: number; readonly runs: number; readonly caseCeilingMs: number }): FuzzStats {
  const file = path.join(options.dir, 'fuzz.yaml');
  let refused = 0;
  let slowest = 0;
  fc.assert(
    fc.property(malformedRunbooks(options.dir), (text) => {
      const started = performance.now();
      let outcome: 'accepted' | RunbookValidationError;
      try {
        parseRunbook(text, file, { registry, env: ENV });
        outcome = 'accepted';
      } catch (error) {
        if (!(error instanceof RunbookValidationError)) {
          throw new Error(`not a validation error: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
        }
        outcome = error;
      }
      const elapsed = performance.now() - started;
      slowest = Math.max(slowest, elapsed);
      assert.ok(elapsed < options.caseCeilingMs, `a case took ${Math.round(elapsed)} ms (ceiling ${options.caseCeilingMs} ms)`);
      if (outcome === 'accepted') return;
      refused++;
      const lineCount = text.split('\n').length;
      assert.ok(outcome.issues.length > 0);
      for (const issue of outcome.issues) {
        assert.equal(issue.position.file, file);
        assert.ok(issue.position.line >= 1 && issue.position.line <= lineCount + 1, `line ${issue.position.line} of ${lineCount}`);
        assert.ok(issue.position.column >= 1, `column ${issue.position.column}`);
        assert.doesNotMatch(issue.message, JS_ERROR);
        assert.doesNotMatch(issue.path, JS_ERROR);
        // The last-resort catch in parseRunbook turns an unexpected exception into an issue; here it is a bug.
        assert.doesNotMatch(issue.message, /cannot validate the runbook/);
      }
    }),
    { seed: options.seed, numRuns: options.runs },
  );
  return { runs: options.runs, refused, slowestMs: slowest };
}
