/**
 * `npm run bench`: sequence-reset with 10,000 sequences on one loopback
 * server, against baselines run in the same script on the same server, every
 * one timed with the same clock (hrtime), the order alternated each
 * repetition, min / median / max reported:
 *
 *   whole job against whole job
 *   - a `cutover run` process of the step (start-up, plan, apply, verify,
 *     journal) against an ora2pg-style psql script of 10,000 ALTER SEQUENCE
 *     ... RESTART WITH statements (what engineers run today; target: 5x
 *     faster), and against a psql process running one hand-written set-based
 *     setval statement (the floor);
 *   - the library run in-process (plan, apply, verify, journal) against the
 *     same setval statement in a new in-process session;
 *   phase against phase
 *   - the step's apply phase (hrtime from the step.started to the
 *     step.applied event) against that setval statement in a new session
 *     (target, issue 3: at most 2x).
 * Every method is proven to have set every sequence, untimed. Durability is
 * on (fsync, synchronous_commit), as on a real server.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadRunbook, registry, runRunbook, type RunEvent } from '../../src/index.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { alternateUntimed, report, runProcess, spread } from './measure.js';
import { runbookFile as writeRunbook, runbookText } from '../../test/helpers/runbook.js';
import { systemPgTool } from '../tools.js';
import { fileURLToPath } from 'node:url';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export interface SequenceBenchOptions {
  readonly count: number;
  readonly version: PgVersion;
  readonly repeat: number;
}

/** Source values: varied, half of them with is_called true. */
const sourceValue = (i: number) => 1000 + i * 7;

async function createSequences(server: TestServer, db: string, names: readonly string[]): Promise<void> {
  await server.query('CREATE SCHEMA bench', [], db);
  for (let i = 0; i < names.length; i += 1000) {
    await server.query(
      names
        .slice(i, i + 1000)
        .map((n) => `CREATE SEQUENCE bench.${n}`)
        .join(';'),
      [],
      db,
    );
  }
}

/** Puts every target sequence back to (1, false), untimed, so each repetition does the same work. */
async function resetTarget(server: TestServer, names: readonly string[]): Promise<void> {
  await server.query(`SELECT count(setval(format('bench.%I', n)::regclass, 1, false)) FROM unnest($1::text[]) AS n`, [names], 'target');
}

/** Untimed proof that a method did the job: every target sequence's next value is the source's. */
async function assertAllAt(server: TestServer, names: readonly string[], next: readonly number[], method: string): Promise<void> {
  const [row] = await server.query<{ wrong: string }>(
    `SELECT count(*)::text AS wrong FROM unnest($1::text[], $2::bigint[]) AS t(n, v)
      WHERE (xpath('/row/x/text()', query_to_xml(format(
              'SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END AS x FROM bench.%I', n), false, true, '')))[1]::text::bigint <> v`,
    [names, next],
    'target',
  );
  if (row?.wrong !== '0') throw new Error(`${method} left ${row?.wrong} sequence(s) at the wrong value`);
}

