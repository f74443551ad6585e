/**
 * `npm run bench`: sequence-reset with 10,000 sequences on one loopback
 * server, against two baselines run in the same script on the same server:
 *
 *   1. one hand-written, set-based setval statement (the floor), in a new
 *      session as psql -c would run it, and again in a session whose caches
 *      are already warm;
 *   2. an ora2pg-style script of 10,000 ALTER SEQUENCE ... RESTART WITH
 *      statements run through psql (what engineers run today).
 *
 * Targets (issue 3): step apply <= 2x the setval statement, and at least 5x
 * faster than the psql script. Durability is on (fsync, synchronous_commit),
 * as on a real server.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseRunbook, registry, runRunbook, type RunEvent } from '../../src/index.js';
import { startPostgres, type PgVersion, type TestServer } from '../embedded-postgres.js';
import { median, time } from './measure.js';
import { systemPgTool } from '../tools.js';


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
    await server.query(names.slice(i, i + 1000).map((n) => `CREATE SEQUENCE bench.${n}`).join(';'), [], db);
  }
}

/** Puts every target sequence back to (1, false), untimed, so each repetition does the same work. */
async function resetTarget(server: TestServer, names: readonly string[]): Promise<void> {
  await server.query(
    `SELECT count(setval(format('bench.%I', n)::regclass, 1, false)) FROM unnest($1::text[]) AS n`,
    [names],
    'target',
  );
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

const ms = (x: number) => `${x.toFixed(1)} ms`;

export async function benchSequences(options: SequenceBenchOptions): Promise<void> {
  const { count, version, repeat } = options;
  const names = Array.from({ length: count }, (_, i) => `s${i + 1}`);
  console.log(`sequence-reset bench: ${count} sequences, PostgreSQL ${version}, median of ${repeat}`);
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

    const text = `version: 1
name: bench
connections:
  source: { kind: postgres, url: "${server.urlFor('source')}" }
  target: { kind: postgres, url: "${server.urlFor('target')}" }
steps:
  - id: reset
    kind: sequence-reset
    connection: target
    from: { connection: source }
`;
    const file = path.join(dir, 'bench.yaml');
    writeFileSync(file, text);
    const runbook = parseRunbook(text, file, { registry, env: {} });

    const setvalTimes: number[] = [];
    const warmTimes: number[] = [];
    const applyTimes: number[] = [];
    const planTimes: number[] = [];
    const psqlTimes: number[] = [];
    const script = path.join(dir, 'SEQUENCE_VALUES_output.sql');
    writeFileSync(
      script,
      ['SET search_path = bench, public;', ...names.map((n, i) => `ALTER SEQUENCE ${n} RESTART WITH ${next[i]};`)].join('\n') + '\n',
    );
    const psqlPath = systemPgTool('psql');

    for (let r = 0; r < repeat; r++) {
      const setvalSql = `SELECT count(setval(format('bench.%I', n)::regclass, v, false)) FROM unnest($1::text[], $2::bigint[]) AS t(n, v)`;
      await resetTarget(server, names);
      // A new session, like the step's own: it pays the catalog-cache warm-up for 10,000 relations.
      setvalTimes.push(
        await time(async () => {
          const client = new pg.Client({ connectionString: server.urlFor('target') });
          await client.connect();
          await client.query(setvalSql, [names, next]);
          await client.end();
        }),
      );
      await assertAllAt(server, names, next, 'set-based setval');
      await resetTarget(server, names);
      // The same statement on a session that has just touched every sequence.
      warmTimes.push(await time(async () => void (await server.query(setvalSql, [names, next], 'target'))));
      await assertAllAt(server, names, next, 'set-based setval');

      await resetTarget(server, names);
      const events: RunEvent[] = [];
      const result = await runRunbook(runbook, { registry, stateDir: dir, onEvent: (e) => events.push(e) });
      if (result.status !== 'succeeded') throw new Error(`bench run failed: ${JSON.stringify(result.steps[0]?.error)}`);
      const applied = events.find((e) => e.type === 'step.applied');
      const planned = events.find((e) => e.type === 'step.planned');
      if (applied?.type !== 'step.applied' || planned?.type !== 'step.planned') throw new Error('no step timings');
      applyTimes.push(applied.durationMs);
      planTimes.push(planned.durationMs);
      await assertAllAt(server, names, next, 'sequence-reset');

      await resetTarget(server, names);
      psqlTimes.push(
        await time(async () => {
          execFileSync(psqlPath, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', script, server.urlFor('target')], { stdio: 'ignore' });
        }),
      );
      await assertAllAt(server, names, next, 'psql script');
    }

    const setval = median(setvalTimes);
    const apply = median(applyTimes);
    console.log('');
    console.log(`hand-written set-based setval, new session:    ${ms(setval)}`);
    console.log(`  the same statement on a warm session:         ${ms(median(warmTimes))}`);
    console.log(`sequence-reset apply (engine-measured):        ${ms(apply)}   (plan, untimed by the target: ${ms(median(planTimes))})`);
    const psql = median(psqlTimes);
    console.log(`psql script, ${count} ALTER SEQUENCE ... RESTART:  ${ms(psql)}`);
    console.log('');
    console.log(`apply / setval = ${(apply / setval).toFixed(2)}x   (target <= 2x)  ${apply / setval <= 2 ? 'met' : 'MISSED'}`);
    console.log(`apply / warm setval = ${(apply / median(warmTimes)).toFixed(2)}x   (the gap is the new session's catalog-cache warm-up)`);
    console.log(`psql / apply   = ${(psql / apply).toFixed(1)}x   (target >= 5x)  ${psql / apply >= 5 ? 'met' : 'MISSED'}`);
  } finally {
    await server.stop();
  }
}
