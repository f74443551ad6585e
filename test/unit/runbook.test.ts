/**
 * Runbook loading: YAML syntax, schema, env interpolation and the whole-file
 * checks. Every rejection is checked for its exact position (1-based line and
 * column), its path and its message; the last tests run the compiled CLI.
 *
 * Runbooks are written as arrays of lines so a line number in an expectation
 * is the line's index + 1; HEADER is lines 1-7 and steps start at line 8.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RunbookValidationError, type ValidationIssue } from '../../src/errors.js';
import { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, parseRunbook, type Runbook } from '../../src/runbook/load.js';
import { registry } from '../../src/steps/index.js';

const FILE = 'cutover.yaml';

type Env = Readonly<Record<string, string>>;

/** Joins lines into a runbook text (with a final newline). */
function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

const HEADER = [
  'version: 1', // 1
  'name: test cutover', // 2
  'connections:', // 3
  '  db:', // 4
  '    kind: postgres', // 5
  '    host: localhost', // 6
  'steps:', // 7
];

/** A runbook with HEADER's connection `db`; the first step line is line 8. */
function withSteps(...stepLines: string[]): string {
  return yaml(...HEADER, ...stepLines);
}

function parse(text: string, env: Env = {}): Runbook {
  return parseRunbook(text, FILE, { registry, env });
}

/** The issues the runbook is rejected with; fails the test if it is accepted. */
function issuesOf(text: string, env: Env = {}): readonly ValidationIssue[] {
  try {
    parse(text, env);
  } catch (error) {
    assert.ok(error instanceof RunbookValidationError, `expected a RunbookValidationError, got: ${String(error)}`);
    assert.equal(error.file, FILE);
    return error.issues;
  }
  return assert.fail('expected the runbook to be rejected, but it was accepted');
}

interface ExpectedIssue {
  readonly line: number;
  readonly column: number;
  readonly path: string;
  /** Exact text, or a pattern for messages worded by the YAML parser. */
  readonly message: string | RegExp;
}

function show(issues: readonly ValidationIssue[]): string {
  return issues.map((i) => `  ${i.position.line}:${i.position.column} ${i.path}: ${i.message}`).join('\n');
}

/** Same issues, in the same order, at the same places. */
function assertIssues(actual: readonly ValidationIssue[], expected: readonly ExpectedIssue[]): void {
  assert.equal(actual.length, expected.length, `number of issues; got:\n${show(actual)}`);
  expected.forEach((want, n) => {
    const got = actual[n];
    assert.ok(got !== undefined);
    assert.equal(got.position.file, FILE);
    assert.deepEqual(
      { line: got.position.line, column: got.position.column, path: got.path },
      { line: want.line, column: want.column, path: want.path },
      `position/path of issue ${n}; got:\n${show(actual)}`,
    );
    if (typeof want.message === 'string') assert.equal(got.message, want.message);
    else assert.match(got.message, want.message);
  });
}

interface RejectCase {
  readonly name: string;
  readonly text: string;
  readonly env?: Env;
  readonly expected: readonly ExpectedIssue[];
}

function rejects(cases: readonly RejectCase[]): void {
  for (const c of cases) {
    it(c.name, () => assertIssues(issuesOf(c.text, c.env), c.expected));
  }
}

const KINDS =
  'sql, shell, confirm, wait, sequence-reset, slots-inventory, replication-caught-up, slot-drop, slot-create, subscriptions-disable, subscriptions-enable, subscription-detach, freeze-writes, compare, analyze, upgrade-precheck, pgbouncer, patroni, plan-check';
const RETRIES_NEED_IDEMPOTENT =
  'step "a": retries on a step with side effects outside a transaction needs "idempotent: true" (a retry would run it twice)';

describe('parseRunbook: YAML syntax errors', () => {
  rejects([
    {
      name: 'an unclosed flow sequence is reported where the parser expected the "]" (end of file)',
      text: withSteps(
        '  - id: a', // 8
        '    kind: shell', // 9
        '    command: [echo, hi', // 10
      ),
      expected: [
        { line: 11, column: 1, path: '(yaml)', message: /^Flow sequence in block collection must .*end with a \]$/ },
      ],
    },
    {
      name: 'mapping keys at different indentation are reported on the misindented line',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '  message: ok?', // 10
      ),
      expected: [{ line: 10, column: 1, path: '(yaml)', message: /^All mapping items must start at the same column$/ }],
    },
    {
      name: 'a tab used as indentation is reported on its line',
      text: withSteps(
        '  - id: a', // 8
        '\tkind: confirm', // 9
      ),
      expected: [{ line: 9, column: 1, path: '(yaml)', message: /^Tabs are not allowed as indentation$/ }],
    },
  ]);
});

