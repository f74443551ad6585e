/**
 * What validation knows about a step kind, and the validated step itself.
 * The runbook loader checks a step against these rules; the step contract
 * (src/step/contract.ts) extends them with plan, apply, verify and rollback.
 * They live here so that the loader never imports the contract above it.
 */
import type { z } from 'zod';
import type { ConnectionKind } from '../db/connection-spec.js';

/**
 * How a step's effects relate to its connection, which decides crash recovery:
 * - `none`: it writes nothing; after a crash it is simply run again.
 * - `transaction`: everything it writes happens in one transaction on
 *   `step.connection`, which the engine opens; it journals the transaction's
 *   id before COMMIT, so after a crash the server's pg_xact_status says
 *   exactly whether it committed.
 * - `external`: side effects outside one transaction; after a crash its
 *   outcome is unknown, and it is re-run only if marked `idempotent`.
 */
export type Effects = 'none' | 'transaction' | 'external';

/** A validated step; `Config` holds the kind's own fields. */
export interface Step<Config = Record<string, unknown>> {
  readonly id: string;
  readonly kind: string;
  readonly description?: string;
  readonly connection?: string;
  readonly timeoutMs?: number;
  readonly retries: number;
  readonly confirm?: string;
  readonly idempotent: boolean;
  /** Part of the downtime window (for reports' projected window). */
  readonly window: boolean;
  readonly config: Config;
  /** Where the step starts in the runbook file, for messages. */
  readonly line: number;
}

/** A validated step of a kind that requires a connection: validation refused it without one. */
export interface ConnectedStep<Config = Record<string, unknown>> extends Step<Config> {
  readonly connection: string;
}

/** What a kind's `validate` may ask of the runbook around it. */
export interface ValidationContext {
  connectionKind(name: string): ConnectionKind | undefined;
}

/** A problem in a step's own fields; `path` is relative to the step (e.g. `['acceptPositionLoss']`). */
export interface ConfigIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** The part of a step kind's definition that validation uses. */
export interface KindRules<Schema extends z.ZodObject = z.ZodObject> {
  readonly kind: string;
  /** One line for `cutover kinds` and the JSON Schema. */
  readonly summary: string;
  /** The kind's own fields (besides id, kind, connection, ...). Unknown keys are rejected. */
  readonly config: Schema;
  /** Whether `step.connection` is required, and which connection kinds it may name. */
  readonly connection: { readonly required: boolean; readonly kinds: readonly ConnectionKind[] };
  /**
   * Rules across fields that a schema cannot say (e.g. `drop` needs an
   * explicit selection). Reported at validation with the key's position.
   */
  validate?(config: z.output<Schema>, runbook: ValidationContext): readonly ConfigIssue[];
  /**
   * Files the step reads, relative to the runbook (`path` relative to the
   * step). Validation refuses any that is not a regular file within the value
   * file size cap, with its position.
   */
  files?(config: z.output<Schema>): readonly { readonly path: readonly (string | number)[]; readonly file: string }[];
  /** Connections besides `step.connection` that the step uses (checked at validation, locked at run). */
  connections?(config: z.output<Schema>): readonly string[];
  effects(config: z.output<Schema>): Effects;
  /**
   * The form runbooks wrote before this kind existed (`kind:
   * replication-slots` with `action: drop`): the loader reads such a step as
   * this kind, without that key, and says so in a deprecation note, so a
   * runbook already written keeps working.
   */
  readonly replaces?: { readonly kind: string; readonly key: string; readonly value: string };
  /**
   * Re-running apply after an unknown outcome converges on the same state,
   * whatever the runbook says. Lets `resume --yes` re-run it.
   */
  readonly idempotent?: boolean;
}

/** Every kind a runbook may use, by name. */
export type KindRulesRegistry = Readonly<Record<string, KindRules>>;
