import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Wall time of `body` in milliseconds, with a monotonic clock. */
export async function time(body: () => Promise<void> | void): Promise<number> {
  const started = process.hrtime.bigint();
  await body();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly runs: number;
}

export function spread(xs: readonly number[]): Spread {
  return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), runs: xs.length };
}

/** `min / median / max` in whole milliseconds. */
export const showSpread = (s: Spread): string => `${fmt(s.min)} / ${fmt(s.median)} / ${fmt(s.max)} ms`;
const fmt = (ms: number): string => Math.round(ms).toLocaleString('en-US');

/**
 * Runs every candidate `repeat` times, alternating the order each repetition
 * (forwards, then backwards), so neither side always runs on a warmer
 * machine; returns each one's times.
 */
export async function alternate(repeat: number, candidates: readonly (() => Promise<void>)[]): Promise<number[][]> {
  const times = candidates.map((): number[] => []);
  for (let r = 0; r < repeat; r++) {
    const order = candidates.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) times[i]!.push(await time(candidates[i]!));
  }
  return times;
}

/** One candidate of `alternateUntimed`: `prepare` and `check` run around each timed `run`, untimed. */
export interface Candidate {
  readonly prepare?: () => Promise<void>;
  readonly run: () => Promise<void>;
  readonly check?: () => Promise<void>;
}

/** `alternate`, with untimed work before and after each timed run (a reset, a proof that the run did the job). */
export async function alternateUntimed(repeat: number, candidates: readonly Candidate[]): Promise<number[][]> {
  const times = candidates.map((): number[] => []);
  for (let r = 0; r < repeat; r++) {
    const order = candidates.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const c = candidates[i]!;
      await c.prepare?.();
      times[i]!.push(await time(c.run));
      await c.check?.();
    }
  }
  return times;
}

/** A whole process, from spawn to exit, with stdout and stderr discarded; a non-zero exit is an error. */
export function runProcess(argv: readonly string[], options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}): Promise<void> {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, { stdio: ['ignore', 'ignore', 'pipe'], env: options.env ?? process.env, ...(options.cwd ? { cwd: options.cwd } : {}) });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')} exited with ${code}: ${stderr.slice(0, 2000)}`));
    });
  });
}

/** One measured comparison: a candidate against a baseline, both timed the same way in the same run. */
export interface BenchResult {
  readonly bench: string;
  readonly what: string;
  readonly baseline: string;
  readonly baselineMs: Spread;
  readonly candidateMs: Spread;
  /** candidate median / baseline median. */
  readonly ratio: number;
  /** The ratio the issue asks for (at most), if any. */
  readonly target?: number;
  readonly met?: boolean;
  /** The machine's load average (1, 5, 15 minutes) when the comparison ended: the machine is shared. */
  readonly load?: readonly [number, number, number];
  /** When it was measured (ISO). */
  readonly at?: string;
}

const results: BenchResult[] = [];

/** Prints one comparison line pair and keeps it for bench/results.json. */
export function report(result: Omit<BenchResult, 'ratio' | 'met'>): BenchResult {
  const ratio = result.candidateMs.median / result.baselineMs.median;
  const [l1 = 0, l5 = 0, l15 = 0] = os.loadavg().map((x) => Math.round(x * 10) / 10);
  const full: BenchResult = {
    ...result,
    ratio,
    ...(result.target !== undefined ? { met: ratio <= result.target } : {}),
    load: [l1, l5, l15],
    at: new Date().toISOString(),
  };
  results.push(full);
  const verdict = full.target === undefined ? '' : `  target <= ${full.target}x: ${full.met === true ? 'MET' : 'MISSED'}`;
  console.log(
    `  ${result.what}: ${showSpread(result.candidateMs)}  vs ${result.baseline}: ${showSpread(result.baselineMs)}  (min/median/max of ${result.candidateMs.runs})  = ${ratio.toFixed(2)}x${verdict}`,
  );
  return full;
}

export const resultsFile = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bench/results.json');

/** Writes every comparison of this run to bench/results.json (merged by bench name with earlier runs of other parts). */
export function writeResults(machine: string): void {
  mkdirSync(path.dirname(resultsFile), { recursive: true });
  let previous: BenchResult[] = [];
  try {
    previous = (JSON.parse(readFileSync(resultsFile, 'utf8')) as { results: BenchResult[] }).results;
  } catch {
    // first run
  }
  const benches = new Set(results.map((r) => r.bench));
  const merged = [...previous.filter((r) => !benches.has(r.bench)), ...results];
  writeFileSync(resultsFile, `${JSON.stringify({ machine, written: new Date().toISOString(), results: merged }, null, 2)}\n`);
  console.log(`results: ${resultsFile}`);
}