describe('parseRunbook: duplicate keys', () => {
  rejects([
    {
      name: 'a duplicate key in a step points at the second occurrence',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
        '    sql: SELECT 1', // 11
        '    sql: SELECT 2', // 12
      ),
      expected: [{ line: 12, column: 5, path: '(yaml)', message: /^Map keys must be unique/ }],
    },
    {
      name: 'a duplicate top-level key points at the second occurrence',
      text: yaml(
        'version: 1', // 1
        'name: first', // 2
        'name: second', // 3
        'steps:', // 4
        '  - id: a', // 5
        '    kind: confirm', // 6
        '    message: ok?', // 7
      ),
      expected: [{ line: 3, column: 1, path: '(yaml)', message: /^Map keys must be unique/ }],
    },
  ]);
});

describe('parseRunbook: unknown keys', () => {
  rejects([
    {
      name: 'at top level, at the key',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'owner: me', // 3
        'steps:', // 4
        '  - id: a', // 5
        '    kind: confirm', // 6
        '    message: ok?', // 7
      ),
      expected: [{ line: 3, column: 1, path: 'owner', message: 'unknown key "owner"' }],
    },
    {
      name: 'at top level, with a suggestion for a typo',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'tickt: CHG-1', // 3
        'steps:', // 4
        '  - id: a', // 5
        '    kind: confirm', // 6
        '    message: ok?', // 7
      ),
      expected: [{ line: 3, column: 1, path: 'tickt', message: 'unknown key "tickt" (did you mean "ticket"?)' }],
    },
    {
      name: 'in a connection, at the key',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'connections:', // 3
        '  db:', // 4
        '    kind: postgres', // 5
        '    hostname: localhost', // 6
        'steps:', // 7
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
      ),
      expected: [{ line: 6, column: 5, path: 'connections.db.hostname', message: 'unknown key "hostname"' }],
    },
    {
      name: 'in a step, a misspelt base key gets a suggestion',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
        '    idempotnet: true', // 11
      ),
      expected: [
        { line: 11, column: 5, path: 'steps[0].idempotnet', message: 'step "a": unknown key "idempotnet" (did you mean "idempotent"?)' },
      ],
    },
  ]);

  it('in a step, a misspelt kind-specific key ("sqll") suggests "sql"', () => {
    const issues = issuesOf(
      withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
        '    sqll: SELECT 1', // 11
      ),
    );
    // The typo also leaves `sql` missing, which is the other issue.
    assert.equal(issues.length, 2, show(issues));
    const unknown = issues.find((i) => i.path === 'steps[0].sqll');
    assert.ok(unknown, show(issues));
    assert.deepEqual(unknown.position, { file: FILE, line: 11, column: 5 });
    assert.equal(unknown.message, 'step "a": unknown key "sqll" (did you mean "sql"?)');
  });
});

describe('parseRunbook: duplicate step ids', () => {
  rejects([
    {
      name: 'the second use is reported at its id value, naming the id and the line of the first use',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: one?', // 10
        '  - id: b', // 11
        '    kind: confirm', // 12
        '    message: two?', // 13
        '  - id: a', // 14
        '    kind: confirm', // 15
        '    message: three?', // 16
      ),
      expected: [{ line: 14, column: 9, path: 'steps[2].id', message: 'step "a": duplicate step id "a" (first used at line 8)' }],
    },
  ]);
});

