/**
 * CLI start-up, whole process against whole process (issue 23): `cutover
 * --version`, `--help` and `validate` of the demo runbook against a process
 * that imports yargs and parses the same argv (scripts/bench/yargs-baseline),
 * with `node -e 0` for context. Targets: --version and --help within 1.3x of
 * the yargs baseline, validate within 2x.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_RUNBOOK, demoRunbookEnv } from '../demo-runbook.js';
import { alternate, report, runProcess, showSpread, spread } from './measure.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const cli = path.join(root, 'dist/cli/main.js');
const baseline = path.join(here, 'yargs-baseline.js');
/** The demo's runbook with the environment the demo gives it (made-up ports, an existing file), so it validates as the demo runs it. */
const demo = DEMO_RUNBOOK;
const demoEnv: NodeJS.ProcessEnv = {
  ...process.env,
  ...demoRunbookEnv({
    oldPort: 5432,
    newPort: 5433,
    pgbouncerPort: 6432,
    pgbouncerAdminPassword: 'admin-bench',
    pgbouncerDatabasesFile: path.join(root, 'package.json'),
  }),
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
    report({
      bench: 'startup',
      what: c.what,
      baseline: 'yargs parsing the same argv',
      baselineMs: spread(yargsOnly!),
      candidateMs: spread(ours!),
      target: c.target,
    });
    console.log(`    (node -e 0: ${showSpread(spread(nodeOnly!))})`);
  }
}
