/**
 * sequence-reset against real PostgreSQL 17 and 18: the first nextval() after
 * the step equals the value the plan printed, for every sequence; rollback
 * restores (last_value, is_called) exactly, and refuses once values were
 * handed out. The Oracle source runs through an injected connection (no
 * Oracle server can run here); its target is a real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  parseRunbook,
  planRunbook,
  journalFile,
  registry,
  resumeRun,
  rollbackRun,
  runRunbook,
  type OracleConnection,
  type RunResult,
} from '../../src/index.js';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { tempDir } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

interface PlanRow {
  sequence: string;
  current: string | null;
  sourceNext: string | null;
  next: string | null;
  action: string;
}

const rowsOf = (result: RunResult, stepId = 'reset'): PlanRow[] =>
  (result.steps.find((s) => s.id === stepId)?.plan?.tables?.[0]?.rows ?? []) as unknown as PlanRow[];

const byName = (rows: readonly PlanRow[]) => new Map(rows.map((r) => [r.sequence, r]));

/** Schema shared by source and target: names that need quoting, several schemas, serial, identity, descending. */
const SCHEMA = `
  CREATE SCHEMA app;
  CREATE SCHEMA "Other Schema";
  CREATE TABLE app.orders (id serial PRIMARY KEY, note text);
  CREATE TABLE app.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
  CREATE SEQUENCE app."Mixed Case Seq";
  CREATE SEQUENCE app.never_used START 100;
  CREATE SEQUENCE app.down INCREMENT -1 MINVALUE -1000 MAXVALUE -1 START -1;
  CREATE SEQUENCE "Other Schema"."odd ""quoted"" seq é";
`;

