/**
 * The step contract. The engine knows this file and nothing about any kind:
 * a step kind is one module under src/steps/ exporting a `StepDefinition`,
 * listed in the registry (src/steps/index.ts).
 *
 * Life of a step: `plan` (read-only, returns the exact actions and the
 * kind's typed `planned` payload) -> `apply` (executes that payload and
 * nothing else, returns the before-state needed to undo it) -> `verify`
 * (post-condition) -> maybe `rollback` (from the before-state). Payload and
 * before-state cross the journal and saved plans as JSON and come back
 * parsed with the kind's schemas, never cast.
 */
import { z } from 'zod';
import type { Queryable } from '../db/session.js';
import type { CommandRunner } from './commands.js';
import type { ResolvedConnection } from '../db/connections.js';
import type { OracleSession } from '../db/oracle.js';
import type { ConnectionKind } from '../db/connection-spec.js';
import type { ConnectedStep, ConfigIssue, Effects, KindRules, Step, ValidationContext } from '../runbook/kind.js';

export type { ConnectedStep, ConfigIssue, Effects, Step, ValidationContext };

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** Any JSON value, for before-state schemas that only check the outer shape. */
export const jsonValue: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);

/** One thing a step would do, exactly as it would be done. */
export type Action =
  | {
      readonly type: 'sql';
      readonly connection: string;
      readonly sql: string;
      readonly params?: readonly Json[];
      /** False for statements that cannot run inside a transaction block. */
      readonly transaction?: boolean;
    }
  | {
      readonly type: 'command';
      /** argv, never a shell string. */
      readonly argv: readonly string[];
      readonly cwd?: string;
      /** Names only: values may be secrets. */
      readonly envKeys?: readonly string[];
    }
  | { readonly type: 'prompt'; readonly question: string }
  | {
      readonly type: 'file';
      /** The file rewritten atomically (a temporary file, fsync, rename). */
      readonly path: string;
      /** sha256 of the contents the plan read: apply refuses a file that changed since. */
      readonly sha256: string;
      /** What changes, entry by entry; everything else in the file stays byte for byte. */
      readonly edits: readonly FileEdit[];
    }
  | {
      readonly type: 'http';
      readonly connection: string;
      readonly method: 'GET' | 'POST';
      /** The member's base URL and the path, e.g. `http://10.0.0.1:8008/switchover`. */
      readonly url: string;
      readonly body?: Json;
      /** What the step waits for after the request, as a person reads it. */
      readonly then?: string;
    }
  | {
      readonly type: 'poll';
      readonly connection: string;
      readonly sql: string;
      readonly expect: Json;
      readonly intervalMs: number;
      readonly timeoutMs: number;
    };

/** One entry of a file a step rewrites: its values now and after (null: the key is absent). */
export interface FileEdit {
  readonly entry: string;
  readonly from: { readonly [key: string]: string | null };
  readonly to: { readonly [key: string]: string | null };
}

/** `host a -> b, port 5432 -> 6432`: only the keys that change. */
export function describeFileEdit(edit: FileEdit): string {
  const keys = [...new Set([...Object.keys(edit.from), ...Object.keys(edit.to)])];
  const show = (v: string | null | undefined) => (v === null || v === undefined ? '(unset)' : v);
  const changed = keys.filter((k) => edit.from[k] !== edit.to[k]).map((k) => `${k} ${show(edit.from[k])} -> ${show(edit.to[k])}`);
  return `${edit.entry}: ${changed.length > 0 ? changed.join(', ') : 'unchanged'}`;
}

/** A value the step would change: what it is now and what it would become. */
export interface Change {
  readonly subject: string;
  readonly current: Json;
  readonly desired: Json;
}

/** Rows a person reads in the plan (and a program reads in --json): one object per row. */
export interface PlanTable {
  readonly title: string;
  readonly columns: readonly { readonly key: string; readonly title: string; readonly align?: 'left' | 'right' }[];
  readonly rows: readonly { readonly [key: string]: Json }[];
  readonly footer?: string;
}

/**
 * What `plan` returns. `planned` is the kind's typed payload: everything
 * `apply` executes, and nothing volatile (counts, lags, pids shown to a
 * reviewer go in `tables`). A saved plan stores it, and `run --plan` refuses
 * to go on when a fresh plan's payload differs.
 */
export interface StepPlan<Planned = Json> {
  readonly actions: readonly Action[];
  readonly planned: Planned;
  readonly changes?: readonly Change[];
  readonly notes?: readonly string[];
  readonly tables?: readonly PlanTable[];
  /**
   * Why this plan must not be applied (a value out of range, a missing
   * object). The engine journals the plan, then fails the step, in a dry run
   * too, so a reviewer sees both the plan and the reasons.
   */
  readonly blockers?: readonly string[];
  /** Read-only output a plan produced (e.g. a `readOnly` shell step in dry-run). */
  readonly output?: string;
}

/** What rolling back means for a step (may depend on its config). */
export type Reversibility = { readonly kind: 'reversible' } | { readonly kind: 'nothing-to-undo' } | { readonly kind: 'irreversible'; readonly reason: string };

