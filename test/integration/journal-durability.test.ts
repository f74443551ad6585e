/**
 * When journal lines become durable (issue 20: fewer round trips in queue
 * mode), on a real PostgreSQL 18: a sink stands for the queue database and
 * looks, each time it is handed lines, at what the run has already changed
 * (another session, through SyncPg, as the sink is synchronous). Every line
 * before an apply is durable before that apply, the transaction id before
 * its COMMIT; lines that only record a plan, a lock, an applied or a
 * completed step wait for the next one, and the sink ends with every line of
 * the file, byte for byte.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SyncPg } from '../../src/db/sync-pg.js';
import { registry, runRunbook, type JournalLine, type JournalSink } from '../../src/index.js';
import { tempDir } from '../helpers/cli.js';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { loadRunbookText, runbookText } from '../helpers/runbook.js';

describe('journal durability points on PostgreSQL 18', () => {
  let server: TestServer;

  before(async () => {
    server = await startPostgres(18);
    await server.query('CREATE TABLE effects (step text NOT NULL)');
  });

  after(async () => {
    await server.stop();
  });

  test('each line is durable before the change it announces, deferred lines go with the next, and the sink has the whole file', async () => {
    const observer = new SyncPg(server.url);
    /** Each hand-over: the lines (event type @ step) and which steps' effects were visible then. */
    const handed: { readonly lines: string[]; readonly visible: string[] }[] = [];
    const texts: string[] = [];
    const take = (lines: readonly JournalLine[]) => {
      const visible = observer.query<{ step: string }>('SELECT step FROM effects ORDER BY step').rows.map((r) => r.step);
      handed.push({
        visible,
        lines: lines.map((l) => {
          const event = (JSON.parse(l.text) as { record: { event: { type: string; stepId?: string } } }).record.event;
          return event.stepId !== undefined ? `${event.type}@${event.stepId}` : event.type;
        }),
      });
      texts.push(...lines.map((l) => `${l.text}\n`));
    };
    const sink: JournalSink = {
      append: (line) => {
        take([line]);
      },
      appendAll: take,
    };
    const loaded = loadRunbookText(
      runbookText({
        name: 'durability',
        connections: { db: server.url },
        steps: [
          { id: 'a', kind: 'sql', connection: 'db', sql: "INSERT INTO effects VALUES ('a')", rollback: "DELETE FROM effects WHERE step = 'a'" },
          {
            id: 'b',
            kind: 'sql',
            connection: 'db',
            transaction: false,
            confirm: 'go on?',
            sql: "INSERT INTO effects VALUES ('b')",
            rollback: "DELETE FROM effects WHERE step = 'b'",
          },
        ],
      }).text,
    );
    try {
      // While the question waits, what the file holds is durable: the sink has every line of it.
      let askedWith: { readonly file: number; readonly sink: number } | undefined;
      const stateDir = tempDir('cutover-durability-');
      const confirm = () => {
        const [run] = readdirSync(path.join(stateDir, 'runs'));
        const file = readFileSync(path.join(stateDir, 'runs', run ?? '', 'journal.jsonl'), 'utf8');
        askedWith = { file: file.split('\n').length - 1, sink: texts.length };
        return Promise.resolve(true);
      };
      const result = await runRunbook(loaded.runbook, { registry, stateDir, journalSink: sink, confirm });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
      const at = (line: string) => {
        const found = handed.find((h) => h.lines.includes(line));
        assert.ok(found !== undefined, `${line} reached the sink: ${JSON.stringify(handed)}`);
        return found;
      };
      // Durable before the change each announces.
      assert.deepEqual(at('step.started@a').visible, [], 'step a announced before it applied');
      assert.deepEqual(at('step.committing@a').visible, [], "a's transaction id before its COMMIT");
      assert.deepEqual(at('step.started@b').visible, ['a'], 'step b announced before it applied');
      assert.deepEqual(at('run.finished').visible, ['a', 'b']);
      // The lines that wait: the run's start, its lock and a's plan go with a's start; b's applied and completed with the run's end.
      assert.deepEqual(at('step.started@a').lines, ['run.started', 'target.locked', 'step.planned@a', 'step.started@a']);
      assert.deepEqual(at('run.finished').lines, ['step.applied@b', 'step.completed@b', 'run.finished']);
      assert.ok(askedWith !== undefined && askedWith.file > 0, 'the question was asked');
      assert.equal(askedWith.sink, askedWith.file, 'when the question was asked, the sink had every line of the file');
      // 13 lines (the confirmation is one) in 6 hand-overs: a's start, a's COMMIT, the question (with a's applied and completed
      // and b's plan), the confirmation, b's start, the end.
      assert.deepEqual([handed.flatMap((h) => h.lines).length, handed.length], [13, 6]);
      // Nothing lost or reordered: the durable copy is the file.
      assert.equal(texts.join(''), readFileSync(result.journalFile, 'utf8'));
    } finally {
      observer.close();
      loaded.dispose();
    }
  });
});