describe('parseRunbook: wrong types, at the value', () => {
  rejects([
    {
      name: 'retries: "three"',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
        '    sql: SELECT 1', // 11
        '    retries: "three"', // 12
      ),
      expected: [
        { line: 12, column: 14, path: 'steps[0].retries', message: 'step "a": Invalid input: expected number, received string' },
      ],
    },
    {
      name: 'port: "x" in a connection',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'connections:', // 3
        '  db:', // 4
        '    kind: postgres', // 5
        '    port: "x"', // 6
        'steps:', // 7
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
      ),
      expected: [
        { line: 6, column: 11, path: 'connections.db.port', message: 'Invalid input: expected number, received string' },
      ],
    },
    {
      name: 'idempotent: "yes"',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
        '    idempotent: "yes"', // 11
      ),
      expected: [
        { line: 11, column: 17, path: 'steps[0].idempotent', message: 'step "a": Invalid input: expected boolean, received string' },
      ],
    },
    {
      name: 'a duration that is not one',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'defaults:', // 3
        '  lockTimeout: 5 minutes', // 4
        'steps:', // 5
        '  - id: a', // 6
        '    kind: confirm', // 7
        '    message: ok?', // 8
      ),
      expected: [
        {
          line: 4,
          column: 16,
          path: 'defaults.lockTimeout',
          message: 'expected a duration such as "250ms", "30s", "2min", "5 min", "1h" or "1d" (units: us, ms, s, min or m, h, d)',
        },
      ],
    },
  ]);
});

describe('parseRunbook: step kind', () => {
  rejects([
    {
      name: 'an unknown kind is reported at its value, naming it and listing the known kinds',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sqlx', // 9
        '    sql: SELECT 1', // 10
      ),
      expected: [{ line: 9, column: 11, path: 'steps[0].kind', message: `step "a": unknown step kind "sqlx" (did you mean "sql"?) (one of: ${KINDS})` }],
    },
    {
      name: 'a missing kind is reported at the step, listing the known kinds',
      text: withSteps(
        '  - id: a', // 8
        '    sql: SELECT 1', // 9
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0].kind', message: `step "a": missing key "kind" (one of: ${KINDS})` }],
    },
  ]);
});

describe('parseRunbook: missing required keys, at the enclosing mapping', () => {
  rejects([
    {
      name: 'a sql step without sql',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0].sql', message: 'step "a": missing required key "sql"' }],
    },
    {
      name: 'a wait step without expect',
      text: withSteps(
        '  - id: a', // 8
        '    kind: wait', // 9
        '    connection: db', // 10
        '    query: SELECT 1', // 11
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0].expect', message: 'step "a": missing required key "expect"' }],
    },
    {
      name: 'a wait step without query',
      text: withSteps(
        '  - id: a', // 8
        '    kind: wait', // 9
        '    connection: db', // 10
        '    expect: 1', // 11
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0].query', message: 'step "a": missing required key "query"' }],
    },
    {
      name: 'a confirm step without message',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0].message', message: 'step "a": missing required key "message"' }],
    },
    {
      name: 'a runbook without name',
      text: yaml(
        'version: 1', // 1
        'steps:', // 2
        '  - id: a', // 3
        '    kind: confirm', // 4
        '    message: ok?', // 5
      ),
      expected: [{ line: 1, column: 1, path: 'name', message: 'missing required key "name"' }],
    },
    {
      name: 'a runbook without version',
      text: yaml(
        'name: t', // 1
        'steps:', // 2
        '  - id: a', // 3
        '    kind: confirm', // 4
        '    message: ok?', // 5
      ),
      expected: [{ line: 1, column: 1, path: 'version', message: 'missing required key "version"' }],
    },
  ]);
});

describe('parseRunbook: connection references', () => {
  rejects([
    {
      name: 'an unknown connection is reported at the reference, listing the defined ones',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: dbb', // 10
        '    sql: SELECT 1', // 11
      ),
      expected: [{ line: 10, column: 17, path: 'steps[0].connection', message: 'step "a": unknown connection "dbb" (did you mean "db"?) (defined: db)' }],
    },
    {
      name: 'an unknown connection when none are defined says so',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'steps:', // 3
        '  - id: a', // 4
        '    kind: sql', // 5
        '    connection: db', // 6
        '    sql: SELECT 1', // 7
      ),
      expected: [
        { line: 6, column: 17, path: 'steps[0].connection', message: 'step "a": unknown connection "db" (no connections are defined)' },
      ],
    },
    {
      name: 'a connection of the wrong kind is reported at the reference',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'connections:', // 3
        '  legacy:', // 4
        '    kind: oracle', // 5
        '    connectString: db.example:1521/ORCL', // 6
        '    user: app', // 7
        'steps:', // 8
        '  - id: a', // 9
        '    kind: sql', // 10
        '    connection: legacy', // 11
        '    sql: SELECT 1', // 12
      ),
      expected: [
        {
          line: 11,
          column: 17,
          path: 'steps[0].connection',
          message: 'step "a": connection "legacy" is oracle; a sql step needs postgres',
        },
      ],
    },
    {
      name: 'a sql step without a connection is reported at the step',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    sql: SELECT 1', // 10
      ),
      expected: [{ line: 8, column: 5, path: 'steps[0]', message: 'step "a": a sql step needs "connection"' }],
    },
    {
      name: 'a wait step without a connection is reported at the step',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
        '  - id: b', // 11
        '    kind: wait', // 12
        '    query: SELECT 1', // 13
        '    expect: 1', // 14
      ),
      expected: [{ line: 11, column: 5, path: 'steps[1]', message: 'step "b": a wait step needs "connection"' }],
    },
  ]);
});