export interface ApplyOutcome<Before = Json> {
  /** What `rollback` needs to restore the previous state exactly (null if nothing). */
  readonly before: Before;
  /** Output worth keeping in the journal (redacted and truncated by the engine). */
  readonly output?: string;
  readonly details?: Json;
}

/** The step a kind's functions receive: with `connection` when the kind requires one. */
export type StepOf<Config, Connected extends boolean> = Connected extends true ? ConnectedStep<Config> : Step<Config>;

/** Asked by `confirm` steps and `confirm:` gates; the CLI decides how to ask. */
export type ConfirmFn = (question: string) => Promise<boolean>;

export interface BaseContext {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly signal: AbortSignal;
  /**
   * A session on a named connection, opened for this step (read-only in plan
   * and verify). `worker` > 0 gives further sessions on the same connection,
   * for work done in parallel.
   */
  session(connection: string, worker?: number): Promise<Queryable>;
  /** A non-PostgreSQL connection (e.g. Oracle) resolved from the runbook, secrets included. */
  resolved(connection: string): ResolvedConnection;
  /**
   * A session on another database of a named connection's server, same
   * credentials (read-only in plan and verify). `worker` > 0 gives further
   * sessions on that database, for work done in parallel.
   */
  sessionIn(connection: string, database: string, worker?: number): Promise<Queryable>;
  /**
   * A session that logs in to a named connection (optionally another
   * database on its server) as `user` (without the
   * connection's password: trust, peer, cert or ~/.pgpass must admit it) and
   * leaves the server's own default_transaction_read_only in force, to prove
   * what that role can do. Not available in a dry run.
   */
  sessionAs(connection: string, user: string, database?: string): Promise<Queryable>;
  /** A session on a named Oracle connection (Thin mode; injectable for tests). */
  oracle(connection: string): Promise<OracleSession>;
  /** A path written in the runbook, resolved against the runbook's directory. */
  resolvePath(file: string): string;
  /** Environment for commands that need to reach a connection (PGHOST, PGPASSWORD, ...). */
  connectionEnv(connection: string): Readonly<Record<string, string>>;
  readonly commands: CommandRunner;
  /** Live, human-readable progress (e.g. remaining lag); not journaled. */
  progress(message: string): void;
}

export interface ApplyContext<Before = Json> extends BaseContext {
  /**
   * For `transaction` steps: the open transaction on `step.connection`. The
   * engine journals its transaction id, then commits it.
   */
  readonly tx: Queryable | undefined;
  confirm: ConfirmFn;
  /**
   * Journals the before-state (fsync'ed) before the step writes anything.
   * For steps whose writes are not transactional (setval, commands): if the
   * process dies mid-apply, rollback still knows what to restore. A step that
   * records its before-state promises that `rollback(before)` is correct
   * whatever part of its apply happened.
   */
  recordBefore(before: Before): void;
  /**
   * The before-state an earlier attempt of this step recorded in this run
   * (a retry, or a re-run after a crash), which may already have written:
   * merge it, so rollback restores the state from before the first attempt.
   * Parsed with the kind's `before` schema.
   */
  readonly priorBefore: Before | undefined;
  /** `cutover rollback --force`: override a rollback's safety refusals. */
  readonly force: boolean;
}

/** One line of `cutover check`: what was checked, what was found, and what to do about it. */
export interface CheckFinding {
  readonly severity: 'ok' | 'warning' | 'error';
  /** Short name of the check, e.g. `REPLICATION privilege`. */
  readonly check: string;
  readonly message: string;
  /** What a person should do when it is not ok. */
  readonly fix?: string;
}

/** What a kind's `check` may use: read-only sessions and a look at PATH. Nothing is written. */
export interface CheckContext {
  readonly signal: AbortSignal;
  /** A read-only session on a connection the preflight already opened successfully. */
  session(connection: string): Promise<Queryable>;
  /**
   * Tries to log in to a connection's server as another role, without the
   * connection's password (as `sessionAs` will), and logs out at once: whether
   * pg_hba admits it. `reason` says why not.
   */
  canLogIn(connection: string, user: string, database?: string): Promise<{ readonly ok: boolean; readonly reason?: string }>;
  /** Where a program is on PATH (or the absolute path given), and its `--version` line for PostgreSQL tools. */
  program(name: string): Promise<{ readonly path: string; readonly version?: string } | undefined>;
  /** The admin console of a pgbouncer connection the preflight opened successfully: SHOW commands only. */
  pgbouncer(connection: string): Promise<PoolerConsole>;
  resolvePath(file: string): string;
}

/** What a check may ask a PgBouncer admin console: `SHOW <what>`, one object per row. */
export interface PoolerConsole {
  show<Row extends object>(what: string): Promise<Row[]>;
}

/** A schema for data that crosses the journal or a saved plan: JSON in, JSON out. */
export type JsonSchema = z.ZodType<Json>;

