/**
 * `npm run bench`: the performance comparisons, each against a baseline run
 * in the same script on the same servers. Not part of `npm test`.
 *
 *   npm run bench                       all of them
 *   npm run bench -- --only sequences   sequence-reset (10,000 sequences)
 *   npm run bench -- --only compare     compare (about 2 GB per server)
 *   npm run bench -- --only analyze     analyze (500 tables)
 *   npm run bench -- --only validate    validating 5,000- and 65,536-step runbooks (no server)
 *   npm run bench -- --only fleet       one runbook over 100 databases: fleet --jobs 1/2/4 vs shell loops of cutover run
 * Options: --pg 17|18 (default 18), --repeat N, --count N (sequences), --size-mb N (compare), --tables N (analyze), --targets N (fleet)
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import type { PgVersion } from './embedded-postgres.js';
import { benchAnalyze } from './bench/analyze.js';
import { benchCompare } from './bench/compare.js';
import { benchSequences } from './bench/sequences.js';
import { benchValidate } from './bench/validate.js';
import { benchFleet } from './bench/fleet.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    pg: { type: 'string', default: '18' },
    repeat: { type: 'string', default: '3' },
    count: { type: 'string', default: '10000' },
    'size-mb': { type: 'string', default: '2048' },
    tables: { type: 'string', default: '500' },
    targets: { type: 'string', default: '100' },
  },
});
const version = Number(args.pg) as PgVersion;
const repeat = Number(args.repeat);

async function main(): Promise<void> {
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}\n`);
  if (args.only === undefined || args.only === 'sequences') {
    await benchSequences({ count: Number(args.count), version, repeat });
    console.log('');
  }
  if (args.only === undefined || args.only === 'compare') {
    await benchCompare({ sizeMb: Number(args['size-mb']), version, repeat, jobs: 2 });
    console.log('');
  }
  if (args.only === undefined || args.only === 'analyze') {
    await benchAnalyze({ version, repeat, tables: Number(args.tables) });
    console.log('');
  }
  if (args.only === undefined || args.only === 'validate') {
    await benchValidate({ repeat });
    console.log('');
  }
  if (args.only === undefined || args.only === 'fleet') {
    await benchFleet({ version, repeat, targets: Number(args.targets) });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