describe('parseRunbook: ${NAME} interpolation errors, at the scalar', () => {
  rejects([
    {
      name: 'an unset variable in a step',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
        '    sql: SELECT ${MISSING_VAR}', // 11
      ),
      env: { OTHER_VAR: 'x' },
      expected: [{ line: 11, column: 10, path: 'steps[0].sql', message: 'unset variable MISSING_VAR: the environment variable MISSING_VAR is not set' }],
    },
    {
      name: 'an unset variable in a quoted connection url',
      text: yaml(
        'version: 1', // 1
        'name: t', // 2
        'connections:', // 3
        '  db:', // 4
        '    kind: postgres', // 5
        '    url: "${DB_URL}"', // 6
        'steps:', // 7
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ok?', // 10
      ),
      expected: [{ line: 6, column: 10, path: 'connections.db.url', message: 'unset variable DB_URL: the environment variable DB_URL is not set' }],
    },
    {
      name: 'an unset variable inside a flow sequence item',
      text: withSteps(
        '  - id: a', // 8
        '    kind: shell', // 9
        '    command: [echo, "${NOPE}"]', // 10
      ),
      expected: [{ line: 10, column: 21, path: 'steps[0].command[1]', message: 'unset variable NOPE: the environment variable NOPE is not set' }],
    },
    {
      // PATH is set in any test process: the env passed in is the only source.
      name: 'only the env passed in counts, not process.env',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: ${PATH}', // 10
      ),
      env: {},
      expected: [{ line: 10, column: 14, path: 'steps[0].message', message: 'unset variable PATH: the environment variable PATH is not set' }],
    },
    {
      name: 'a malformed reference explains the syntax',
      text: withSteps(
        '  - id: a', // 8
        '    kind: confirm', // 9
        '    message: cost ${1X}', // 10
      ),
      expected: [
        {
          line: 10,
          column: 14,
          path: 'steps[0].message',
          message: '"${1X" is not a valid reference: write ${NAME} or ${secret:NAME} (letters, digits, _), or $${ for a literal "${"',
        },
      ],
    },
  ]);
});

describe('parseRunbook: retries on steps with external side effects', () => {
  rejects([
    {
      name: 'a shell step with retries and without idempotent: true',
      text: withSteps(
        '  - id: a', // 8
        '    kind: shell', // 9
        '    command: [./switch.sh]', // 10
        '    retries: 2', // 11
      ),
      expected: [{ line: 11, column: 14, path: 'steps[0].retries', message: RETRIES_NEED_IDEMPOTENT }],
    },
    {
      name: 'a shell step with retries and idempotent: false',
      text: withSteps(
        '  - id: a', // 8
        '    kind: shell', // 9
        '    command: [./switch.sh]', // 10
        '    idempotent: false', // 11
        '    retries: 1', // 12
      ),
      expected: [{ line: 12, column: 14, path: 'steps[0].retries', message: RETRIES_NEED_IDEMPOTENT }],
    },
    {
      name: 'a sql step outside a transaction with retries',
      text: withSteps(
        '  - id: a', // 8
        '    kind: sql', // 9
        '    connection: db', // 10
        '    transaction: false', // 11
        '    sql: CREATE INDEX CONCURRENTLY i ON t (c)', // 12
        '    retries: 3', // 13
      ),
      expected: [{ line: 13, column: 14, path: 'steps[0].retries', message: RETRIES_NEED_IDEMPOTENT }],
    },
  ]);

  it('accepts retries on an idempotent shell step, a read-only one, and a transactional sql step', () => {
    const runbook = parse(
      withSteps(
        '  - id: idempotent-shell',
        '    kind: shell',
        '    command: [./switch.sh]',
        '    idempotent: true',
        '    retries: 2',
        '  - id: read-only-shell',
        '    kind: shell',
        '    command: [./check.sh]',
        '    readOnly: true',
        '    retries: 2',
        '  - id: transactional-sql',
        '    kind: sql',
        '    connection: db',
        '    sql: UPDATE t SET c = 1',
        '    retries: 2',
      ),
    );
    assert.deepEqual(
      runbook.steps.map((s) => [s.id, s.retries, s.idempotent]),
      [
        ['idempotent-shell', 2, true],
        ['read-only-shell', 2, false],
        ['transactional-sql', 2, false],
      ],
    );
  });
});

