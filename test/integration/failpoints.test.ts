/**
 * Crash-point matrix: a runbook with one step of each effect type
 * (transactional sql, idempotent external sequence-reset, non-idempotent
 * shell, freeze-writes, analyze) is killed (SIGKILL, via CUTOVER_FAILPOINT)
 * before and after every journal record a clean run writes. Each crash is
 * then resumed, and separately rolled back, and each effect must have
 * happened exactly once (or been undone exactly once), with a journal that
 * verifies. Runs on one server version: the engine's recovery does not
 * depend on it, and the matrix is long.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startPostgres, VERSIONS, type TestServer } from '../helpers/pg.js';
import { cutover, tempDir, writeRunbook } from '../helpers/cli.js';

const version = VERSIONS.at(-1) ?? 18;
const ROLE = 'fp_app';
/** The shell step's effect: one line per run of its command (and of its rollback). */
const SHELL = `"require('fs').appendFileSync(process.argv[1], process.argv[2] + '\\\\n')"`;

interface Effects {
  readonly tx: number;
  readonly seq: string;
  readonly shell: readonly string[];
  readonly frozen: boolean;
  readonly analyzed: boolean;
}

describe(`failpoint matrix on PostgreSQL ${version}`, () => {
  let server: TestServer;
  let n = 0;

  before(async () => {
    server = await startPostgres(version);
    await server.query(`CREATE ROLE ${ROLE} LOGIN`);
    await server.query('CREATE DATABASE fp_template');
    // Its own client, closed at once: a template must have no session open when it is copied.
    const client = new pg.Client({ connectionString: server.urlFor('fp_template') });
    await client.connect();
    await client.query(
      `CREATE TABLE effects (step text);
       CREATE TABLE s (id serial PRIMARY KEY); INSERT INTO s (id) SELECT g FROM generate_series(1, 100) g;
       CREATE TABLE a (x int); INSERT INTO a SELECT g FROM generate_series(1, 1000) g;
       GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO ${ROLE};`,
    );
    await client.end();
  });
  after(async () => {
    await server.stop();
  });

  /** A fresh copy of the template database and a runbook against it. */
  async function fixture() {
    const db = `fp${++n}`;
    await server.query(`CREATE DATABASE ${db} TEMPLATE fp_template`);
    const dir = tempDir();
    const log = path.join(dir, 'shell.log');
    const file = writeRunbook(
      dir,
      'r.yaml',
      `version: 1
name: failpoints
connections:
  db: { kind: postgres, url: "${server.urlFor(db)}" }
steps:
  - id: tx
    kind: sql
    connection: db
    sql: INSERT INTO effects VALUES ('tx')
    rollback: DELETE FROM effects WHERE step = 'tx'
  - id: seq
    kind: sequence-reset
    connection: db
    from: data
  - id: sh
    kind: shell
    command: [node, -e, ${SHELL}, ${JSON.stringify(log)}, ran]
    rollback: [node, -e, ${SHELL}, ${JSON.stringify(log)}, undo]
  - id: freeze
    kind: freeze-writes
    connection: db
    roles: [${ROLE}]
  - id: an
    kind: analyze
    connection: db
    include: [public.a]
`,
    );
    const env = { CUTOVER_STATE_DIR: path.join(dir, 'state') };
    const effects = async (): Promise<Effects> => {
      const [row] = await server.query<{ tx: number; seq: string; frozen: boolean; analyzed: boolean }>(
        `SELECT (SELECT count(*)::int FROM effects WHERE step = 'tx') AS tx,
                (SELECT format('%s/%s', last_value, is_called) FROM s_id_seq) AS seq,
                EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                         WHERE r.rolname = '${ROLE}' AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND 'default_transaction_read_only=on' = ANY (s.setconfig)) AS frozen,
                (SELECT reltuples >= 0 FROM pg_class WHERE oid = 'a'::regclass) AS analyzed`,
        [],
        db,
      );
      const shell = existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l.length > 0)
        : [];
      return { tx: row?.tx ?? -1, seq: row?.seq ?? '', shell, frozen: row?.frozen === true, analyzed: row?.analyzed === true };
    };
    // A case's database is dropped when it is done: the matrix makes ~90 of them, and a session left
    // open on each would use up max_connections (the role under test would then be refused a slot).
    const drop = async () => {
      await server.release(db);
      await server.query(`DROP DATABASE ${db} WITH (FORCE)`);
    };
    return { file, env, effects, drop, journal: () => journalOf(env.CUTOVER_STATE_DIR) };
  }

  function journalOf(stateDir: string): string {
    const runs = path.join(stateDir, 'runs');
    return path.join(runs, readdirSync(runs).sort().at(-1) ?? '', 'journal.jsonl');
  }

  /** Every point a clean run passes: before and after each of its step records. */
  async function failpoints(): Promise<string[]> {
    const clean = await fixture();
    const run = await cutover(['run', clean.file, '--yes'], clean.env);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await clean.effects(), { tx: 1, seq: '101/f', shell: ['ran'], frozen: true, analyzed: true });
    await clean.drop();
    const points: string[] = [];
    for (const line of readFileSync(clean.journal(), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)) {
      const event = (JSON.parse(line) as { record: { event: { type: string; stepId?: string } } }).record.event;
      if (event.stepId === undefined) continue;
      for (const side of ['before', 'after']) points.push(`${side}:${event.type}@${event.stepId}`);
    }
    return [...new Set(points)];
  }

  const SHELL_IN_FLIGHT = new Set(['after:step.started@sh', 'before:step.applied@sh']);
  const APPLIED = { tx: 1, seq: '101/f', frozen: true, analyzed: true };
  const ORIGINAL_SEQ = '1/f';

  it('every failpoint, then resume: each effect exactly once, journal verifies; then every failpoint, then rollback: each undone exactly once', async () => {
    const points = await failpoints();
    assert.ok(points.length >= 40, `expected a point on each side of every step record, got ${points.length}`);
    const runCase = async (point: string, recovery: 'resume' | 'rollback'): Promise<void> => {
      const f = await fixture();
      const crashed = await cutover(['run', f.file, '--yes'], { ...f.env, CUTOVER_FAILPOINT: point });
      assert.equal(crashed.code, null, `${point}: the run was killed at the failpoint (${crashed.stderr})`);
      const recovered = await cutover([recovery, '--last', '--yes'], f.env);
      const effects = await f.effects();
      const where = `${point}, then ${recovery}: ${recovered.stderr}\n${JSON.stringify(effects)}`;
      if (SHELL_IN_FLIGHT.has(point)) {
        // A non-idempotent command whose outcome is unknown is never run again on a guess.
        assert.equal(recovered.code, 3, where);
        assert.match(recovered.stderr, /step "sh" was in flight \(apply\)/, where);
        assert.deepEqual(effects.shell, point.startsWith('after:step.started') ? [] : ['ran'], where);
        assert.equal(effects.tx, 1, where);
      } else if (recovery === 'resume') {
        assert.equal(recovered.code, 0, where);
        assert.deepEqual({ ...effects, shell: undefined }, { ...APPLIED, shell: undefined }, where);
        assert.deepEqual(effects.shell, ['ran'], where);
      } else {
        // Killed before anything was applied or in flight: there is nothing to undo, and rollback says so.
        const nothing = recovered.code === 2 && /has anything to rollback/.test(recovered.stderr);
        assert.ok(recovered.code === 0 || nothing, where);
        assert.equal(effects.tx, 0, where);
        assert.equal(effects.seq, ORIGINAL_SEQ, where);
        assert.equal(effects.frozen, false, where);
        // The command ran at most once, and was undone exactly once if it ran.
        assert.ok(effects.shell.length === 0 || JSON.stringify(effects.shell) === '["ran","undo"]', where);
      }
      const audit = await cutover(['audit', 'verify', '--last'], f.env);
      assert.equal(audit.code, 0, `${point}, then ${recovery}: ${audit.stderr}`);
      await f.drop();
    };
    // Cases are independent (own database, own state directory): a few at a time.
    const queue = points.flatMap((point) => (['resume', 'rollback'] as const).map((recovery) => ({ point, recovery })));
    let cases = 0;
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        await runCase(next.point, next.recovery);
        cases++;
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    console.log(`failpoint matrix: ${points.length} failpoints x 2 recoveries = ${cases} cases`);
  });
});
