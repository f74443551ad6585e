/**
 * upgrade-precheck checks a database in two sessions that take its checks in
 * turn (the two type-usage walks run side by side), on a real PostgreSQL 18
 * whose log names every connection: exactly two of the step's sessions log
 * in to the database, and the findings keep the checks' order.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPostgres, type TestServer } from '../helpers/pg.js';
import { findingsOf, plan } from '../helpers/precheck.js';

describe('upgrade-precheck sessions on PostgreSQL 18', () => {
  let server: TestServer;

  before(async () => {
    server = await startPostgres(18, { log_connections: 'on' });
    await server.query('CREATE DATABASE big');
    // One defect for each of the two walks, in the database the two sessions check.
    await server.query('CREATE TABLE procs (p regproc); CREATE TABLE kept_rows (r pg_class)', [], 'big');
    await server.release('big');
  });

  after(async () => {
    await server.stop();
  });

  test("two sessions check the database, and the findings keep the checks' order", async () => {
    const result = await plan(server, '');
    const inBig = findingsOf(result).filter((f) => f.database === 'big' && ['reg-types', 'system-composite-types'].includes(f.id));
    assert.deepEqual(
      inBig.map((f) => [f.id, f.objects]),
      [
        ['reg-types', 'public.procs.p'],
        ['system-composite-types', 'public.kept_rows.r'],
      ],
    );
    const log = readFileSync(path.join(path.dirname(server.dataDir), 'log'), 'utf8');
    const sessions = [...log.matchAll(/connection authorized: user=\S+ database=big application_name=cutover\/[^/\s]+\/(\S+)/g)].map((m) => m[1]);
    assert.deepEqual(sessions.sort(), ['precheck/plan', 'precheck/plan/1'], log.slice(-3000));
  });
});