describe('parseRunbook: several problems in one file', () => {
  it('reports every schema and interpolation problem at once, sorted by line then column', () => {
    const issues = issuesOf(
      yaml(
        'version: 1', // 1
        'name: multi', // 2
        'owner: me', // 3  unknown key
        'connections:', // 4
        '  db:', // 5
        '    kind: postgres', // 6
        '    port: "x"', // 7  wrong type
        '    password: ${DB_PASSWORD}', // 8  unset variable
        'steps:', // 9
        '  - id: wait-a', // 10 missing query (reported at the step)
        '    kind: wait', // 11
        '    connection: db', // 12
        '    expect: 1', // 13
        '    retries: "three"', // 14 wrong type
        '  - id: gate', // 15 missing message (reported at the step)
        '    kind: confirm', // 16
        '    mesage: ok?', // 17 unknown key
      ),
    );
    assertIssues(issues, [
      { line: 3, column: 1, path: 'owner', message: 'unknown key "owner"' },
      { line: 7, column: 11, path: 'connections.db.port', message: 'Invalid input: expected number, received string' },
      { line: 8, column: 15, path: 'connections.db.password', message: 'unset variable DB_PASSWORD: the environment variable DB_PASSWORD is not set' },
      { line: 10, column: 5, path: 'steps[0].query', message: 'step "wait-a": missing required key "query"' },
      { line: 14, column: 14, path: 'steps[0].retries', message: 'step "wait-a": Invalid input: expected number, received string' },
      { line: 15, column: 5, path: 'steps[1].message', message: 'step "gate": missing required key "message"' },
      { line: 17, column: 5, path: 'steps[1].mesage', message: 'step "gate": unknown key "mesage" (did you mean "message"?)' },
    ]);
  });

  it('reports every whole-file and interpolation problem at once, sorted by line then column', () => {
    const issues = issuesOf(
      withSteps(
        '  - id: copy', // 8
        '    kind: sql', // 9
        '    connection: replica', // 10 unknown connection
        '    sql: SELECT ${UNSET_A}', // 11 unset variable
        '  - id: copy', // 12 duplicate id
        '    kind: shell', // 13
        '    command: [sync, "${UNSET_B}", "${UNSET_C}"]', // 14 two unset variables
        '    retries: 1', // 15 retries without idempotent
        '  - id: poll', // 16 no connection
        '    kind: wait', // 17
        '    query: SELECT 1', // 18
        '    expect: 1', // 19
      ),
    );
    assertIssues(issues, [
      { line: 10, column: 17, path: 'steps[0].connection', message: 'step "copy": unknown connection "replica" (defined: db)' },
      { line: 11, column: 10, path: 'steps[0].sql', message: 'unset variable UNSET_A: the environment variable UNSET_A is not set' },
      { line: 12, column: 9, path: 'steps[1].id', message: 'step "copy": duplicate step id "copy" (first used at line 8)' },
      { line: 14, column: 21, path: 'steps[1].command[1]', message: 'unset variable UNSET_B: the environment variable UNSET_B is not set' },
      { line: 14, column: 35, path: 'steps[1].command[2]', message: 'unset variable UNSET_C: the environment variable UNSET_C is not set' },
      { line: 15, column: 14, path: 'steps[1].retries', message: RETRIES_NEED_IDEMPOTENT.replace('"a"', '"copy"') },
      { line: 16, column: 5, path: 'steps[2]', message: 'step "poll": a wait step needs "connection"' },
    ]);
  });
});

