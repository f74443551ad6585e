import type { Argv } from 'yargs';

/** `--json`, in its own module so `validate` can take it without options.ts (which loads the engine). */
export function withJson<T>(y: Argv<T>) {
  return y.option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' });
}
