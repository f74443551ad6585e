/**
 * The runbook `npm run demo` runs (runbooks/shop-cutover.yaml) and the
 * environment it gives it: only what the demo picks when it starts. The
 * runbooks test validates the runbook with this same function, so a variable
 * the runbook names and the demo does not set fails a test, not the demo.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Compiled to dist/scripts/: the package root is two levels up. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const DEMO_RUNBOOK = path.join(root, 'runbooks', 'shop-cutover.yaml');

/** What the demo chooses at start: free ports, a random admin password, a temporary directory. */
export interface DemoMachine {
  readonly oldPort: number;
  readonly newPort: number;
  readonly pgbouncerPort: number;
  readonly pgbouncerAdminPassword: string;
  /** The file pgbouncer.ini pulls in with %include, holding [databases]. */
  readonly pgbouncerDatabasesFile: string;
}

export function demoRunbookEnv(machine: DemoMachine): Record<string, string> {
  return {
    OLD_PORT: String(machine.oldPort),
    NEW_PORT: String(machine.newPort),
    PGBOUNCER_PORT: String(machine.pgbouncerPort),
    PGBOUNCER_ADMIN_PASSWORD: machine.pgbouncerAdminPassword,
    PGBOUNCER_DATABASES_FILE: machine.pgbouncerDatabasesFile,
  };
}
