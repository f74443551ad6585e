/**
 * `npm run bench`: the performance comparisons, each against a baseline run
 * in the same script on the same servers. Not part of `npm test`.
 *
 *   npm run bench                       all of them
 *   npm run bench -- --only sequences   sequence-reset (10,000 sequences)
 *   npm run bench -- --only compare     compare (about 256 MB per server, and a 1,000,000-row table)
 *   npm run bench -- --only analyze     analyze (500 tables)
 *   npm run bench -- --only validate    validating 5,000- and 65,536-step runbooks (no server)
 *   npm run bench -- --only startup     CLI start-up against yargs alone (no server)
 *   npm run bench -- --only precheck    upgrade-precheck against pg_upgrade --check (10,000 tables, Debian's 15)
 *   npm run bench -- --only fleet       one runbook over 200 databases: fleet --jobs 1/2/4/8 and 2 queue workers vs shell loops of cutover run (at most 3 repeats)
 * --only takes a comma-separated list too (--only sequences,analyze). --markdown prints each part's table
 * as the README shows it at the end; `node dist/scripts/bench-table.js --readme` writes them into README.md.
 * Options: --pg 17|18 (default 18), --repeat N (default 5), --count N (sequences), --size-mb N (compare), --tables N (analyze),
 *          --precheck-tables N, --targets N (fleet)
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import type { PgVersion } from './embedded-postgres.js';
import { benchAnalyze } from './bench/analyze.js';
import { benchCompare } from './bench/compare.js';
import { benchSequences } from './bench/sequences.js';
import { benchValidate } from './bench/validate.js';
import { benchFleet } from './bench/fleet.js';
import { benchStartup } from './bench/startup.js';
import { benchPrecheck } from './bench/precheck.js';
import { writeResults } from './bench/measure.js';
import { readResults, table } from './bench/table.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    markdown: { type: 'boolean', default: false },
    pg: { type: 'string', default: '18' },
    repeat: { type: 'string', default: '5' },
    count: { type: 'string', default: '10000' },
    'size-mb': { type: 'string', default: '256' },
    tables: { type: 'string', default: '500' },
    targets: { type: 'string', default: '200' },
    'precheck-tables': { type: 'string', default: '10000' },
  },
});
const version = Number(args.pg) as PgVersion;
const repeat = Number(args.repeat);
const parts = args.only?.split(',');
const wanted = (part: string) => parts === undefined || parts.includes(part);

async function main(): Promise<void> {
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  console.log(`machine: ${machine}\n`);
  if (wanted('startup')) {
    await benchStartup({ repeat });
    writeResults(machine);
    console.log('');
  }
  if (wanted('sequences')) {
    await benchSequences({ count: Number(args.count), version, repeat });
    writeResults(machine);
    console.log('');
  }
  if (wanted('compare')) {
    await benchCompare({ sizeMb: Number(args['size-mb']), version, repeat, jobs: 2 });
    writeResults(machine);
    console.log('');
  }
  if (wanted('analyze')) {
    await benchAnalyze({ version, repeat, tables: Number(args.tables) });
    writeResults(machine);
    console.log('');
  }
  if (wanted('precheck')) {
    await benchPrecheck({ repeat, tables: Number(args['precheck-tables']) });
    writeResults(machine);
    console.log('');
  }
  if (wanted('validate')) {
    await benchValidate({ repeat });
    writeResults(machine);
    console.log('');
  }
  if (wanted('fleet')) {
    // Its shell loops take seconds per target: three repeats bound the whole part.
    await benchFleet({ version, repeat: Math.min(repeat, 3), targets: Number(args.targets) });
  }
  writeResults(machine);
  if (args.markdown) {
    // After writeResults: the tables read bench/results.json, as the README generator does.
    const results = readResults();
    for (const part of new Set(results.results.map((r) => r.bench))) if (wanted(part)) console.log(`\n${part}:\n\n${table(part, results)}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