export async function benchSequences(options: SequenceBenchOptions): Promise<void> {
  const { count, version, repeat } = options;
  const names = Array.from({ length: count }, (_, i) => `s${i + 1}`);
  console.log(`sequence-reset: ${count} sequences, PostgreSQL ${version}, min/median/max of ${repeat}, order alternated`);
  const server = await startPostgres(version, { fsync: 'on', synchronous_commit: 'on' });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
  try {
    for (const db of ['source', 'target']) {
      await server.query(`CREATE DATABASE ${db}`);
      await createSequences(server, db, names);
    }
    await server.query(
      `SELECT count(setval(format('bench.%I', n)::regclass, v, i % 2 = 0))
         FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS t(n, v, i)`,
      [names, names.map((_, i) => sourceValue(i))],
      'source',
    );
    // The next values the source would hand out: what every method must set.
    const next = names.map((_, i) => sourceValue(i) + ((i + 1) % 2 === 0 ? 1 : 0));

    const { file } = writeRunbook(
      runbookText({
        name: 'bench',
        connections: { source: server.urlFor('source'), target: server.urlFor('target') },
        steps: [{ id: 'reset', kind: 'sequence-reset', connection: 'target', from: { connection: 'source' } }],
      }).text,
      { dir, name: 'bench.yaml' },
    );

    const setvalSql = `SELECT count(setval(format('bench.%I', n)::regclass, v, false)) FROM unnest($1::text[], $2::bigint[]) AS t(n, v)`;
    // The same statement with its values inline, for psql.
    const setvalFile = path.join(dir, 'setval.sql');
    writeFileSync(
      setvalFile,
      `SELECT count(setval(format('bench.%I', n)::regclass, v, false)) FROM unnest('{${names.join(',')}}'::text[], '{${next.join(',')}}'::bigint[]) AS t(n, v);\n`,
    );
    const script = path.join(dir, 'SEQUENCE_VALUES_output.sql');
    writeFileSync(script, ['SET search_path = bench, public;', ...names.map((n, i) => `ALTER SEQUENCE ${n} RESTART WITH ${next[i]};`)].join('\n') + '\n');
    const psql = systemPgTool('psql');
    const around = (method: string) => ({ prepare: () => resetTarget(server, names), check: () => assertAllAt(server, names, next, method) });

    const applyPhase: number[] = [];
    const [cliRun, psqlScript, psqlSetval, libraryRun, setvalSession] = await alternateUntimed(repeat, [
      { ...around('cutover run'), run: () => runProcess([process.execPath, CLI, 'run', file, '--yes', '--state-dir', dir]) },
      { ...around('psql script'), run: () => runProcess([psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', script, server.urlFor('target')]) },
      { ...around('psql setval'), run: () => runProcess([psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', setvalFile, server.urlFor('target')]) },
      {
        ...around('library run'),
        run: async () => {
          let started = 0n;
          const onEvent = (e: RunEvent) => {
            if (e.type === 'step.started') started = process.hrtime.bigint();
            if (e.type === 'step.applied') applyPhase.push(Number(process.hrtime.bigint() - started) / 1e6);
          };
          const result = await runRunbook(loadRunbook(file, { registry, env: {} }), { registry, stateDir: dir, onEvent });
          if (result.status !== 'succeeded') throw new Error(`bench run failed: ${JSON.stringify(result.steps[0]?.error)}`);
        },
      },
      {
        ...around('set-based setval'),
        // A new session, like the step's own: it pays the catalog-cache warm-up for 10,000 relations.
        run: async () => {
          const client = new pg.Client({ connectionString: server.urlFor('target') });
          await client.connect();
          await client.query(setvalSql, [names, next]);
          await client.end();
        },
      },
    ]);
    const bench = 'sequences';
    report({
      bench,
      what: `cutover run of sequence-reset, ${count} sequences (whole process)`,
      baseline: `psql -f of ${count} ALTER SEQUENCE ... RESTART (whole process)`,
      baselineMs: spread(psqlScript!),
      candidateMs: spread(cliRun!),
      target: 0.2,
    });
    report({
      bench,
      what: 'cutover run of sequence-reset (whole process)',
      baseline: 'psql -f of one set-based setval statement (whole process, the floor)',
      baselineMs: spread(psqlSetval!),
      candidateMs: spread(cliRun!),
    });
    report({
      bench,
      what: 'library run of sequence-reset, in-process (plan, apply, verify, journal)',
      baseline: 'the setval statement in a new in-process session',
      baselineMs: spread(setvalSession!),
      candidateMs: spread(libraryRun!),
    });
    report({
      bench,
      what: 'sequence-reset apply phase (step.started to step.applied)',
      baseline: 'the setval statement in a new in-process session',
      baselineMs: spread(setvalSession!),
      candidateMs: spread(applyPhase),
      target: 2,
    });
  } finally {
    await server.stop();
  }
}
