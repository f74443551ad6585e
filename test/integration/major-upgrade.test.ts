/**
 * The pg-major-upgrade template's window on a real pg_upgrade (Debian's 15 ->
 * 15, the only pg_upgrade here): freeze-writes' role setting travels into the
 * new cluster with pg_role settings, and the template's thaw-new step lifts
 * it there, so the application's role can write after the upgrade. The
 * template's own shell steps use sudo and systemctl, which do not run here;
 * this runbook does the same with pg_ctl, and takes the thaw-new step from
 * the template file itself. The new cluster is not running when the run
 * starts, so the run locks it when the first step that uses it starts.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { registry, runRunbook } from '../../src/index.js';
import { freePort, osUser } from '../../scripts/embedded-postgres.js';
import { binDir, initPostgres, startPostgres, type TestServer } from '../helpers/pg.js';
import { loadRunbookText } from '../helpers/runbook.js';
import { tempDir } from '../helpers/cli.js';
import { TEMPLATES_DIR } from '../../src/templates.js';

describe('pg-major-upgrade template: the freeze does not outlive pg_upgrade', () => {
  let old: TestServer;
  let target: Awaited<ReturnType<typeof initPostgres>>;
  let newPort = 0;
  const asPostgres = osUser() === undefined ? [] : ['runuser', '-u', 'postgres', '--'];
  const bin = (name: string) => path.join(binDir(15), name);

  before(async () => {
    old = await startPostgres(15);
    target = await initPostgres(15);
    newPort = await freePort();
    await old.query('CREATE ROLE shop_app LOGIN');
    await old.query('CREATE DATABASE shop');
    await old.query('CREATE TABLE t (i int); GRANT INSERT ON t TO shop_app', [], 'shop');
  });
  after(async () => {
    await runAs([bin('pg_ctl'), '-D', target.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    target.remove();
    await old.stop();
  });

  async function runAs(argv: string[]): Promise<void> {
    const { execa } = await import('execa');
    await execa(argv[0] ?? '', argv.slice(1));
  }

  it('the role is read-only on the new cluster after pg_upgrade until thaw-new, then writes', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755); // the postgres user passes through it to the working directory below
    // pg_upgrade writes its logs into its working directory: one the postgres user owns, relative to the runbook.
    mkdirSync(path.join(dir, 'upgrade'));
    const user = osUser();
    if (user) chownSync(path.join(dir, 'upgrade'), user.uid, user.gid);
    const template = parse(readFileSync(path.join(TEMPLATES_DIR, 'pg-major-upgrade.yaml'), 'utf8')) as { steps: { id: string }[] };
    const thaw = template.steps.find((s) => s.id === 'thaw-new');
    assert.ok(thaw !== undefined, 'the template has a thaw-new step');
    const newUrl = `postgres://postgres@127.0.0.1:${newPort}/shop`;
    const runbook = {
      version: 1,
      name: 'major upgrade window',
      connections: { old: { kind: 'postgres', url: old.urlFor('shop') }, new: { kind: 'postgres', url: newUrl, startedByRunbook: true } },
      defaults: { onFailure: 'stop' },
      steps: [
        { id: 'freeze', kind: 'freeze-writes', connection: 'old', roles: ['${APP_ROLE}'] },
        { id: 'stop-old', kind: 'shell', command: [...asPostgres, bin('pg_ctl'), '-D', old.dataDir, '-m', 'fast', '-w', 'stop'], stops: ['old'] },
        {
          id: 'pg-upgrade',
          kind: 'shell',
          command: [
            ...asPostgres,
            bin('pg_upgrade'),
            '-b',
            binDir(15),
            '-B',
            binDir(15),
            '-d',
            old.dataDir,
            '-D',
            target.dataDir,
            '-U',
            'postgres',
            '-p',
            String(old.port),
            '-P',
            String(newPort),
          ],
          cwd: 'upgrade',
        },
        {
          id: 'start-new',
          kind: 'shell',
          command: [
            ...asPostgres,
            bin('pg_ctl'),
            '-D',
            target.dataDir,
            '-o',
            `-p ${newPort} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${path.dirname(target.dataDir)}`,
            '-l',
            path.join(path.dirname(target.dataDir), 'log'),
            '-w',
            'start',
          ],
        },
        {
          id: 'carried-over',
          kind: 'wait',
          connection: 'new',
          query:
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'shop_app' AND 'default_transaction_read_only=on' = ANY (s.setconfig)",
          expect: 1,
          timeout: '1s',
        },
        thaw,
      ],
    };
    const loaded = loadRunbookText(stringify(runbook), { dir, env: { APP_ROLE: 'shop_app' } });
    const result = await runRunbook(loaded.runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps.map((s) => [s.id, s.status, s.error?.message])));
    const journal = readFileSync(result.journalFile, 'utf8');
    const locked = [...journal.matchAll(/"type":"target.locked","connection":"(\w+)"/g)].map((m) => m[1]);
    assert.deepEqual(locked, ['old', 'new'], 'the new cluster is locked once it runs, after the old one');

    const app = new pg.Client({ connectionString: newUrl.replace('postgres@', 'shop_app@') });
    await app.connect();
    try {
      await app.query('INSERT INTO t VALUES (1)');
      assert.deepEqual((await app.query('SHOW default_transaction_read_only')).rows, [{ default_transaction_read_only: 'off' }]);
    } finally {
      await app.end();
    }
  });
});
