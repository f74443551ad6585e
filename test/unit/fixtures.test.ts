/**
 * The test fixture helper itself (test/helpers/runbook.ts): marker lines are
 * taken out of the text and become positions, escapes do not shift a caret,
 * and a runbook written to a file loads as the CLI would load it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadRunbookText, marked, runbookFile } from '../helpers/runbook.js';

describe('marked', () => {
  it('takes marker lines out and points each at the line above, at its caret', () => {
    const doc = marked`
version: 1
name: 12
      ^ name: expected a string
      ^ second
steps: []
^
`;
    assert.equal(doc.text, 'version: 1\nname: 12\nsteps: []\n');
    assert.deepEqual(doc.marks, [
      { line: 2, column: 7, label: 'name: expected a string' },
      { line: 2, column: 7, label: 'second' },
      { line: 3, column: 1, label: '' },
    ]);
    assert.deepEqual(doc.end, { line: 4, column: 1 });
    assert.equal(doc.lineOf('steps'), 3);
    assert.throws(() => doc.lineOf('nowhere'), /no line contains "nowhere"/);
  });

  it('as a tag, turns \\${ into ${ and keeps a caret under the character it sits under', () => {
    const doc = marked`
a: "\${X}", "\${Y}"
            ^ at the second quote \${Y}
`;
    assert.equal(doc.text, 'a: "${X}", "${Y}"\n');
    assert.deepEqual(doc.marks, [{ line: 1, column: 12, label: 'at the second quote ${Y}' }]);
    assert.equal(doc.text.split('\n')[0]?.charAt(11), '"');
  });

  it('as a tag, puts values in as they are, backslashes and all', () => {
    const value = 'C:\\temp\\${x}';
    const doc = marked`
path: ${value}
`;
    assert.equal(doc.text, `path: ${value}\n`);
  });

  it('called with a string, takes it as the text; a tab counts one column', () => {
    const doc = marked('x: 1\n\ty: 2\n ^\n');
    assert.equal(doc.text, 'x: 1\n\ty: 2\n');
    assert.deepEqual(doc.marks, [{ line: 2, column: 2, label: '' }]);
  });

  it('refuses a marker with no line above it', () => {
    assert.throws(() => marked('^ nothing above\nx: 1\n'), /has no line above it/);
  });
});

describe('runbookFile and loadRunbookText', () => {
  const text = 'version: 1\nname: fixture\nsteps:\n  - id: gate\n    kind: confirm\n    message: ${QUESTION}\n';

  it('writes the text to runbook.yaml in a new directory, and dispose removes it', () => {
    const written = runbookFile(text);
    assert.equal(readFileSync(written.file, 'utf8'), text);
    assert.ok(written.file.endsWith('/runbook.yaml'));
    written.dispose();
    assert.equal(existsSync(written.dir), false);
  });

  it('loads from the file it wrote, with the env given; a directory it was given is kept', () => {
    const first = runbookFile('x', { name: 'other.yaml' });
    const loaded = loadRunbookText(text, { dir: first.dir, env: { QUESTION: 'ready?' } });
    assert.equal(loaded.runbook.file, loaded.file);
    assert.equal(loaded.dir, first.dir);
    assert.equal(loaded.runbook.steps[0]?.config['message'], 'ready?');
    loaded.dispose();
    assert.equal(existsSync(first.file), true, 'a directory passed in is not removed');
    first.dispose();
    assert.equal(existsSync(first.dir), false);
  });
});