export interface StepDefinition<
  Schema extends z.ZodObject = z.ZodObject,
  Planned extends JsonSchema = JsonSchema,
  Before extends JsonSchema = JsonSchema,
  Connected extends boolean = boolean,
> extends KindRules<Schema> {
  /**
   * The payload `plan` returns and `apply` executes. The engine parses a
   * journaled or saved payload with it before `apply` or `verify` sees it.
   */
  readonly planned: Planned;
  /**
   * The shape of the before-state `apply` returns (or records). The engine
   * parses the journaled before-state with it before `verify` or `rollback`
   * sees it: a journal edited into another shape is refused, not obeyed.
   */
  readonly before: Before;
  /** Whether `step.connection` is required, and which connection kinds it may name. */
  readonly connection: { readonly required: Connected; readonly kinds: readonly ConnectionKind[] };
  /**
   * Connections whose server this step stops (pg_ctl stop, systemctl stop):
   * the engine lets go of their locks before apply and before rollback, so
   * the stop does not read as a lost lock. A later step that uses one locks
   * it again.
   */
  stopsServerOf?(config: z.output<Schema>): readonly string[];
  /**
   * Preflight (`cutover check`, and first thing in `plan`): the privileges,
   * settings and programs the step will need, checked cheaply and read-only.
   * Called only when every connection the step uses could be opened.
   */
  check?(ctx: CheckContext, step: StepOf<z.output<Schema>, Connected>): Promise<readonly CheckFinding[]>;
  reversibility(config: z.output<Schema>): Reversibility;
  /** Reads only; returns the exact actions and the payload `apply` will execute. */
  plan(ctx: BaseContext, step: StepOf<z.output<Schema>, Connected>): Promise<StepPlan<z.output<Planned>>>;
  /**
   * Executes `planned` and nothing else. A kind that must look at the state
   * again (a session that could have appeared) plans again, compares with
   * `planned`, and throws `StateDriftError` when they differ. Returns the
   * before-state that `rollback` needs.
   */
  apply(ctx: ApplyContext<z.output<Before>>, step: StepOf<z.output<Schema>, Connected>, planned: z.output<Planned>): Promise<ApplyOutcome<z.output<Before>>>;
  /**
   * Whether `verify` checks anything for this config (default: it does when
   * defined). A step whose verification is optional says so, so nobody reads
   * "verified" where nothing was checked.
   */
  verifies?(config: z.output<Schema>): boolean;
  /** Throws VerificationError when the post-condition does not hold. */
  verify?(ctx: BaseContext, step: StepOf<z.output<Schema>, Connected>, planned: z.output<Planned>, before: z.output<Before>): Promise<void>;
  rollback?(ctx: ApplyContext<z.output<Before>>, step: StepOf<z.output<Schema>, Connected>, before: z.output<Before>): Promise<void>;
  /**
   * What `rollback` would do with this before-state, read-only, in the plan
   * format (`cutover rollback --dry-run`). Kinds with a rollback implement it
   * from the same statements their rollback runs; without it the preview
   * says only that the step would be rolled back.
   */
  planRollback?(
    ctx: BaseContext,
    step: StepOf<z.output<Schema>, Connected>,
    before: z.output<Before>,
    /** `rollback --force --dry-run`: preview what the forced rollback does. */
    options: { readonly force: boolean },
  ): Promise<RollbackPlan>;
}

/** Every step kind the engine may run, by name (the registry in src/steps/index.ts). */
export type StepRegistry = Readonly<Record<string, StepDefinition>>;

/** What a rollback would do: the plan format without a payload (a rollback executes its before-state). */
export type RollbackPlan = Omit<StepPlan<never>, 'planned'>;

/** Keeps each definition's config, payload and before-state types while checking them against the contract. */
export function defineStep<Schema extends z.ZodObject, Planned extends JsonSchema, Before extends JsonSchema, Connected extends boolean>(
  definition: StepDefinition<Schema, Planned, Before, Connected>,
): StepDefinition<Schema, Planned, Before, Connected> {
  return definition;
}

/** A JSON value as a person reads it in a table cell or a message: strings bare, absent values empty, the rest as JSON. */
export function jsonText(value: Json | undefined): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `path: old -> new` for every leaf that differs between two JSON values, for a readable difference. */
export function jsonDifferences(before: unknown, after: unknown, at = ''): string[] {
  const left = leaves(before, at, new Map());
  const right = leaves(after, at, new Map());
  const lines: string[] = [];
  for (const key of new Set([...left.keys(), ...right.keys()])) {
    if (left.get(key) !== right.get(key)) lines.push(`${key || '(value)'}: ${left.get(key) ?? '(none)'} -> ${right.get(key) ?? '(none)'}`);
  }
  return lines;
}

function leaves(value: unknown, at: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) out.set(at, Array.isArray(value) ? '[]' : '{}');
    for (const [k, v] of entries) leaves(v, Array.isArray(value) ? `${at}[${k}]` : at === '' ? k : `${at}.${k}`, out);
  } else out.set(at, JSON.stringify(value));
  return out;
}
