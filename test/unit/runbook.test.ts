/**
 * Runbook loading: YAML syntax, schema, env interpolation and the whole-file
 * checks. Every rejection is checked for its exact position (1-based line and
 * column), its path and its message; the last tests run the compiled CLI.
 *
 * Expected problems are written under the YAML they are about: a marker line
 * `^ path: message` points at the line above, at the caret's column (see
 * test/helpers/runbook.ts), and is not part of the runbook. A message between
 * slashes is a pattern (for wording that belongs to the YAML parser). In these
 * templates a YAML `${NAME}` is written `\${NAME}`; a caret still sits under
 * the character it means.
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
import { marked, runbookFile, type Mark, type MarkedText } from '../helpers/runbook.js';

const FILE = 'cutover.yaml';

type Env = Readonly<Record<string, string>>;

/** The header most cases share: the connection `db`, then `steps:`. */
const HEADER = `version: 1
name: test cutover
connections:
  db:
    kind: postgres
    host: localhost
steps:
`;

/** One confirm step, for runbooks whose problem is above the steps. */
const ONE_STEP = `steps:
  - id: a
    kind: confirm
    message: ok?`;

/** A runbook of HEADER and these step lines (marker lines allowed); a tag, like `marked`. */
function withSteps(template: TemplateStringsArray, ...values: readonly unknown[]): MarkedText {
  const [first = '', ...rest] = template.raw;
  const raw = [HEADER + first.replace(/^\n/, ''), ...rest];
  return marked(Object.assign([...raw], { raw }), ...values);
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

/** A marker's label `path: message` (or `path: /pattern/`) at the marker's place. */
function expectedAt(mark: Mark): ExpectedIssue {
  const split = mark.label.indexOf(': ');
  assert.ok(split > 0, `marker "${mark.label}" should read "path: message"`);
  const message = mark.label.slice(split + 2);
  const pattern = /^\/(.*)\/$/.exec(message);
  return {
    line: mark.line,
    column: mark.column,
    path: mark.label.slice(0, split),
    message: pattern === null ? message : new RegExp(pattern[1] ?? ''),
  };
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

/** The runbook is rejected with exactly the problems its marker lines name, in their order. */
function assertMarkedIssues(doc: MarkedText, env: Env = {}): void {
  assert.ok(doc.marks.length > 0, 'a rejected runbook needs at least one marker');
  assertIssues(issuesOf(doc.text, env), doc.marks.map(expectedAt));
}

interface RejectCase {
  readonly name: string;
  readonly doc: MarkedText;
  readonly env?: Env;
}

function rejects(cases: readonly RejectCase[]): void {
  for (const c of cases) {
    it(c.name, () => {
      assertMarkedIssues(c.doc, c.env);
    });
  }
}

const KINDS =
  'sql, shell, confirm, wait, sequence-reset, slots-inventory, replication-caught-up, slot-drop, slot-create, subscriptions-disable, subscriptions-enable, subscription-detach, freeze-writes, compare, analyze, upgrade-precheck, pgbouncer, patroni, plan-check';
const RETRIES_NEED_IDEMPOTENT = 'step "a": retries on a step with side effects outside a transaction needs "idempotent: true" (a retry would run it twice)';

describe('parseRunbook: YAML syntax errors', () => {
  it('an unclosed flow sequence is reported where the parser expected the "]" (end of file)', () => {
    const doc = withSteps`
  - id: a
    kind: shell
    command: [echo, hi
`;
    assertIssues(issuesOf(doc.text), [{ ...doc.end, path: '(yaml)', message: /^Flow sequence in block collection must .*end with a \]$/ }]);
  });

  rejects([
    {
      name: 'mapping keys at different indentation are reported on the misindented line',
      doc: withSteps`
  - id: a
    kind: confirm
  message: ok?
^ (yaml): /^All mapping items must start at the same column$/
`,
    },
    {
      name: 'a tab used as indentation is reported on its line',
      doc: withSteps`
  - id: a
\tkind: confirm
^ (yaml): /^Tabs are not allowed as indentation$/
`,
    },
  ]);
});

describe('parseRunbook: duplicate keys', () => {
  rejects([
    {
      name: 'a duplicate key in a step points at the second occurrence',
      doc: withSteps`
  - id: a
    kind: sql
    connection: db
    sql: SELECT 1
    sql: SELECT 2
    ^ (yaml): /^Map keys must be unique/
`,
    },
    {
      name: 'a duplicate top-level key points at the second occurrence',
      doc: marked`
version: 1
name: first
name: second
^ (yaml): /^Map keys must be unique/
${ONE_STEP}
`,
    },
  ]);
});

describe('parseRunbook: unknown keys', () => {
  rejects([
    {
      name: 'at top level, at the key',
      doc: marked`
version: 1
name: t
owner: me
^ owner: unknown key "owner"
${ONE_STEP}
`,
    },
    {
      name: 'at top level, with a suggestion for a typo',
      doc: marked`
version: 1
name: t
tickt: CHG-1
^ tickt: unknown key "tickt" (did you mean "ticket"?)
${ONE_STEP}
`,
    },
    {
      name: 'in a connection, at the key',
      doc: marked`
version: 1
name: t
connections:
  db:
    kind: postgres
    hostname: localhost
    ^ connections.db.hostname: unknown key "hostname"
${ONE_STEP}
`,
    },
    {
      name: 'in a step, a misspelt base key gets a suggestion',
      doc: withSteps`
  - id: a
    kind: confirm
    message: ok?
    idempotnet: true
    ^ steps[0].idempotnet: step "a": unknown key "idempotnet" (did you mean "idempotent"?)
`,
    },
  ]);

  it('in a step, a misspelt kind-specific key ("sqll") suggests "sql"', () => {
    const doc = withSteps`
  - id: a
    kind: sql
    connection: db
    sqll: SELECT 1
    ^
`;
    const issues = issuesOf(doc.text);
    // The typo also leaves `sql` missing, which is the other issue.
    assert.equal(issues.length, 2, show(issues));
    const unknown = issues.find((i) => i.path === 'steps[0].sqll');
    assert.ok(unknown, show(issues));
    const [at] = doc.marks;
    assert.deepEqual(unknown.position, { file: FILE, line: at?.line, column: at?.column });
    assert.equal(unknown.message, 'step "a": unknown key "sqll" (did you mean "sql"?)');
  });
});

describe('parseRunbook: duplicate step ids', () => {
  it('the second use is reported at its id value, naming the id and the line of the first use', () => {
    const doc = withSteps`
  - id: a
    kind: confirm
    message: one?
  - id: b
    kind: confirm
    message: two?
  - id: a
        ^
    kind: confirm
    message: three?
`;
    const [at] = doc.marks;
    assert.ok(at);
    assertIssues(issuesOf(doc.text), [
      { line: at.line, column: at.column, path: 'steps[2].id', message: `step "a": duplicate step id "a" (first used at line ${doc.lineOf('  - id: a')})` },
    ]);
  });
});

describe('parseRunbook: wrong types, at the value', () => {
  rejects([
    {
      name: 'retries: "three"',
      doc: withSteps`
  - id: a
    kind: sql
    connection: db
    sql: SELECT 1
    retries: "three"
             ^ steps[0].retries: step "a": Invalid input: expected number, received string
`,
    },
    {
      name: 'port: "x" in a connection',
      doc: marked`
version: 1
name: t
connections:
  db:
    kind: postgres
    port: "x"
          ^ connections.db.port: Invalid input: expected number, received string
${ONE_STEP}
`,
    },
    {
      name: 'idempotent: "yes"',
      doc: withSteps`
  - id: a
    kind: confirm
    message: ok?
    idempotent: "yes"
                ^ steps[0].idempotent: step "a": Invalid input: expected boolean, received string
`,
    },
    {
      name: 'sql: a number, not a statement',
      doc: withSteps`
  - id: a
    kind: sql
    connection: db
    sql: 42
         ^ steps[0].sql: step "a": expected an SQL statement (a string) or a list of them
`,
    },
    {
      name: 'a duration that is not one',
      doc: marked`
version: 1
name: t
defaults:
  lockTimeout: 5 minutes
               ^ defaults.lockTimeout: expected a duration such as "250ms", "30s", "2min", "5 min", "1h" or "1d" (units: us, ms, s, min or m, h, d)
${ONE_STEP}
`,
    },
  ]);
});

describe('parseRunbook: step kind', () => {
  rejects([
    {
      name: 'an unknown kind is reported at its value, naming it and listing the known kinds',
      doc: withSteps`
  - id: a
    kind: sqlx
          ^ steps[0].kind: step "a": unknown step kind "sqlx" (did you mean "sql"?) (one of: ${KINDS})
    sql: SELECT 1
`,
    },
    {
      name: 'a missing kind is reported at the step, listing the known kinds',
      doc: withSteps`
  - id: a
    ^ steps[0].kind: step "a": missing key "kind" (one of: ${KINDS})
    sql: SELECT 1
`,
    },
  ]);
});

describe('parseRunbook: missing required keys, at the enclosing mapping', () => {
  rejects([
    {
      name: 'a sql step without sql',
      doc: withSteps`
  - id: a
    ^ steps[0].sql: step "a": missing required key "sql"
    kind: sql
    connection: db
`,
    },
    {
      name: 'a wait step without expect',
      doc: withSteps`
  - id: a
    ^ steps[0].expect: step "a": missing required key "expect"
    kind: wait
    connection: db
    query: SELECT 1
`,
    },
    {
      name: 'a wait step without query',
      doc: withSteps`
  - id: a
    ^ steps[0].query: step "a": missing required key "query"
    kind: wait
    connection: db
    expect: 1
`,
    },
    {
      name: 'a confirm step without message',
      doc: withSteps`
  - id: a
    ^ steps[0].message: step "a": missing required key "message"
    kind: confirm
`,
    },
    {
      name: 'a runbook without name',
      doc: marked`
version: 1
^ name: missing required key "name"
${ONE_STEP}
`,
    },
    {
      name: 'a runbook without version',
      doc: marked`
name: t
^ version: missing required key "version"
${ONE_STEP}
`,
    },
  ]);
});

describe('parseRunbook: connection references', () => {
  rejects([
    {
      name: 'an unknown connection is reported at the reference, listing the defined ones',
      doc: withSteps`
  - id: a
    kind: sql
    connection: dbb
                ^ steps[0].connection: step "a": unknown connection "dbb" (did you mean "db"?) (defined: db)
    sql: SELECT 1
`,
    },
    {
      name: 'an unknown connection when none are defined says so',
      doc: marked`
version: 1
name: t
steps:
  - id: a
    kind: sql
    connection: db
                ^ steps[0].connection: step "a": unknown connection "db" (no connections are defined)
    sql: SELECT 1
`,
    },
    {
      name: 'a connection of the wrong kind is reported at the reference',
      doc: marked`
version: 1
name: t
connections:
  legacy:
    kind: oracle
    connectString: db.example:1521/ORCL
    user: app
steps:
  - id: a
    kind: sql
    connection: legacy
                ^ steps[0].connection: step "a": connection "legacy" is oracle; a sql step needs postgres
    sql: SELECT 1
`,
    },
    {
      name: 'a sql step without a connection is reported at the step',
      doc: withSteps`
  - id: a
    ^ steps[0]: step "a": a sql step needs "connection"
    kind: sql
    sql: SELECT 1
`,
    },
    {
      name: 'a wait step without a connection is reported at the step',
      doc: withSteps`
  - id: a
    kind: confirm
    message: ok?
  - id: b
    ^ steps[1]: step "b": a wait step needs "connection"
    kind: wait
    query: SELECT 1
    expect: 1
`,
    },
  ]);
});

describe('parseRunbook: ${NAME} interpolation errors, at the scalar', () => {
  rejects([
    {
      name: 'an unset variable in a step',
      doc: withSteps`
  - id: a
    kind: sql
    connection: db
    sql: SELECT \${MISSING_VAR}
         ^ steps[0].sql: unset variable MISSING_VAR: the environment variable MISSING_VAR is not set
`,
      env: { OTHER_VAR: 'x' },
    },
    {
      name: 'an unset variable in a quoted connection url',
      doc: marked`
version: 1
name: t
connections:
  db:
    kind: postgres
    url: "\${DB_URL}"
         ^ connections.db.url: unset variable DB_URL: the environment variable DB_URL is not set
${ONE_STEP}
`,
    },
    {
      name: 'an unset variable inside a flow sequence item',
      doc: withSteps`
  - id: a
    kind: shell
    command: [echo, "\${NOPE}"]
                    ^ steps[0].command[1]: unset variable NOPE: the environment variable NOPE is not set
`,
    },
    {
      // PATH is set in any test process: the env passed in is the only source.
      name: 'only the env passed in counts, not process.env',
      doc: withSteps`
  - id: a
    kind: confirm
    message: \${PATH}
             ^ steps[0].message: unset variable PATH: the environment variable PATH is not set
`,
      env: {},
    },
    {
      name: 'a malformed reference explains the syntax',
      doc: withSteps`
  - id: a
    kind: confirm
    message: cost \${1X}
             ^ steps[0].message: "\${1X" is not a valid reference: write \${NAME} or \${secret:NAME} (letters, digits, _), with :literal for a SQL string literal, or $\${ for a literal "\${"
`,
    },
  ]);
});

describe('parseRunbook: retries on steps with external side effects', () => {
  rejects([
    {
      name: 'a shell step with retries and without idempotent: true',
      doc: withSteps`
  - id: a
    kind: shell
    command: [./switch.sh]
    retries: 2
             ^ steps[0].retries: ${RETRIES_NEED_IDEMPOTENT}
`,
    },
    {
      name: 'a shell step with retries and idempotent: false',
      doc: withSteps`
  - id: a
    kind: shell
    command: [./switch.sh]
    idempotent: false
    retries: 1
             ^ steps[0].retries: ${RETRIES_NEED_IDEMPOTENT}
`,
    },
    {
      name: 'a sql step outside a transaction with retries',
      doc: withSteps`
  - id: a
    kind: sql
    connection: db
    transaction: false
    sql: CREATE INDEX CONCURRENTLY i ON t (c)
    retries: 3
             ^ steps[0].retries: ${RETRIES_NEED_IDEMPOTENT}
`,
    },
  ]);

  it('accepts retries on an idempotent shell step, a read-only one, and a transactional sql step', () => {
    const runbook = parse(
      withSteps`
  - id: idempotent-shell
    kind: shell
    command: [./switch.sh]
    idempotent: true
    retries: 2
  - id: read-only-shell
    kind: shell
    command: [./check.sh]
    readOnly: true
    retries: 2
  - id: transactional-sql
    kind: sql
    connection: db
    sql: UPDATE t SET c = 1
    retries: 2
`.text,
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
    assertMarkedIssues(
      marked`
version: 1
name: multi
owner: me
^ owner: unknown key "owner"
connections:
  db:
    kind: postgres
    port: "x"
          ^ connections.db.port: Invalid input: expected number, received string
    password: \${DB_PASSWORD}
              ^ connections.db.password: unset variable DB_PASSWORD: the environment variable DB_PASSWORD is not set
steps:
  - id: wait-a
    ^ steps[0].query: step "wait-a": missing required key "query"
    kind: wait
    connection: db
    expect: 1
    retries: "three"
             ^ steps[0].retries: step "wait-a": Invalid input: expected number, received string
  - id: gate
    ^ steps[1].message: step "gate": missing required key "message"
    kind: confirm
    mesage: ok?
    ^ steps[1].mesage: step "gate": unknown key "mesage" (did you mean "message"?)
`,
    );
  });

  it('reports a connection that cannot be resolved together with a schema problem elsewhere (an unknown step key)', () => {
    assertMarkedIssues(
      marked`
version: 1
name: multi
connections:
  db:
    kind: postgres
    url: postgres://app@localhost/shop
    passwordFile: no-such-file.pw
                  ^ connections.db.passwordFile: passwordFile: cannot read ${path.resolve('no-such-file.pw')} (ENOENT)
steps:
  - id: one
    kind: sql
    connection: db
    sql: SELECT 1
    bogus: 1
    ^ steps[0].bogus: step "one": unknown key "bogus"
`,
    );
  });

  it('reports every whole-file and interpolation problem at once, sorted by line then column', () => {
    const doc = withSteps`
  - id: copy
    kind: sql
    connection: replica
                ^ steps[0].connection: step "copy": unknown connection "replica" (defined: db)
    sql: SELECT \${UNSET_A}
         ^ steps[0].sql: unset variable UNSET_A: the environment variable UNSET_A is not set
  - id: copy
        ^ steps[1].id: step "copy": duplicate step id "copy" (first used at line {first})
    kind: shell
    command: [sync, "\${UNSET_B}", "\${UNSET_C}"]
                    ^ steps[1].command[1]: unset variable UNSET_B: the environment variable UNSET_B is not set
                                   ^ steps[1].command[2]: unset variable UNSET_C: the environment variable UNSET_C is not set
    retries: 1
             ^ steps[1].retries: ${RETRIES_NEED_IDEMPOTENT.replace('"a"', '"copy"')}
  - id: poll
    ^ steps[2]: step "poll": a wait step needs "connection"
    kind: wait
    query: SELECT 1
    expect: 1
`;
    const first = String(doc.lineOf('  - id: copy'));
    assertIssues(
      issuesOf(doc.text),
      doc.marks.map((mark) => expectedAt({ ...mark, label: mark.label.replace('{first}', first) })),
    );
  });
});

describe('parseRunbook: valid runbooks', () => {
  const ALL_KINDS = marked`
version: 1
name: all kinds
description: one step of each kind
ticket: CHG-42
connections:
  target:
    kind: postgres
    url: \${TARGET_URL}
defaults:
  lockTimeout: 2s
  statementTimeout: 5m
  onFailure: stop
steps:
  - id: rows-copied
    kind: wait
    connection: target
    query: SELECT count(*) FROM orders
    expect: 3
    interval: 1s
    timeout: 30s
  - id: add-column
    kind: sql
    description: add the audit column
    connection: target
    sql: ALTER TABLE orders ADD COLUMN migrated_at timestamptz
    rollback: ALTER TABLE orders DROP COLUMN migrated_at
    verify:
      query: SELECT 1
      expect: 1
  - id: gate
    kind: confirm
    message: Point the application at the new database?
  - id: announce
    kind: shell
    command: [echo, switched]
    env:
      CHANNEL: ops
    readOnly: true
`;

  it('parses a runbook with all four kinds', () => {
    const runbook = parse(ALL_KINDS.text, { TARGET_URL: 'postgres://app@db.example/orders' });
    assert.equal(runbook.file, FILE);
    assert.equal(runbook.name, 'all kinds');
    assert.equal(runbook.description, 'one step of each kind');
    assert.equal(runbook.ticket, 'CHG-42');
    assert.deepEqual(runbook.connections, { target: { kind: 'postgres', url: 'postgres://app@db.example/orders' } });
    assert.deepEqual(runbook.defaults, { lockTimeoutMs: 2_000, statementTimeoutMs: 300_000, onFailure: 'stop' });
    const line = (id: string) => ALL_KINDS.lineOf(`  - id: ${id}`);
    assert.deepEqual(
      runbook.steps.map((s) => ({ id: s.id, kind: s.kind, line: s.line, connection: s.connection })),
      [
        { id: 'rows-copied', kind: 'wait', line: line('rows-copied'), connection: 'target' },
        { id: 'add-column', kind: 'sql', line: line('add-column'), connection: 'target' },
        { id: 'gate', kind: 'confirm', line: line('gate'), connection: undefined },
        { id: 'announce', kind: 'shell', line: line('announce'), connection: undefined },
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
    const runbook = parse(marked(`version: 1\nname: t\n${ONE_STEP}`).text);
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
          marked`
version: 1
name: t
connections:
  db: { kind: postgres }
defaults:
  lockTimeout: ${written}
  statementTimeout: ${written}
steps:
  - id: a
    kind: wait
    connection: db
    query: SELECT 1
    expect: 1
    timeout: ${written}
    interval: ${written}
`.text,
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
        assertMarkedIssues(
          withSteps`
  - id: a
    kind: confirm
    message: ok?
    timeout: ${written}
             ^ steps[0].timeout: step "a": ${message}
`,
        );
      });
    }
    it('defaults.lockTimeout and statementTimeout too', () => {
      assertMarkedIssues(
        marked`
version: 1
name: t
defaults:
  lockTimeout: 3000000000
               ^ defaults.lockTimeout: at most 2147483647 ms (24.8 days)
  statementTimeout: 30d
                    ^ defaults.statementTimeout: 30d is more than 2147483647 ms (24.8 days), the largest timeout accepted
${ONE_STEP}
`,
      );
    });
  });

  it('turns confirm: true into a question naming the step, and keeps a string as written', () => {
    const runbook = parse(
      withSteps`
  - id: drop-old
    kind: sql
    connection: db
    sql: DROP TABLE old_orders
    confirm: true
  - id: own-question
    kind: sql
    connection: db
    sql: DROP TABLE old_items
    confirm: Really drop old_items?
  - id: no-question
    kind: sql
    connection: db
    sql: SELECT 1
    confirm: false
`.text,
    );
    assert.deepEqual(
      runbook.steps.map((s) => s.confirm),
      ['apply step "drop-old"?', 'Really drop old_items?', undefined],
    );
    assert.ok(!('confirm' in (runbook.steps[2] ?? {})), 'confirm: false leaves no question');
  });

  it('replaces ${NAME} from the env given, and $${ writes a literal ${', () => {
    const runbook = parse(
      withSteps`
  - id: a
    kind: shell
    command: [echo, "$\${HOME}", "\${GREETING}", "a $\${b} \${GREETING}!"]
`.text,
      { GREETING: 'hello', HOME: '/should/not/be/used' },
    );
    assert.deepEqual(runbook.steps[0]?.config['command'], ['echo', '${HOME}', 'hello', 'a ${b} hello!']);
  });

  it('puts kind-specific fields in step.config and keeps base fields out of it', () => {
    const runbook = parse(
      withSteps`
  - id: move-rows
    kind: sql
    description: copy the rows
    connection: db
    timeout: 10s
    retries: 2
    idempotent: true
    confirm: Go?
    transaction: false
    sql: [INSERT INTO a SELECT * FROM b, DELETE FROM b]
    rollback: DELETE FROM a
`.text,
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
  // This file runs from dist/test/unit/; the CLI (the bundle users run) is dist/cli/main.js.
  const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

  function validate(text: string): { code: number | null; stdout: string; stderr: string; file: string } {
    const written = runbookFile(text, { name: 'cutover.yaml' });
    try {
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env['CUTOVER_DEBUG'];
      const result = spawnSync(process.execPath, [CLI, 'validate', written.file], { encoding: 'utf8', env, timeout: 30_000 });
      return { code: result.status, stdout: result.stdout, stderr: result.stderr, file: written.file };
    } finally {
      written.dispose();
    }
  }

  it('exits 2 on an invalid runbook and prints file:line:col: path: message for each problem, without a stack trace', () => {
    const doc = marked`
version: 1
name: broken
owner: me
^ owner: unknown key "owner"
connections:
  db:
    kind: postgres
    port: "x"
          ^ connections.db.port: Invalid input: expected number, received string
steps:
  - id: a
    kind: sql
    connection: db
    sql: SELECT 1
    retries: "three"
             ^ steps[0].retries: step "a": Invalid input: expected number, received string
`;
    const { code, stdout, stderr, file } = validate(doc.text);
    assert.equal(code, 2, `stderr:\n${stderr}`);
    assert.equal(stdout, '');
    const expected = doc.marks.map((m) => `${file}:${m.line}:${m.column}: ${m.label}`);
    const lines = stderr.trimEnd().split('\n');
    assert.deepEqual(lines, [...expected, `3 problems in ${file}`]);
    assert.doesNotMatch(stderr, /^ {4}at /m, 'no stack trace');
  });

  it('exits 0 on a valid runbook and names its steps', () => {
    const { code, stdout, stderr, file } = validate(marked(`version: 1\nname: fine\nsteps:\n  - id: gate\n    kind: confirm\n    message: ok?`).text);
    assert.equal(code, 0, `stderr:\n${stderr}`);
    assert.equal(stderr, '');
    assert.equal(stdout, `${file}: valid: "fine", 1 step(s): gate [confirm]\n`);
  });

  it('a file or directory given on the command line that cannot be used: one sentence, exit 2', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-test-'));
    try {
      const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
      const missing = path.join(dir, 'no-such-dir', 'x');
      const runbook = path.join(dir, 'cutover.yaml');
      writeFileSync(runbook, 'version: 1\nname: fine\nsteps:\n  - id: gate\n    kind: confirm\n    message: ok?\n');
      for (const [args, message] of [
        [['runs', '--state-dir', dir, '--log-file', missing], `cannot open ${missing}: no such file or directory`],
        [['schema', '--out', missing], `cannot open ${missing}: no such file or directory`],
        [['run', runbook, '--plan', dir], `cannot read saved plan ${dir}: it is a directory`],
      ] as const) {
        const result = cli(...args);
        assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.equal(result.stderr.trim(), message);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
