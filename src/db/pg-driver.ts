/**
 * node-postgres, loaded the first time a connection is opened rather than when
 * the library is imported: `cutover validate`, `--help` and the other commands
 * that connect to nothing do not pay for it (about 60 ms of start-up here).
 */
import type pg from 'pg';

let loading: Promise<typeof pg> | undefined;

export function loadPg(): Promise<typeof pg> {
  loading ??= import('pg').then((module) => module.default);
  return loading;
}
