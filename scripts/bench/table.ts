/**
 * The README's performance tables, generated from bench/results.json (what
 * `npm run bench` wrote), never pasted. A table states the machine, the
 * number of runs, the load average when the part ended (the machine is
 * shared) and the date, then one row per comparison: min / median / max of
 * the candidate and of its baseline, the ratio of medians and the target.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resultsFile, type BenchResult, type Spread } from './measure.js';

export interface Results {
  readonly machine: string;
  readonly results: readonly BenchResult[];
}

export const readResults = (): Results => JSON.parse(readFileSync(resultsFile, 'utf8')) as Results;

/** A table cell: `<demo runbook>` would read as an HTML tag, `|` would end the cell. */
const cell = (text: string) => text.replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('|', '\\|');

const ms = (s: Spread) => `${[s.min, s.median, s.max].map((x) => Math.round(x).toLocaleString('en-US')).join(' / ')} ms`;

/** The markdown of one bench's results, exactly as the README shows it. */
export function table(bench: string, { machine, results }: Results = readResults()): string {
  const rows = results.filter((r) => r.bench === bench);
  if (rows.length === 0) throw new Error(`bench/results.json has no results for "${bench}": run npm run bench -- --only ${bench}`);
  const loads = [...new Set(rows.map((r) => (r.load === undefined ? 'not recorded' : r.load.join(' / '))))].join(', then ');
  const day = rows[0]?.at?.slice(0, 16).replace('T', ' ') ?? 'unknown date';
  return [
    `Generated from bench/results.json, part \`${bench}\` of \`npm run bench\` (${day} UTC; ${machine}; min / median / max of ${rows[0]?.candidateMs.runs ?? '?'} runs, order alternated; load average 1 / 5 / 15 min as it ended: ${loads}, on a machine other test suites share):`,
    '',
    '| measured | time | against | its time | ratio of medians | target |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const target = r.target === undefined ? '' : `<= ${r.target}x: ${r.met === true ? 'met' : 'missed'}`;
      return `| ${cell(r.what)} | ${ms(r.candidateMs)} | ${cell(r.baseline)} | ${ms(r.baselineMs)} | ${r.ratio.toFixed(2)}x | ${target} |`;
    }),
  ].join('\n');
}

const MARKED = /(<!-- bench:([a-z-]+) -->)[\s\S]*?(<!-- \/bench:\2 -->)/g;

/**
 * `text` with every section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` replaced by NAME's table;
 * with `only`, just those sections (the others keep the figures of the run that made them).
 */
export function rewriteMarked(text: string, results: Results = readResults(), only?: readonly string[]): { text: string; benches: string[] } {
  const benches: string[] = [];
  const out = text.replace(MARKED, (section: string, open: string, bench: string, close: string) => {
    if (only !== undefined && only.length > 0 && !only.includes(bench)) return section;
    benches.push(bench);
    return `${open}\n${table(bench, results)}\n${close}`;
  });
  return { text: out, benches };
}

export function rewriteReadme(file: string, only?: readonly string[]): string[] {
  const { text, benches } = rewriteMarked(readFileSync(file, 'utf8'), readResults(), only);
  writeFileSync(file, text);
  return benches;
}