for (const version of VERSIONS) {
  describe(`sequence-reset on PostgreSQL ${version}`, () => {
    let server: TestServer;
    let n = 0;
    const fresh = async (sql: string): Promise<string> => {
      const name = `s${++n}`;
      await server.query(`CREATE DATABASE ${name}`);
      if (sql) await server.query(sql, [], name);
      return name;
    };
    const q = <T extends Record<string, unknown>>(db: string, sql: string) => server.query<T>(sql, [], db);
    /** Every sequence's exact state, to prove nothing moved (or everything came back). */
    const snapshot = async (db: string) =>
      (
        await q<{ s: string }>(
          db,
          `SELECT string_agg(format('%s=%s/%s', c.oid::regclass, (pg_sequence_last_value(c.oid) IS NOT NULL), s.seqstart), ',' ORDER BY c.oid) AS s
             FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid`,
        )
      )[0]?.s;
    const exactStates = async (db: string, names: readonly string[]) => {
      const out: Record<string, string> = {};
      for (const name of names) {
        const [row] = await q<{ v: string }>(db, `SELECT last_value || '/' || is_called AS v FROM ${name}`);
        out[name] = row?.v ?? 'missing';
      }
      return out;
    };
    const load = (text: string) => {
      const file = path.join(tempDir(), 'runbook.yaml');
      writeFileSync(file, text);
      return { runbook: parseRunbook(text, file, { registry, env: {} }), dir: path.dirname(file) };
    };
    const runbook = (target: string, step: string, source?: string) => `version: 1
name: sequences
connections:
  target:
    kind: postgres
    url: ${server.urlFor(target)}
${source ? `  source:\n    kind: postgres\n    url: ${server.urlFor(source)}\n` : ''}steps:
  - id: reset
    kind: sequence-reset
    connection: target
${step}`;

    before(async () => {
      server = await startPostgres(version);
    });
    after(async () => {
      await server.stop();
    });

    it('PostgreSQL source: every first nextval() equals the planned value (is_called true and false, never used, descending, quoted names), and rollback restores exactly', async () => {
      const source = await fresh(`${SCHEMA}
        INSERT INTO app.orders (note) SELECT 'o' FROM generate_series(1, 41);
        INSERT INTO app.items (note) SELECT 'i' FROM generate_series(1, 7);
        SELECT setval('app."Mixed Case Seq"', 50, false);
        SELECT nextval('app.down'), nextval('app.down');
        SELECT setval('"Other Schema"."odd ""quoted"" seq é"', 9, true);`);
      const target = await fresh(`${SCHEMA}
        INSERT INTO app.orders (id, note) SELECT g, 'o' FROM generate_series(1, 41) g;
        INSERT INTO app.items (id, note) OVERRIDING SYSTEM VALUE SELECT g, 'i' FROM generate_series(1, 7) g;`);
      const names = ['app.orders_id_seq', 'app.items_id_seq', 'app."Mixed Case Seq"', 'app.never_used', 'app.down', '"Other Schema"."odd ""quoted"" seq é"'];
      const original = await exactStates(target, names);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));

      const planned = await planRunbook(rb, { registry, stateDir: dir });
      assert.equal(planned.status, 'planned');
      assert.deepEqual(await exactStates(target, names), original, 'a plan writes nothing');
      const rows = byName(rowsOf(planned));
      assert.deepEqual(Object.fromEntries([...rows].map(([k, r]) => [k, `${r.current}->${r.next} ${r.action}`])), {
        'app."Mixed Case Seq"': '1->50 advance',
        'app.down': '-1->-3 advance',
        'app.items_id_seq': '1->8 advance',
        'app.never_used': '100->100 unchanged',
        'app.orders_id_seq': '1->42 advance',
        '"Other Schema"."odd ""quoted"" seq é"': '1->10 advance',
      });

      const result = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const applied = rowsOf(result);
      for (const row of applied) {
        const [{ v }] = (await q<{ v: string }>(target, `SELECT nextval('${row.sequence.replaceAll("'", "''")}')::text AS v`)) as [{ v: string }];
        assert.equal(v, row.next, `first nextval of ${row.sequence}`);
      }

      // The nextval calls above consumed values: rollback must refuse those...
      const refused = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(refused.status, 'needs-attention');
      assert.match(JSON.stringify(refused.steps[0]?.error), /handed out values after the step ran/);
      assert.match(JSON.stringify(refused.steps[0]?.error), /app\.\\"Mixed Case Seq\\"/);
      // ...and --force restores the exact previous (last_value, is_called).
      const forced = await rollbackRun(result.runId, { registry, stateDir: dir, force: true });
      assert.equal(forced.status, 'rolled-back');
      const restored = await exactStates(target, names);
      assert.deepEqual(restored, { ...original, 'app.never_used': '100/true' }, 'never_used was not moved, so its consumed value stays');
    });

    it('rollback right after apply restores is_called exactly, true and false', async () => {
      const source = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('a', 500, true); SELECT setval('b', 700, false);`);
      const target = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('a', 20, false); SELECT setval('b', 30, true);`);
      const before = await exactStates(target, ['a', 'b']);
      assert.deepEqual(before, { a: '20/false', b: '30/true' });
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));
      const result = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded');
      assert.deepEqual(await exactStates(target, ['a', 'b']), { a: '501/false', b: '700/false' });
      const back = await rollbackRun(result.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back');
      assert.deepEqual(await exactStates(target, ['a', 'b']), before);
    });

    it('values handed out between plan and apply: those sequences are left alone and named, the rest roll back exactly', async () => {
      const source = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('a', 100); SELECT setval('b', 200);`);
      const target = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('b', 5);`);
      const before = await exactStates(target, ['a', 'b']);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n    confirm: go?\n', source));
      // The confirmation sits between plan and apply: an application takes a value from b there.
      const result = await runRunbook(rb, {
        registry,
        stateDir: dir,
        confirm: async () => {
          await q(target, `SELECT nextval('b')`);
          return true;
        },
      });
      assert.equal(result.status, 'rolled-back');
      assert.equal(
        result.steps[0]?.error?.message,
        '1 sequence(s) handed out values since the plan read them (are writes frozen?) and were left alone: public.b. The other 1 moved; rollback restores them, or run the step again once writes are frozen.',
      );
      assert.deepEqual(await exactStates(target, ['a', 'b']), { a: before['a'] ?? '', b: '6/true' }, 'a came back; b kept the value it handed out');
    });

    it('killed after the before-state was journaled: rollback restores it; resume converges without losing it', async () => {
      const source = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('a', 100); SELECT setval('b', 200, false);`);
      const target = await fresh(`CREATE SEQUENCE a; CREATE SEQUENCE b; SELECT setval('a', 7);`);
      const before = await exactStates(target, ['a', 'b']);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));
      const cut = (runDir: string) => {
        // What a kill -9 right after the setval statement leaves: the journal ends at step.before.
        const lines = readFileSync(journalFile(runDir), 'utf8').split('\n');
        const at = lines.findIndex((l) => l.includes('"type":"step.before"'));
        assert.ok(at > 0);
        writeFileSync(journalFile(runDir), `${lines.slice(0, at + 1).join('\n')}\n`);
      };

      const first = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(first.status, 'succeeded');
      cut(first.runDir);
      const back = await rollbackRun(first.runId, { registry, stateDir: dir });
      assert.equal(back.status, 'rolled-back');
      assert.deepEqual(await exactStates(target, ['a', 'b']), before);

      const second = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(second.status, 'succeeded');
      cut(second.runDir);
      // The re-run sees both sequences already moved and changes nothing; the
      // before-state of the first attempt is kept, so rollback still restores the original.
      const resumed = await resumeRun(second.runId, { registry, stateDir: dir, yes: true });
      assert.equal(resumed.status, 'succeeded');
      assert.deepEqual(await exactStates(target, ['a', 'b']), { a: '101/false', b: '200/false' });
      const undone = await rollbackRun(second.runId, { registry, stateDir: dir });
      assert.equal(undone.status, 'rolled-back');
      assert.deepEqual(await exactStates(target, ['a', 'b']), before);
    });

    it('a value beyond an int4 identity: a clear error naming the sequence, before anything is written', async () => {
      const source = await fresh(`CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY, x int);
        CREATE SEQUENCE small; SELECT setval('t_id_seq', 3000000000); SELECT setval('small', 5);`);
      const target = await fresh(`CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY, x int); CREATE SEQUENCE small;`);
      const before = await snapshot(target);
      const states = await exactStates(target, ['t_id_seq', 'small']);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));
      const result = await runRunbook(rb, { registry, stateDir: dir });
      assert.notEqual(result.status, 'succeeded');
      const error = result.steps[0]?.error;
      assert.equal(error?.name, 'PlanBlockedError');
      assert.equal(error?.message, 'plan blocked:\n  - public.t_id_seq: 3000000001 is outside integer sequence bounds [1, 2147483647]');
      assert.equal(await snapshot(target), before);
      assert.deepEqual(await exactStates(target, ['t_id_seq', 'small']), states, 'not even the sequence that fits moved');
    });

    it('an ora2pg SEQUENCE_VALUES file: its START WITH would leave the counters where they are; the step moves them', async () => {
      const target = await fresh(`CREATE SCHEMA hr;
        CREATE TABLE hr.emp (id serial PRIMARY KEY);
        INSERT INTO hr.emp (id) SELECT generate_series(1, 1000);
        CREATE SEQUENCE hr."DEPT_SEQ";`);
      const dir = tempDir();
      const file = path.join(dir, 'SEQUENCE_VALUES_output.sql');
      writeFileSync(
        file,
        `-- Generated by Ora2Pg, the Oracle database Schema converter, version 23.2
