/** The journal's hash chain, torn-tail repair, and secret redaction, without a database. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Journal, journalFile, readJournal, verifyJournal, type JournalSink } from '../../src/audit/journal.js';
import { Redactor } from '../../src/audit/redact.js';
import type { RunEvent } from '../../src/audit/events.js';
import { tempDir } from '../helpers/cli.js';

const stopped = (reason: string): RunEvent => ({ type: 'run.stopped', reason });

function journalWith(count: number, redactor = new Redactor()): string {
  const dir = path.join(tempDir(), 'run');
  const journal = Journal.create(dir, redactor);
  for (let i = 0; i < count; i++) journal.append(stopped(`event ${i}`));
  journal.close();
  return dir;
}

describe('journal', () => {
  it('links every record to the one before and verifies', () => {
    const dir = journalWith(3);
    const records = readJournal(dir);
    assert.deepEqual(
      records.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal(records[0]?.prev, '0'.repeat(64));
    const result = verifyJournal(dir);
    assert.equal(result.ok, true);
    assert.equal(result.records, 3);
    assert.match(result.head, /^[0-9a-f]{64}$/);
  });

  it('detects one changed byte, a removed line and swapped lines', () => {
    const dir = journalWith(3);
    const file = journalFile(dir);
    const original = readFileSync(file, 'utf8');

    writeFileSync(file, original.replace('event 1', 'event 7'));
    assert.deepEqual(verifyJournal(dir).problems, [{ line: 2, problem: 'record does not match its hash' }]);

    const lines = original.split('\n');
    writeFileSync(file, [lines[0], lines[2], ''].join('\n'));
    assert.deepEqual(verifyJournal(dir).problems, [
      { line: 2, problem: 'previous-hash link is broken' },
      { line: 2, problem: 'sequence number 3, expected 2' },
    ]);

    writeFileSync(file, [lines[1], lines[0], lines[2], ''].join('\n'));
    assert.equal(verifyJournal(dir).ok, false);
  });

  it('moves a torn last line aside when reopened, keeping the chain whole', () => {
    const dir = journalWith(2);
    appendFileSync(journalFile(dir), '{"hash":"abc","rec');
    assert.equal(verifyJournal(dir).ok, false);
    const { journal, records, tornBytes } = Journal.open(dir, new Redactor());
    assert.equal(records.length, 2);
    assert.equal(tornBytes, 18);
    journal.append(stopped('after the crash'));
    journal.close();
    assert.equal(verifyJournal(dir).ok, true);
    assert.equal(verifyJournal(dir).records, 3);
    assert.ok(existsSync(path.join(dir, 'journal.torn')));
  });

  it('redacts secrets before hashing, so the chain verifies without them', () => {
    const dir = journalWith(0);
    const journal = Journal.open(dir, new Redactor(['hunter2-secret'])).journal;
    journal.append(stopped('password authentication failed for "hunter2-secret"'));
    journal.close();
    const text = readFileSync(journalFile(dir), 'utf8');
    assert.ok(!text.includes('hunter2-secret'));
    assert.match(text, /failed for \\"\[redacted\]\\"/);
    assert.equal(verifyJournal(dir).ok, true);
  });

  it('a deferred line is in the file at once and reaches the sink with the next line that is not deferred, in one call', () => {
    const calls: number[][] = [];
    const sink: JournalSink = {
      append: () => assert.fail('appendAll is offered, so append is not called'),
      appendAll: (lines) => calls.push(lines.map((l) => l.seq)),
    };
    const dir = path.join(tempDir(), 'run');
    const journal = Journal.create(dir, new Redactor(), undefined, sink);
    journal.append(stopped('one'), { deferred: true });
    journal.append(stopped('two'), { deferred: true });
    assert.deepEqual(calls, []);
    assert.equal(readFileSync(journalFile(dir), 'utf8').split('\n').filter(Boolean).length, 2, 'both lines are in the file already');
    journal.append(stopped('three'));
    assert.deepEqual(calls, [[1, 2, 3]]);
    journal.append(stopped('four'), { deferred: true });
    journal.close();
    assert.deepEqual(calls, [[1, 2, 3], [4]], 'close makes what is pending durable');
  });

  it('lines a sink refuses stay pending and are offered again first, so the durable copy has no gap', () => {
    const taken: number[] = [];
    let refuse = true;
    const sink: JournalSink = {
      append: (line) => {
        if (refuse) throw new Error('queue database unreachable');
        taken.push(line.seq);
      },
    };
    const journal = Journal.create(path.join(tempDir(), 'run'), new Redactor(), undefined, sink);
    journal.append(stopped('one'), { deferred: true });
    assert.throws(() => journal.append(stopped('two')), /unreachable/);
    refuse = false;
    journal.append(stopped('three'));
    assert.deepEqual(taken, [1, 2, 3]);
    journal.close();
  });
});
