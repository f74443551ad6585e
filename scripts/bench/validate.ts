/**
 * Validation of large runbooks: a 5,000-step runbook (target under 1 s) and
 * the 65,536-step one from issue 15, to show the cost grows linearly, and how
 * much of it is the YAML parser alone (the floor: every byte must be parsed).
 */
import { LineCounter, parseDocument } from 'yaml';
import { parseRunbook, registry } from '../../src/index.js';
import { median, time } from './measure.js';

function bigRunbook(steps: number): string {
  const body = Array.from({ length: steps }, (_, i) => `  - id: s${i}\n    kind: sql\n    connection: db\n    sql: SELECT ${i}\n    timeout: 5s\n`).join('');
  return `version: 1\nname: big\nconnections:\n  db:\n    kind: postgres\n    url: postgres://u@localhost/db\nsteps:\n${body}`;
}

export async function benchValidate(options: { readonly repeat: number; readonly sizes?: readonly number[] }): Promise<void> {
  console.log('validate: large runbooks (in-process; median of runs)');
  console.log('  steps     bytes   yaml parse   validate   per step   peak rss');
  for (const steps of options.sizes ?? [5_000, 65_536]) {
    const text = bigRunbook(steps);
    const parse: number[] = [];
    const validate: number[] = [];
    for (let r = 0; r < options.repeat; r++) {
      parse.push(await time(() => void parseDocument(text, { lineCounter: new LineCounter(), uniqueKeys: true })));
      validate.push(await time(() => void parseRunbook(text, 'big.yaml', { registry, env: {} })));
    }
    const v = median(validate);
    console.log(
      `  ${String(steps).padStart(6)} ${String(text.length).padStart(9)} ${median(parse).toFixed(0).padStart(9)} ms ${v.toFixed(0).padStart(7)} ms ${((v * 1000) / steps).toFixed(0).padStart(6)} us ${String(Math.round(process.resourceUsage().maxRSS / 1024)).padStart(7)} MB`,
    );
  }
}