-- Copyright 2000-2023 Gilles DAROLD. All rights reserved.
SET client_encoding TO 'UTF8';
\\set ON_ERROR_STOP ON
SET search_path = hr,public;

ALTER SEQUENCE emp_id_seq START WITH 1001;
ALTER SEQUENCE hr."DEPT_SEQ" START WITH 77;
`,
      );
      // What running the file would do: START WITH changes the restart point only.
      await q(target, `SET search_path = hr, public; ALTER SEQUENCE emp_id_seq START WITH 1001; ALTER SEQUENCE hr."DEPT_SEQ" START WITH 77;`);
      assert.deepEqual(
        await q(target, `SELECT nextval('hr.emp_id_seq')::text AS emp, nextval('hr."DEPT_SEQ"')::text AS dept`),
        [{ emp: '1', dept: '1' }],
        'START WITH did not move the counters: the next insert would collide with id 1',
      );
      await q(target, `SELECT setval('hr.emp_id_seq', 1, false), setval('hr."DEPT_SEQ"', 1, false)`);

      const text = runbook(target, `    from: { file: SEQUENCE_VALUES_output.sql }\n`);
      writeFileSync(path.join(dir, 'runbook.yaml'), text);
      const rb = parseRunbook(text, path.join(dir, 'runbook.yaml'), { registry, env: {} });
      const result = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const rows = byName(rowsOf(result));
      assert.equal(rows.get('hr.emp_id_seq')?.next, '1001');
      assert.equal(rows.get('hr."DEPT_SEQ"')?.next, '77');
      assert.deepEqual(await q(target, `SELECT nextval('hr.emp_id_seq')::text AS emp, nextval('hr."DEPT_SEQ"')::text AS dept`), [{ emp: '1001', dept: '77' }]);
    });

    it('never moves a sequence backwards unless allowDecrease; margin adds headroom', async () => {
      const source = await fresh(`CREATE SEQUENCE ahead; CREATE SEQUENCE behind; SELECT setval('ahead', 10); SELECT setval('behind', 10);`);
      const target = await fresh(`CREATE SEQUENCE ahead; CREATE SEQUENCE behind; SELECT setval('ahead', 500);`);
      const blocked = load(runbook(target, '    from: { connection: source }\n    margin: 100\n', source));
      const result = await runRunbook(blocked.runbook, { registry, stateDir: blocked.dir });
      assert.equal(result.status, 'succeeded');
      const rows = byName(rowsOf(result));
      assert.equal(rows.get('public.ahead')?.action, 'kept-ahead');
      assert.equal(rows.get('public.behind')?.next, '111');
      assert.deepEqual(await exactStates(target, ['ahead', 'behind']), { ahead: '500/true', behind: '111/false' });

      const allowed = load(runbook(target, '    from: { connection: source }\n    allowDecrease: true\n', source));
      const moved = await runRunbook(allowed.runbook, { registry, stateDir: allowed.dir });
      assert.equal(moved.status, 'succeeded');
      assert.equal(byName(rowsOf(moved)).get('public.ahead')?.action, 'decrease');
      assert.deepEqual(await exactStates(target, ['ahead', 'behind']), { ahead: '11/false', behind: '11/false' });
    });

    it('a source sequence behind rows written with explicit ids: the plan is blocked naming the column, nothing is written', async () => {
      const source = await fresh(`CREATE TABLE customers (id serial PRIMARY KEY); SELECT setval('customers_id_seq', 100);`);
      const target = await fresh(`CREATE TABLE customers (id serial PRIMARY KEY); INSERT INTO customers SELECT generate_series(1, 500);`);
      const before = await exactStates(target, ['customers_id_seq']);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));
      const planned = await planRunbook(rb, { registry, stateDir: dir });
      assert.equal(planned.status, 'failed');
      assert.equal(
        planned.steps[0]?.error?.message,
        'plan blocked:\n  - public.customers_id_seq: the new next value 101 collides with public.customers.id (max 500); the source is behind this data (rows written with explicit ids?): raise it, give a margin, or use from: data',
      );
      const run = await runRunbook(rb, { registry, stateDir: dir });
      assert.deepEqual([run.steps[0]?.status, run.steps[0]?.error?.name], ['failed', 'PlanBlockedError']);
      assert.deepEqual(await exactStates(target, ['customers_id_seq']), before, 'nothing moved');
      // With headroom past the data it plans, runs and verifies.
      const margin = load(runbook(target, '    from: { connection: source }\n    margin: 1000\n', source));
      assert.equal((await runRunbook(margin.runbook, { registry, stateDir: margin.dir })).status, 'succeeded');
    });

    it('a source still in use: rows it wrote after the plan read it, already on the target, are not taken for a collision', async () => {
      const source = await fresh(`CREATE TABLE customers (id serial PRIMARY KEY); SELECT setval('customers_id_seq', 100);`);
      const target = await fresh(`CREATE TABLE customers (id serial PRIMARY KEY); INSERT INTO customers SELECT generate_series(1, 100);`);
      const { runbook: rb, dir } = load(runbook(target, '    from: { connection: source }\n', source));
      // Holds the target table: the plan reads the source sequence, then waits here to read the column's max.
      const holder = new pg.Client({ connectionString: server.urlFor(target) });
      await holder.connect();
      let planning: ReturnType<typeof planRunbook> | undefined;
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE customers IN ACCESS EXCLUSIVE MODE');
        planning = planRunbook(rb, { registry, stateDir: dir });
        await until(
          'the plan to wait for the column',
          async () => (await server.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'", [], target)).length > 0,
        );
        // Meanwhile the application writes 20 rows on the source and replication brings them over.
        await server.query("SELECT nextval('customers_id_seq') FROM generate_series(1, 20)", [], source);
        await holder.query('INSERT INTO customers SELECT generate_series(101, 120)');
        await holder.query('COMMIT');
      } finally {
        await holder.end();
      }
      const planned = await planning;
      assert.equal(planned?.status, 'planned', JSON.stringify(planned?.steps[0]?.plan?.blockers));
      assert.equal(byName(rowsOf(planned)).get('public.customers_id_seq')?.next, '121', 'the plan shows the source as read after the column');
    });

    it('an include pattern that matches no sequence blocks the plan: "no sequences in scope" would pass and reset nothing', async () => {
      const source = await fresh(`CREATE SEQUENCE shared;`);
      const target = await fresh(`CREATE SEQUENCE shared;`);
      const { runbook: rb, dir } = load(runbook(target, "    from: { connection: source }\n    include: ['public.*', 'nosuch.*']\n", source));
      const planned = await planRunbook(rb, { registry, stateDir: dir });
      assert.equal(planned.status, 'failed');
      assert.deepEqual(planned.steps[0]?.plan?.blockers, ['include pattern "nosuch.*" matches no sequence here (patterns are schema.name, case-sensitive)']);
    });

    it('missing sequences block by default and are listed with missing: warn', async () => {
      const source = await fresh(`CREATE SEQUENCE only_source; CREATE SEQUENCE shared;`);
      const target = await fresh(`CREATE SEQUENCE only_target; CREATE SEQUENCE shared;`);
      const strict = load(runbook(target, '    from: { connection: source }\n', source));
      const failed = await planRunbook(strict.runbook, { registry, stateDir: strict.dir });
      assert.equal(failed.status, 'failed');
      assert.equal(
        failed.steps[0]?.error?.message,
        'plan blocked:\n  - public.only_source has no target sequence (looked for public.only_source)\n  - public.only_target has no source value',
      );
      const lenient = load(runbook(target, '    from: { connection: source }\n    missing: warn\n', source));
      const planned = await planRunbook(lenient.runbook, { registry, stateDir: lenient.dir });
      assert.equal(planned.status, 'planned');
      assert.deepEqual(
        planned.steps[0]?.plan?.notes?.filter((note) => note.startsWith('missing')),
        ['missing (warn): public.only_source has no target sequence (looked for public.only_source)', 'missing (warn): public.only_target has no source value'],
      );
    });

    it('from: data: next value is one past the owning column, for serial and identity, ascending and descending', async () => {
      const target = await fresh(`
        CREATE TABLE up (id serial PRIMARY KEY);
        CREATE TABLE down (id int GENERATED BY DEFAULT AS IDENTITY (INCREMENT -2 MINVALUE -1000 MAXVALUE -1 START -1) PRIMARY KEY);
        CREATE TABLE empty (id serial PRIMARY KEY);
        INSERT INTO up SELECT generate_series(1, 42);
        INSERT INTO down SELECT generate_series(-1, -9, -2);`);
      const { runbook: rb, dir } = load(runbook(target, '    from: data\n'));
      const result = await runRunbook(rb, { registry, stateDir: dir });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      const rows = byName(rowsOf(result));
      assert.equal(rows.get('public.up_id_seq')?.next, '43');
      assert.equal(rows.get('public.down_id_seq')?.next, '-11');
      assert.equal(rows.has('public.empty_id_seq'), false);
      assert.deepEqual(await q(target, `INSERT INTO up DEFAULT VALUES RETURNING id`), [{ id: 43 }]);
      assert.deepEqual(await q(target, `INSERT INTO down DEFAULT VALUES RETURNING id`), [{ id: -11 }]);
    });

    it('Oracle source through an injected connection: LAST_NUMBER, UPPER -> lower, identity ISEQ$$ mapped by table and column', async () => {
      const target = await fresh(`CREATE SCHEMA hr;
        CREATE TABLE hr.orders (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);
        CREATE SEQUENCE hr.emp_seq;
        CREATE SEQUENCE hr."CaseKept";`);
      const sent: string[] = [];
      const fake: OracleConnection = {
        async execute(sql, binds) {
          sent.push(`${sql.includes('all_sequences') ? 'all_sequences' : 'identity'} ${JSON.stringify(binds)}`);
          if (sql.includes('all_sequences')) {
            return {
              rows: [
                { SEQUENCE_OWNER: 'HR', SEQUENCE_NAME: 'EMP_SEQ', LAST_NUMBER: '1021', INCREMENT_BY: '1', CACHE_SIZE: '20' },
                { SEQUENCE_OWNER: 'HR', SEQUENCE_NAME: 'ISEQ$$_73012', LAST_NUMBER: '5000', INCREMENT_BY: '1', CACHE_SIZE: '20' },
                { SEQUENCE_OWNER: 'HR', SEQUENCE_NAME: 'CaseKept', LAST_NUMBER: '12', INCREMENT_BY: '1', CACHE_SIZE: '0' },
              ],
            };
          }
          return { rows: [{ OWNER: 'HR', TABLE_NAME: 'ORDERS', COLUMN_NAME: 'ID', SEQUENCE_NAME: 'ISEQ$$_73012' }] };
        },
        async close() {},
      };
      const text = `version: 1
name: from oracle
connections:
  target: { kind: postgres, url: "${server.urlFor(target)}" }
  ora: { kind: oracle, connectString: "db.example:1521/ORCL", user: hr, password: secret-pw }
steps:
  - id: reset
    kind: sequence-reset
    connection: target
    from: { connection: ora }
    schemas: { HR: hr }
`;
      const { runbook: rb, dir } = load(text);
      const result = await runRunbook(rb, { registry, stateDir: dir, oracle: async () => fake });
      assert.equal(result.status, 'succeeded', JSON.stringify(result.steps));
      assert.deepEqual(sent, ['all_sequences {"o0":"HR"}', 'identity {"o0":"HR"}']);
      assert.deepEqual(
        await q(target, `SELECT nextval('hr.emp_seq')::text AS emp, nextval('hr.orders_id_seq')::text AS orders, nextval('hr."CaseKept"')::text AS kept`),
        [{ emp: '1021', orders: '5000', kept: '12' }],
      );
    });
  });
}