describe('parseRunbook: valid runbooks', () => {
  const ALL_KINDS = yaml(
    'version: 1', // 1
    'name: all kinds', // 2
    'description: one step of each kind', // 3
    'ticket: CHG-42', // 4
    'connections:', // 5
    '  target:', // 6
    '    kind: postgres', // 7
    '    url: ${TARGET_URL}', // 8
    'defaults:', // 9
    '  lockTimeout: 2s', // 10
    '  statementTimeout: 5m', // 11
    '  onFailure: stop', // 12
    'steps:', // 13
    '  - id: rows-copied', // 14
    '    kind: wait', // 15
    '    connection: target', // 16
    '    query: SELECT count(*) FROM orders', // 17
    '    expect: 3', // 18
    '    interval: 1s', // 19
    '    timeout: 30s', // 20
    '  - id: add-column', // 21
    '    kind: sql', // 22
    '    description: add the audit column', // 23
    '    connection: target', // 24
    '    sql: ALTER TABLE orders ADD COLUMN migrated_at timestamptz', // 25
    '    rollback: ALTER TABLE orders DROP COLUMN migrated_at', // 26
    '    verify:', // 27
    '      query: SELECT 1', // 28
    '      expect: 1', // 29
    '  - id: gate', // 30
    '    kind: confirm', // 31
    '    message: Point the application at the new database?', // 32
    '  - id: announce', // 33
    '    kind: shell', // 34
    '    command: [echo, switched]', // 35
    '    env:', // 36
    '      CHANNEL: ops', // 37
    '    readOnly: true', // 38
  );

  it('parses a runbook with all four kinds', () => {
    const runbook = parse(ALL_KINDS, { TARGET_URL: 'postgres://app@db.example/orders' });
    assert.equal(runbook.file, FILE);
    assert.equal(runbook.name, 'all kinds');
    assert.equal(runbook.description, 'one step of each kind');
    assert.equal(runbook.ticket, 'CHG-42');
    assert.deepEqual(runbook.connections, { target: { kind: 'postgres', url: 'postgres://app@db.example/orders' } });
    assert.deepEqual(runbook.defaults, { lockTimeoutMs: 2_000, statementTimeoutMs: 300_000, onFailure: 'stop' });
    assert.deepEqual(
      runbook.steps.map((s) => ({ id: s.id, kind: s.kind, line: s.line, connection: s.connection })),
      [
        { id: 'rows-copied', kind: 'wait', line: 14, connection: 'target' },
        { id: 'add-column', kind: 'sql', line: 21, connection: 'target' },
        { id: 'gate', kind: 'confirm', line: 30, connection: undefined },
        { id: 'announce', kind: 'shell', line: 33, connection: undefined },
      ],
    );
    assert.deepEqual(
      runbook.steps.map((s) => s.config),
      [
        { query: 'SELECT count(*) FROM orders', expect: 3, interval: 1_000 },
        {
          sql: 'ALTER TABLE orders ADD COLUMN migrated_at timestamptz',
          rollback: 'ALTER TABLE orders DROP COLUMN migrated_at',
          verify: { query: 'SELECT 1', expect: 1 },
        },
        { message: 'Point the application at the new database?' },
        { command: ['echo', 'switched'], env: { CHANNEL: 'ops' }, readOnly: true },
      ],
    );
    assert.equal(runbook.steps[0]?.timeoutMs, 30_000);
    assert.equal(runbook.steps[1]?.description, 'add the audit column');
    assert.match(runbook.sha256, /^[0-9a-f]{64}$/);
  });

  it('uses the default timeouts and onFailure when there are no defaults', () => {
    const runbook = parse(yaml('version: 1', 'name: t', 'steps:', '  - id: a', '    kind: confirm', '    message: ok?'));
    assert.deepEqual(runbook.defaults, {
      lockTimeoutMs: DEFAULT_LOCK_TIMEOUT_MS,
      statementTimeoutMs: DEFAULT_STATEMENT_TIMEOUT_MS,
      onFailure: 'rollback',
    });
    assert.deepEqual(runbook.connections, {});
    assert.equal(runbook.steps[0]?.timeoutMs, undefined);
  });

  describe('durations become milliseconds', () => {
    const durations: ReadonlyArray<readonly [written: string, ms: number]> = [
      ['"30s"', 30_000],
      ['"5m"', 300_000],
      ['1500', 1_500],
      ['500ms', 500],
      ['1h', 3_600_000],
      ['1.5s', 1_500],
      ['0', 0],
      // PostgreSQL's own units, with or without a space.
      ['1min', 60_000],
      ['2 min', 120_000],
      ['"5 min"', 300_000],
      ['250ms', 250],
      ['1d', 86_400_000],
      ['1500us', 2],
      ['1us', 1],
      ['3 s', 3_000],
      ['2147483647', 2_147_483_647],
    ];
    for (const [written, ms] of durations) {
      it(`${written} -> ${ms} in timeoutMs, defaults.lockTimeoutMs, defaults.statementTimeoutMs and a wait interval`, () => {
        const runbook = parse(
          yaml(
            'version: 1',
            'name: t',
            'connections:',
            '  db: { kind: postgres }',
            'defaults:',
            `  lockTimeout: ${written}`,
            `  statementTimeout: ${written}`,
            'steps:',
            '  - id: a',
            '    kind: wait',
            '    connection: db',
            '    query: SELECT 1',
            '    expect: 1',
            `    timeout: ${written}`,
            `    interval: ${written}`,
          ),
        );
        assert.equal(runbook.steps[0]?.timeoutMs, ms);
        assert.equal(runbook.steps[0]?.config['interval'], ms);
        assert.equal(runbook.defaults.lockTimeoutMs, ms);
        assert.equal(runbook.defaults.statementTimeoutMs, ms);
      });
    }
  });

  describe('durations beyond what a timer or PostgreSQL accepts are refused at their position', () => {
    const tooLong: ReadonlyArray<readonly [written: string, message: string]> = [
      ['2147483648', 'at most 2147483647 ms (24.8 days)'],
      ['9999999999999', 'at most 2147483647 ms (24.8 days)'],
      ['25d', '25d is more than 2147483647 ms (24.8 days), the largest timeout accepted'],
      ['999999999999999h', '999999999999999h is more than 2147483647 ms (24.8 days), the largest timeout accepted'],
    ];
    for (const [written, message] of tooLong) {
      it(`timeout: ${written}`, () => {
        assertIssues(issuesOf(withSteps('  - id: a', '    kind: confirm', '    message: ok?', `    timeout: ${written}`)), [
          { line: 11, column: 14, path: 'steps[0].timeout', message: `step "a": ${message}` },
        ]);
      });
    }
    it('defaults.lockTimeout and statementTimeout too', () => {
      const issues = issuesOf(
        yaml('version: 1', 'name: t', 'defaults:', '  lockTimeout: 3000000000', '  statementTimeout: 30d', 'steps:', '  - id: a', '    kind: confirm', '    message: ok?'),
      );
      assertIssues(issues, [
        { line: 4, column: 16, path: 'defaults.lockTimeout', message: 'at most 2147483647 ms (24.8 days)' },
        { line: 5, column: 21, path: 'defaults.statementTimeout', message: '30d is more than 2147483647 ms (24.8 days), the largest timeout accepted' },
      ]);
    });
  });

  it('turns confirm: true into a question naming the step, and keeps a string as written', () => {
    const runbook = parse(
      withSteps(
        '  - id: drop-old',
        '    kind: sql',
        '    connection: db',
        '    sql: DROP TABLE old_orders',
        '    confirm: true',
        '  - id: own-question',
        '    kind: sql',
        '    connection: db',
        '    sql: DROP TABLE old_items',
        '    confirm: Really drop old_items?',
        '  - id: no-question',
        '    kind: sql',
        '    connection: db',
        '    sql: SELECT 1',
        '    confirm: false',
      ),
    );
    assert.deepEqual(
      runbook.steps.map((s) => s.confirm),
      ['apply step "drop-old"?', 'Really drop old_items?', undefined],
    );
    assert.ok(!('confirm' in (runbook.steps[2] ?? {})), 'confirm: false leaves no question');
  });

  it('replaces ${NAME} from the env given, and $${ writes a literal ${', () => {
    const runbook = parse(
      withSteps(
        '  - id: a',
        '    kind: shell',
        '    command: [echo, "$${HOME}", "${GREETING}", "a $${b} ${GREETING}!"]',
      ),
      { GREETING: 'hello', HOME: '/should/not/be/used' },
    );
    assert.deepEqual(runbook.steps[0]?.config['command'], ['echo', '${HOME}', 'hello', 'a ${b} hello!']);
  });

  it('puts kind-specific fields in step.config and keeps base fields out of it', () => {
    const runbook = parse(
      withSteps(
        '  - id: move-rows',
        '    kind: sql',
        '    description: copy the rows',
        '    connection: db',
        '    timeout: 10s',
        '    retries: 2',
        '    idempotent: true',
        '    confirm: Go?',
        '    transaction: false',
        '    sql: [INSERT INTO a SELECT * FROM b, DELETE FROM b]',
        '    rollback: DELETE FROM a',
      ),
    );
    const step = runbook.steps[0];
    assert.ok(step);
    assert.deepEqual(step.config, {
      transaction: false,
      sql: ['INSERT INTO a SELECT * FROM b', 'DELETE FROM b'],
      rollback: 'DELETE FROM a',
    });
    for (const base of ['id', 'kind', 'description', 'connection', 'timeout', 'retries', 'idempotent', 'confirm']) {
      assert.ok(!(base in step.config), `${base} must not be in config`);
    }
    assert.deepEqual(
      {
        id: step.id,
        kind: step.kind,
        description: step.description,
        connection: step.connection,
        timeoutMs: step.timeoutMs,
        retries: step.retries,
        idempotent: step.idempotent,
        confirm: step.confirm,
      },
      {
        id: 'move-rows',
        kind: 'sql',
        description: 'copy the rows',
        connection: 'db',
        timeoutMs: 10_000,
        retries: 2,
        idempotent: true,
        confirm: 'Go?',
      },
    );
  });
});

