/**
 * Every runbook in runbooks/ validates with the environment that runs it (the
 * demo's, from scripts/demo-runbook.ts), so it names no variable that
 * environment lacks, and needs every one it sets; a file added to runbooks/
 * without an environment here fails. `npm run demo` running the runbook end to end is tested in
 * templates.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEMO_RUNBOOK, demoRunbookEnv } from '../../scripts/demo-runbook.js';
import { cutover, tempDir } from '../helpers/cli.js';

const runbooksDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../runbooks');

/** The environment each runbook is run with, by file name; the values are what the demo would pick. */
function environments(): Record<string, Record<string, string>> {
  const databasesFile = path.join(tempDir(), 'databases.ini');
  writeFileSync(databasesFile, '[databases]\nshop = host=127.0.0.1 port=54321 dbname=shop\n');
  return {
    [path.basename(DEMO_RUNBOOK)]: demoRunbookEnv({
      oldPort: 54321,
      newPort: 54322,
      pgbouncerPort: 64321,
      pgbouncerAdminPassword: 'admin-sample',
      pgbouncerDatabasesFile: databasesFile,
    }),
  };
}

describe('runbooks/', () => {
  const files = readdirSync(runbooksDir).sort();
  const envs = environments();

  it('every file has the environment it runs with', () => {
    assert.deepEqual(files, Object.keys(envs).sort());
  });

  for (const file of files) {
    it(`${file} validates with that environment`, async () => {
      const valid = await cutover(['validate', path.join(runbooksDir, file)], envs[file] ?? {});
      assert.equal(valid.code, 0, valid.stderr);
    });

    it(`${file} needs every variable of that environment (none is set for nothing)`, async () => {
      const env = envs[file] ?? {};
      for (const name of Object.keys(env)) {
        const without = Object.fromEntries(Object.entries(env).filter(([n]) => n !== name));
        // The helper layers env on process.env; undefined unsets the variable there too.
        const invalid = await cutover(['validate', path.join(runbooksDir, file)], { ...without, [name]: undefined });
        assert.equal(invalid.code, 2, `${file} validated without ${name}`);
        assert.match(invalid.stderr, new RegExp(`unset variable ${name}\\b`));
      }
    });
  }
});
