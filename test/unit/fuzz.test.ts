/**
 * Property-based fuzzing of runbook validation with fast-check: malformed
 * runbooks (wrong structure and types, broken YAML, hostile interpolation,
 * files that are devices or FIFOs, huge numbers, deep nesting, alias bombs;
 * see test/helpers/fuzz-runbooks.ts). For every case, validation either
 * accepts the runbook or refuses it with issues that each carry a
 * file:line:column inside the file and no JavaScript error name; nothing
 * else may be thrown.
 *
 * Ceilings, not speed targets: each case must finish within 2 s, and the
 * cases run in a worker thread whose heap is capped at 200 MB, so a case
 * that needs more kills the worker and fails the test. Both are generous by
 * design; they catch a hang, an exponential blow-up or a file read without a
 * cap, not slowness.
 *
 * The seed is fixed, so a failure reproduces; fast-check prints the shrunk
 * counter-example. The worst cases found are kept in hostile-input.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { CLI, tempDir } from '../helpers/cli.js';
import { ENV, JS_ERROR, malformedRunbooks, prepareFuzzDir, type FuzzStats } from '../helpers/fuzz-runbooks.js';

const SEED = 20261122;
const RUNS = 600;
const CASE_CEILING_MS = 2_000;
const MEMORY_CEILING_MB = 200;

const dir = tempDir('cutover-fuzz-');
prepareFuzzDir(dir);

describe('fuzz: malformed runbooks get positioned errors in bounded time and memory', () => {
  it(`${RUNS} generated runbooks (seed ${SEED}), validated in-process under a ${MEMORY_CEILING_MB} MB heap`, async () => {
    const worker = new Worker(new URL('../helpers/fuzz-worker.js', import.meta.url), {
      workerData: { dir, seed: SEED, runs: RUNS, caseCeilingMs: CASE_CEILING_MS },
      resourceLimits: { maxOldGenerationSizeMb: MEMORY_CEILING_MB },
    });
    const stats = await new Promise<FuzzStats>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => {
        reject(new Error(`the fuzz worker exited with ${code} before reporting`));
      });
    });
    await worker.terminate();
    // The generator makes malformed runbooks: nearly all must be refused, or it is not testing much.
    assert.ok(stats.refused >= 500, `only ${stats.refused} of ${RUNS} cases were refused`);
    if (process.env['CUTOVER_FUZZ_STATS']) console.log(`fuzz: ${stats.refused}/${stats.runs} refused, slowest ${Math.round(stats.slowestMs)} ms`);
  });

  it('a handful of them through the real CLI: exit 2, file:line:col, no JavaScript error, no stack', () => {
    const samples = fc.sample(malformedRunbooks(dir), { seed: SEED + 1, numRuns: 8 });
    let checked = 0;
    samples.forEach((text, n) => {
      const file = path.join(dir, `cli-${n}.yaml`);
      writeFileSync(file, text);
      const result = spawnSync(process.execPath, [CLI, 'validate', file], {
        encoding: 'utf8',
        env: { ...process.env, ...ENV, CUTOVER_DEBUG: '' },
        timeout: 30_000,
      });
      if (result.status === 0) return; // a mutation that happened to be valid
      checked++;
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^${file.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `, 'm'));
      assert.doesNotMatch(result.stderr, JS_ERROR);
      assert.doesNotMatch(result.stderr, /^\s+at /m);
    });
    assert.ok(checked >= 5, `only ${checked} of the CLI samples were refused`);
  });
});
