/**
 * The corpus of worst cases: every malformed input that once ended in a bare
 * JavaScript error, a hang or gigabytes of memory, kept as fixed regression
 * tests. Each must be refused with a positioned issue (validation exit 2),
 * never a JavaScript error name.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RunbookValidationError, type ValidationIssue } from '../../src/errors.js';
import { makeDirs } from '../../src/files.js';
import { loadRunbook, parseRunbook } from '../../src/runbook/load.js';
import { registry } from '../../src/steps/index.js';
import { cutover, tempDir } from '../helpers/cli.js';
import { lineOf } from '../helpers/runbook.js';

const FILE = 'hostile.yaml';
const JS_ERROR = /\b(RangeError|TypeError|ReferenceError|URIError|SyntaxError|Maximum call stack|\[object Object\]|function \w*\()/;

function issuesOf(text: string, env: Readonly<Record<string, string>> = {}, file = FILE): readonly ValidationIssue[] {
  try {
    parseRunbook(text, file, { registry, env });
  } catch (error) {
    assert.ok(error instanceof RunbookValidationError, `expected a RunbookValidationError, got ${String(error)}`);
    for (const issue of error.issues) assert.doesNotMatch(issue.message, JS_ERROR);
    return error.issues;
  }
  return assert.fail('expected the runbook to be rejected');
}

function one(issues: readonly ValidationIssue[], where: { line: number; column?: number; path?: string }, message: RegExp): void {
  const found = issues.find((i) => message.test(i.message));
  assert.ok(found, `no issue matching ${message}; got:\n${issues.map((i) => `${i.position.line}:${i.position.column} ${i.path}: ${i.message}`).join('\n')}`);
  assert.equal(found.position.line, where.line, `line of ${found.message}`);
  if (where.column !== undefined) assert.equal(found.position.column, where.column, `column of ${found.message}`);
  if (where.path !== undefined) assert.equal(found.path, where.path);
}

const head = (connection = '    url: postgres://u@localhost/db') =>
  `version: 1\nname: hostile\nconnections:\n  db:\n    kind: postgres\n${connection}\nsteps:\n`;
const confirmStep = '  - id: a\n    kind: confirm\n    message: ok?\n';

describe('hostile input: YAML structure', () => {
  it('an unresolved alias is reported at the alias', () => {
    const text = `${head()}  - id: a\n    kind: confirm\n    message: *nothing\n`;
    one(issuesOf(text), { line: lineOf(text, 'message: *nothing'), column: 14, path: '(yaml)' }, /alias \*nothing/);
  });

  it('an alias bomb is refused at the first alias, without expanding it', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array.from({ length: 9 }, () => `*${prev}`).join(',')}]`);
    }
    const text = `version: 1\nname: bomb\n${levels.join('\n')}\nsteps:\n${confirmStep}`;
    one(issuesOf(text), { line: lineOf(text, 'b: &b'), column: 8, path: '(yaml)' }, /alias bomb/);
  });

  for (const [label, nested] of [
    ['flow sequences', `${'['.repeat(2000)}${']'.repeat(2000)}`],
    ['flow mappings', `${'{a: '.repeat(2000)}1${'}'.repeat(2000)}`],
  ] as const) {
    it(`2000-deep ${label} are refused at the level that is too deep`, () => {
      const text = `${head()}${confirmStep}    description: ${nested}\n`;
      one(issuesOf(text), { line: lineOf(text, 'description:'), path: '(yaml)' }, /nested more than 64 levels deep/);
    });
  }

  it('100-deep nesting (which the parser survives) is refused at the first level past 64', () => {
    // The top-level map is level 1, steps 2, the step 3: the first "[" is level 4, the 62nd level 65.
    const text = `${head()}${confirmStep}    description: ${'['.repeat(100)}${']'.repeat(100)}\n`;
    one(issuesOf(text), { line: lineOf(text, 'description:'), column: 18 + 61, path: '(yaml)' }, /nested more than 64 levels deep/);
  });

  it('2000-deep block sequences too', () => {
    const block = Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i * 2)}- `).join('\n');
    const issues = issuesOf(`version: 1\nname: deep\nsteps:\n${block}x\n`);
    assert.equal(issues.length, 1);
    // Where the parser itself gives up depends on the stack size; it is always inside the nesting.
    assert.ok((issues[0]?.position.line ?? 0) >= 4, 'positioned inside the nesting');
    assert.match(issues[0]?.message ?? '', /nested more than 64 levels deep/);
  });
});

describe('hostile input: values', () => {
  it('timeout: 9999999999999 (past what a timer takes)', () => {
    const text = `${head()}${confirmStep}    timeout: 9999999999999\n`;
    one(issuesOf(text), { line: lineOf(text, 'timeout:'), column: 14, path: 'steps[0].timeout' }, /at most 2147483647 ms/);
  });

  it('lockTimeout and statementTimeout past 2^31-1 ms', () => {
    const text = `version: 1\nname: t\ndefaults:\n  lockTimeout: 2147483648\n  statementTimeout: 9999h\nsteps:\n${confirmStep}`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, 'lockTimeout:'), path: 'defaults.lockTimeout' }, /at most 2147483647 ms/);
    one(issues, { line: lineOf(text, 'statementTimeout:'), path: 'defaults.statementTimeout' }, /9999h is more than 2147483647 ms/);
  });

  it('sizes and integers past what JavaScript or PostgreSQL hold exactly', () => {
    const text = `${head()}  - id: slots\n    kind: slots-inventory\n    connection: db\n    retainedWarning: 999999999999999TB\n  - id: seq\n    kind: sequence-reset\n    connection: db\n    from: data\n    margin: 100000000000000000000\n  - id: seq2\n    kind: sequence-reset\n    connection: db\n    from: data\n    margin: "9223372036854775808"\n`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, 'retainedWarning:'), path: 'steps[0].retainedWarning' }, /999999999999999TB is more than 9007199254740991 bytes/);
    one(issues, { line: lineOf(text, 'margin: 1000'), path: 'steps[1].margin' }, /at most 9007199254740991 as a number; quote larger values/);
    one(issues, { line: lineOf(text, 'margin: "9223'), path: 'steps[2].margin' }, /at most 9223372036854775807 \(the largest bigint\)/);
  });

  it('a URL password with a bad percent-encoding (%zz), never echoing it', () => {
    const text = `${head('    url: postgres://u:pa%zzss@localhost/db')}${confirmStep}`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, 'url:'), column: 10, path: 'connections.db.url' }, /the URL's password has an invalid percent-encoding/);
    assert.ok(issues.every((i) => !i.message.includes('pa%zzss')));
  });

  it('a URL that is not a URL, and an unsupported URL parameter', () => {
    const notUrl = `${head('    url: "postgres://u@[::1/db"')}${confirmStep}`;
    one(issuesOf(notUrl), { line: lineOf(notUrl, 'url:'), path: 'connections.db.url' }, /not a valid postgres:\/\/ URL/);
    const typo = `${head('    url: postgres://u@h/db?sslmod=require')}${confirmStep}`;
    one(issuesOf(typo), { line: lineOf(typo, 'url:'), path: 'connections.db.url' }, /unsupported URL parameter "sslmod"/);
  });

  it('a value of the wrong type is one problem, not also the checks of the type it should have', () => {
    const text = `${head('    url: postgres://app@h/db\n    password: [Sekr3t-pw]')}${confirmStep}`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, 'password:'), path: 'connections.db.password' }, /expected string, received array$/);
    assert.equal(issues.length, 1, issues.map((i) => i.message).join('\n'));
  });

  it('YAML 1.1 tags (!!binary, !!timestamp, !!set) are refused by their tag, not as a JavaScript type', () => {
    for (const [tag, value] of [
      ['binary', 'AAAA'],
      ['timestamp', '2001-12-14'],
      ['set', '{ x }'],
    ] as const) {
      const text = `${head()}  - id: a\n    kind: confirm\n    message: !!${tag} ${value}\n`;
      one(issuesOf(text), { line: lineOf(text, 'message:') }, new RegExp(`^the YAML tag !!${tag} is not supported here: write the value as plain text$`));
    }
  });

  it('a password with an unencoded "/", "?" or "#" is refused without a byte of it in the message', () => {
    for (const url of [
      'postgres://app:2024?Winter-Sekr3t@127.0.0.1/shop',
      'postgres://app:2024/Winter-Sekr3t@127.0.0.1/shop',
      'postgres://app:2024#Winter-Sekr3t@127.0.0.1/shop',
    ]) {
      const text = `${head(`    url: "${url}"`)}${confirmStep}`;
      const issues = issuesOf(text);
      one(issues, { line: lineOf(text, 'url:'), path: 'connections.db.url' }, /must be percent-encoded there \(%2F, %3F, %23, %40\); the URL is not shown/);
      assert.ok(
        issues.every((i) => !i.message.includes('Winter') && !i.message.includes('2024')),
        url,
      );
    }
  });

  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    it(`\${${name}} is an unset variable, not an object's internals`, () => {
      const text = `${head()}  - id: a\n    kind: confirm\n    message: "x \${${name}} y"\n`;
      one(issuesOf(text), { line: lineOf(text, 'message:'), column: 14 }, new RegExp(`^unset variable ${name}:`));
    });
  }

  it('a connection named __proto__ or constructor is refused, not silently dropped', () => {
    const text = `version: 1\nname: t\nconnections:\n  __proto__:\n    kind: postgres\n  constructor:\n    kind: postgres\nsteps:\n  - id: a\n    kind: sql\n    connection: __proto__\n    sql: SELECT 1\n`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, '  __proto__:'), column: 3, path: 'connections.__proto__' }, /"__proto__" is a reserved name/);
    one(issues, { line: lineOf(text, '  constructor:'), column: 3, path: 'connections.constructor' }, /"constructor" is a reserved name/);
  });

  it('a step connection named like an object internal is an unknown connection', () => {
    const text = `${head()}  - id: a\n    kind: sql\n    connection: toString\n    sql: SELECT 1\n`;
    one(issuesOf(text), { line: lineOf(text, 'connection: toString'), path: 'steps[0].connection' }, /unknown connection "toString"/);
  });
});

describe('hostile input: files a runbook names', () => {
  const dir = tempDir();
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const directory = path.join(dir, 'a-directory');
  mkdirSync(directory);
  const big = path.join(dir, 'big.pw');
  writeFileSync(big, 'x'.repeat(64 * 1024 + 1));

  for (const [label, file, message] of [
    ['/dev/zero', '/dev/zero', /\/dev\/zero is a device; expected a regular file/],
    ['/dev/urandom', '/dev/urandom', /\/dev\/urandom is a device; expected a regular file/],
    ['a FIFO', fifo, /fifo is a FIFO \(named pipe\); expected a regular file/],
    ['a directory', directory, /a-directory is a directory; expected a regular file/],
    ['a file past the 64 KiB cap', big, /big\.pw is 65537 bytes; the limit is 65536/],
  ] as const) {
    it(`passwordFile: ${label} is refused at validation with its path and line`, () => {
      const text = `${head(`    url: postgres://u@localhost/db\n    passwordFile: ${file}`)}${confirmStep}`;
      one(issuesOf(text), { line: lineOf(text, 'passwordFile:'), column: 19, path: 'connections.db.passwordFile' }, message);
    });
  }

  for (const [label, file, message] of [
    ['/dev/zero', '/dev/zero', /\/dev\/zero is a device/],
    ['a FIFO', fifo, /fifo is a FIFO/],
  ] as const) {
    it(`sequence-reset from.file: ${label} is refused at validation with its path and line`, () => {
      const text = `${head()}  - id: seq\n    kind: sequence-reset\n    connection: db\n    from: { file: ${file} }\n`;
      one(issuesOf(text), { line: lineOf(text, 'from: { file:'), path: 'steps[0].from.file' }, message);
    });
  }

  it('sslrootcert as a device', () => {
    const text = `${head('    url: postgres://u@localhost/db\n    sslmode: verify-full\n    sslrootcert: /dev/zero')}${confirmStep}`;
    one(issuesOf(text), { line: lineOf(text, 'sslrootcert:'), path: 'connections.db.sslrootcert' }, /\/dev\/zero is a device/);
  });

  it('the runbook itself as a FIFO or a directory', () => {
    for (const file of [fifo, directory]) {
      try {
        loadRunbook(file, { registry });
        assert.fail('accepted');
      } catch (error) {
        assert.ok(error instanceof RunbookValidationError);
        assert.match(error.issues[0]?.message ?? '', /expected a regular file/);
      }
    }
  });
});

describe('hostile input: validation reports everything at once, by step id, with suggestions', () => {
  it('schema errors and cross-field errors together', () => {
    const text = `${head()}  - id: a\n    kind: comapre\n  - id: a\n    kind: sql\n    connection: dbb\n    sql: SELECT 1\n    timeout: forever\n`;
    const issues = issuesOf(text);
    one(issues, { line: lineOf(text, 'kind: comapre'), path: 'steps[0].kind' }, /^step "a": unknown step kind "comapre" \(did you mean "compare"\?\)/);
    one(issues, { line: lineOf(text, '- id: a', 2), path: 'steps[1].id' }, /^step "a": duplicate step id "a"/);
    one(issues, { line: lineOf(text, 'connection: dbb'), path: 'steps[1].connection' }, /^step "a": unknown connection "dbb" \(did you mean "db"\?\)/);
    one(issues, { line: lineOf(text, 'timeout: forever'), path: 'steps[1].timeout' }, /^step "a": expected a duration/);
  });

  it('a mistyped enum value gets the closest one', () => {
    const text = `version: 1\nname: t\ndefaults:\n  onFailure: rolback\nsteps:\n${confirmStep}`;
    one(issuesOf(text), { line: lineOf(text, 'onFailure:'), path: 'defaults.onFailure' }, /\(did you mean "rollback"\?\)$/);
  });
});

describe('a state directory where none can be made', () => {
  it("under /proc: an error at once, where Node 20's recursive mkdir spins for ever and ignores signals", { skip: process.platform !== 'linux' }, () => {
    const files = new URL('../../src/files.js', import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `(await import(${JSON.stringify(files)})).makeDirs('/proc/cutover-test-nope/runs/x')`],
      {
        encoding: 'utf8',
        timeout: 20_000,
        killSignal: 'SIGKILL',
      },
    );
    assert.equal(child.signal, null, 'it did not have to be killed');
    assert.equal(child.status, 1);
    assert.match(child.stderr, /ENOENT/);
    const dir = path.join(tempDir(), 'a', 'b', 'c');
    makeDirs(dir, 0o700);
    makeDirs(dir);
    assert.ok(statSync(dir).isDirectory());
  });
});

describe('a mistyped fleet command', () => {
  it('is named, with the fleet commands there are, not reported as unknown arguments after it', async () => {
    const typo = await cutover(['fleet', 'rn', 'inventory.yaml', 'runbook.yaml']);
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /no fleet command "rn" \(did you mean "run"\?\); the fleet commands: plan, run, resume, status, approve, report, rollback, worker, schema/,
    );
    assert.doesNotMatch(typo.stderr, /Unknown argument/);
    const none = await cutover(['fleet']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /name a fleet command: plan, run/);
  });
});
