/** Planning an upgrade-precheck runbook against test servers, and reading its findings. */
import { planRunbook, registry, type RunResult } from '../../src/index.js';
import { loadRunbookText } from './runbook.js';
import type { TestServer } from './pg.js';

export interface FindingRow {
  id: string;
  severity: string;
  database: string | null;
  objects: string;
  message: string;
}

export const findingsOf = (result: RunResult) => (result.steps[0]?.plan?.tables?.[0]?.rows ?? []) as unknown as FindingRow[];

/** The distinct finding ids, sorted, optionally of one severity. */
export const ids = (result: RunResult, severity?: string) =>
  [
    ...new Set(
      findingsOf(result)
        .filter((f) => severity === undefined || f.severity === severity)
        .map((f) => f.id),
    ),
  ].sort();

/** Plans one upgrade-precheck step against `old`; `fields` are extra step lines, `extra` extra connection lines. */
export function plan(old: TestServer, fields: string, extra = '', targetVersion = 18): Promise<RunResult> {
  const text = `version: 1
name: precheck
connections:
  old: { kind: postgres, url: "${old.url}" }
${extra}steps:
  - id: precheck
    kind: upgrade-precheck
    connection: old
    targetVersion: ${targetVersion}
${fields}`;
  const { runbook, dir } = loadRunbookText(text, { env: {} });
  return planRunbook(runbook, { registry, stateDir: dir });
}
