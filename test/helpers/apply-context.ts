/**
 * An ApplyContext for calling a kind's plan, apply or rollback directly, as
 * the engine would: everything a test does not give throws when used, so a
 * kind reaching for something unexpected fails the test.
 */
import type { ApplyContext } from '../../src/step/contract.js';

const unused = (): never => {
  throw new Error('not used by this test');
};

export function applyContext<Before>(given: Partial<ApplyContext<Before>> = {}): ApplyContext<Before> {
  return {
    runId: 'direct',
    dryRun: false,
    signal: new AbortController().signal,
    session: unused,
    resolved: unused,
    sessionIn: unused,
    sessionAs: unused,
    oracle: unused,
    resolvePath: (file) => file,
    connectionEnv: () => ({}),
    commands: unused,
    progress: () => {},
    tx: undefined,
    confirm: async () => true,
    recordBefore: () => {},
    priorBefore: undefined,
    force: false,
    ...given,
  };
}
