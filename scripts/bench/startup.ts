/**
 * CLI start-up, whole process against whole process (issue 23): `cutover
 * --version`, `--help` and `validate` of the demo runbook against a process
 * that imports yargs and parses the same argv (scripts/bench/yargs-baseline),
 * with `node -e 0` for context. Targets: --version and --help within 1.3x of
 * the yargs baseline, validate within 2x.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, report, runProcess, showSpread, spread } from './measure.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const baseline = path.join(here, 'yargs-baseline.js');
const demo = path.join(root, 'templates/logical-replication-cutover.yaml');
/** The variables the demo template names, so it validates as the demo runs it. */
const demoEnv: NodeJS.ProcessEnv = {
  ...process.env,
  CHANGE_TICKET: 'CHG-1',
  OLD_URL: 'postgres://cutover@old.internal/shop',
  NEW_URL: 'postgres://cutover@new.internal/shop',
  PGBOUNCER_ADMIN_URL: 'postgres://admin@pooler.internal:6432/pgbouncer',
  SUBSCRIPTION: 'shop_sub',
  PGBOUNCER_DATABASES_FILE: path.join(root, 'package.json'),
  NEW_HOST: 'new.internal',
  NEW_PORT: '5432',
  FALLBACK_CONNINFO: 'host=old.internal dbname=shop user=cutover',
};

export async function benchStartup(options: { readonly repeat: number }): Promise<void> {
  const repeat = Math.max(options.repeat, 5);
  console.log(`startup: whole processes, order alternated, min/median/max of ${repeat}`);
  const cases = [
    { what: 'cutover --version', argv: ['--version'], target: 1.3 },
    { what: 'cutover --help', argv: ['--help'], target: 1.3 },
    { what: 'cutover validate <demo runbook>', argv: ['validate', demo], target: 2 },
  ];
  for (const c of cases) {
    const [nodeOnly, yargsOnly, ours] = await alternate(repeat, [
      () => runProcess([process.execPath, '-e', '0']),
      () => runProcess([process.execPath, baseline, ...c.argv], { env: demoEnv }),
      () => runProcess([process.execPath, cli, ...c.argv], { env: demoEnv }),
    ]);
    report({ bench: 'startup', what: c.what, baseline: 'yargs parsing the same argv', baselineMs: spread(yargsOnly!), candidateMs: spread(ours!), target: c.target });
    console.log(`    (node -e 0: ${showSpread(spread(nodeOnly!))})`);
  }
}
