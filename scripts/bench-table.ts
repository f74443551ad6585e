/**
 * The README's performance tables from the last `npm run bench`
 * (bench/results.json):
 *
 *   node dist/scripts/bench-table.js [bench]     prints the tables (all benches, or one)
 *   node dist/scripts/bench-table.js --readme [NAME...]
 *                                                rewrites every README section between
 *                                                <!-- bench:NAME --> and <!-- /bench:NAME -->
 *                                                with NAME's table (fails if NAME has no results);
 *                                                given names, only those sections
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readResults, rewriteReadme, table } from './bench/table.js';

const readme = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md');

if (process.argv[2] === '--readme') {
  const benches = rewriteReadme(readme, process.argv.slice(3));
  console.log(`README.md: tables of ${benches.join(', ') || 'no bench'} rewritten from bench/results.json`);
} else {
  const results = readResults();
  for (const bench of [...new Set(results.results.map((r) => r.bench))].filter((b) => process.argv[2] === undefined || b === process.argv[2])) {
    console.log(`${bench}:\n\n${table(bench, results)}\n`);
  }
}
