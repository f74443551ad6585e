/**
 * Fleet fixtures shared by the fleet tests and the fleet bench: target
 * databases with the tables their runbooks write to, and inventories written
 * from objects.
 */
import { stringify } from 'yaml';
import type { TestServer } from '../../scripts/embedded-postgres.js';

/**
 * What a fleet target holds: `effects` (one row per step effect, which the
 * tests count) and `orders` (ten rows with explicit ids, so a sequence-reset
 * has a sequence behind its data, and a table a step can alter).
 */
export const TARGET_TABLES = `CREATE TABLE effects (id serial PRIMARY KEY, step text NOT NULL, at timestamptz DEFAULT now());
CREATE TABLE orders (id serial PRIMARY KEY, note text);
INSERT INTO orders (id, note) SELECT g, 'o' || g FROM generate_series(1, 10) g;`;

/** Creates each target's database on its server, with TARGET_TABLES, and lets go of the harness's session to it. */
export async function createTargets(targets: readonly string[], serverOf: (target: string) => TestServer): Promise<void> {
  for (const t of targets) {
    const s = serverOf(t);
    await s.query(`CREATE DATABASE ${t}`);
    await s.query(TARGET_TABLES, [], t);
    await s.release(t);
  }
}

export interface InventorySpec {
  readonly name: string;
  readonly targets: readonly {
    readonly name: string;
    readonly variables?: Readonly<Record<string, string>>;
    readonly labels?: Readonly<Record<string, string>>;
    readonly secrets?: Readonly<Record<string, { readonly env: string } | { readonly file: string }>>;
  }[];
  /** waves, approval, maxFailures, concurrencyGroups, ... as the inventory format has them. */
  readonly [key: string]: unknown;
}

/** An inventory's YAML from an object. */
export function inventoryText(spec: InventorySpec): string {
  return stringify({ version: 1, ...spec }, { lineWidth: 0 });
}
