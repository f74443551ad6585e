/**
 * Markdown tables for the README from the last `npm run bench`
 * (bench/results.json), one per bench: what was measured, min / median / max
 * of the candidate and of its baseline, the ratio of medians and the target.
 *
 *   node dist/scripts/bench-table.js [bench]
 */
import { readFileSync } from 'node:fs';
import { resultsFile, type BenchResult, type Spread } from './bench/measure.js';

const { machine, results } = JSON.parse(readFileSync(resultsFile, 'utf8')) as { machine: string; results: BenchResult[] };
const only = process.argv[2];
const ms = (s: Spread) => `${[s.min, s.median, s.max].map((x) => Math.round(x).toLocaleString('en-US')).join(' / ')} ms`;

for (const bench of [...new Set(results.map((r) => r.bench))].filter((b) => only === undefined || b === only)) {
  console.log(`${bench} (${machine}; min / median / max of ${results.find((r) => r.bench === bench)?.candidateMs.runs ?? '?'} runs):\n`);
  console.log('| measured | time | against | its time | ratio of medians | target |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of results.filter((x) => x.bench === bench)) {
    const target = r.target === undefined ? '' : `<= ${r.target}x: ${r.met === true ? 'met' : 'missed'}`;
    console.log(`| ${r.what} | ${ms(r.candidateMs)} | ${r.baseline} | ${ms(r.baselineMs)} | ${r.ratio.toFixed(2)}x | ${target} |`);
  }
  console.log('');
}