describe('cutover validate (compiled CLI)', () => {
  // This file runs from dist/test/unit/; the CLI is dist/src/cli/main.js.
  const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

  function validate(text: string): { code: number | null; stdout: string; stderr: string; file: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-runbook-test-'));
    try {
      const file = path.join(dir, 'cutover.yaml');
      writeFileSync(file, text);
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env['CUTOVER_DEBUG'];
      const result = spawnSync(process.execPath, [CLI, 'validate', file], { encoding: 'utf8', env, timeout: 30_000 });
      return { code: result.status, stdout: result.stdout, stderr: result.stderr, file };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('exits 2 on an invalid runbook and prints file:line:col: path: message for each problem, without a stack trace', () => {
    const { code, stdout, stderr, file } = validate(
      yaml(
        'version: 1', // 1
        'name: broken', // 2
        'owner: me', // 3
        'connections:', // 4
        '  db:', // 5
        '    kind: postgres', // 6
        '    port: "x"', // 7
        'steps:', // 8
        '  - id: a', // 9
        '    kind: sql', // 10
        '    connection: db', // 11
        '    sql: SELECT 1', // 12
        '    retries: "three"', // 13
      ),
    );
    assert.equal(code, 2, `stderr:\n${stderr}`);
    assert.equal(stdout, '');
    const expected = [
      `${file}:3:1: owner: unknown key "owner"`,
      `${file}:7:11: connections.db.port: Invalid input: expected number, received string`,
      `${file}:13:14: steps[0].retries: step "a": Invalid input: expected number, received string`,
    ];
    const lines = stderr.trimEnd().split('\n');
    assert.deepEqual(lines, [...expected, `3 problems in ${file}`]);
    assert.doesNotMatch(stderr, /^ {4}at /m, 'no stack trace');
  });

  it('exits 0 on a valid runbook and names its steps', () => {
    const { code, stdout, stderr, file } = validate(
      yaml('version: 1', 'name: fine', 'steps:', '  - id: gate', '    kind: confirm', '    message: ok?'),
    );
    assert.equal(code, 0, `stderr:\n${stderr}`);
    assert.equal(stderr, '');
    assert.equal(stdout, `${file}: valid: "fine", 1 step(s): gate [confirm]\n`);
  });
});
