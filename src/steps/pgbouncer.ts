/**
 * `pgbouncer`: moves the application's connections through PgBouncer's admin
 * console, the moment a cutover exists for.
 *
 * `switch` repoints `[databases]` entries in one pause window:
 * `PAUSE` each (with a deadline of our own: PgBouncer has none) -> rewrite the
 * file that holds the entries (atomically, a backup kept beside it) ->
 * `RELOAD` -> `SHOW DATABASES` must show every entry where the plan said
 * (PgBouncer before 1.25 reports no RELOAD error, so a typo would otherwise
 * reach the application) -> `RESUME`. Clients wait inside PgBouncer during
 * the pause instead of failing; in transaction pooling no transaction is lost.
 * Any failure after the pause restores the file, reloads and resumes, so the
 * pooler is left running and pointing where it was.
 *
 * `pause` and `resume` bracket work a runbook does itself inside the window;
 * each undoes the other.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AdminTimeoutError, PgBouncerAdmin } from '../db/pgbouncer-admin.js';
import { probePostgres } from '../db/probe.js';
import { errorMessage, UsageError, VerificationError } from '../errors.js';
import {
  defineStep,
  type ConnectedStep,
  type Action,
  type BaseContext,
  type CheckFinding,
  type FileEdit,
  type PlanTable,
  type PoolerConsole,
  type Step,
} from '../step/contract.js';
import {
  backupDatabasesFile,
  entryTarget,
  readDatabasesFile,
  sha256,
  TARGET_KEYS,
  withTargets,
  writeDatabasesFile,
  type Target,
} from '../pooler/databases-file.js';
import { duration } from '../runbook/schema.js';

const entryName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[^\s"';=\\]+$/, 'a [databases] entry name: no spaces, quotes, ";", "=" or "\\"');

const config = z.object({
  action: z.enum(['switch', 'pause', 'resume']).describe('switch: repoint entries in one pause window; pause / resume: bracket work done by other steps'),
  file: z
    .string()
    .optional()
    .describe('switch: the file holding the [databases] entries (the one pgbouncer.ini pulls in with %include), relative to the runbook'),
  to: z
    .record(
      entryName,
      z.strictObject({
        host: z
          .string()
          .min(1)
          .regex(/^[^\s'\\]+$/, 'a host name or address'),
        port: z
          .union([z.number(), z.string().regex(/^\d+$/, 'a port number').transform(Number)])
          .pipe(z.number().int().min(1).max(65535))
          .optional()
          .describe('a number, or digits (e.g. from ${NEW_PORT})'),
        dbname: z.string().min(1).optional(),
      }),
    )
    .optional()
    .describe('switch: each entry to move and where; a key left out keeps its value'),
  databases: z.array(entryName).min(1).optional().describe('pause / resume: the entries'),
  pauseTimeout: duration.optional().describe('how long PAUSE may wait for transactions to finish before the step gives up, resumes and fails (default 30s)'),
  waitClose: z
    .boolean()
    .optional()
    .describe('switch: after RESUME, wait until PgBouncer holds no server connection to the old target for the moved entries (up to pauseTimeout)'),
  allowSessionPooling: z.boolean().optional().describe('switch or pause a database in session pooling (PAUSE then waits for every client to disconnect)'),
});

type Config = z.output<typeof config>;

const DEFAULT_PAUSE_TIMEOUT_MS = 30_000;
const PROBE_TIMEOUT_MS = 5_000;
/** How long a pause waits, before its first PAUSE, for server logins in progress (see PauseWindow.settleLogins). */
const LOGIN_SETTLE_MS = 5_000;
/** How often the step reads the console while it waits for PgBouncer (logins, a pause, old connections). */
const POLL_MS = 20;

interface DatabaseRow {
  readonly name: string;
  readonly host: string | null;
  readonly port: number | string | null;
  readonly database: string | null;
  readonly pool_mode: string | null;
  readonly paused: number | string;
}

interface PoolRow {
  readonly database: string;
  readonly user: string;
  readonly cl_active: number | string;
  readonly cl_waiting: number | string;
  readonly sv_active: number | string;
  readonly sv_tested: number | string;
  /** Not in every PgBouncer version. */
  readonly sv_active_cancel?: number | string;
  readonly sv_being_canceled?: number | string;
  /** Server connections PgBouncer is logging in to. */
  readonly sv_login: number | string;
  readonly pool_mode: string | null;
}

interface SocketRow {
  readonly user: string;
  readonly database: string;
  readonly addr: string;
  readonly port: number | string;
  readonly request_time: string;
  readonly ptr: string;
  readonly link: string;
  readonly application_name?: string;
  /** Servers only: the connection goes to an old target and is closed once released. */
  readonly close_needed?: number | string;
}

/** What rollback needs: where each entry pointed before, in which file, and which databases this step paused or resumed. */
const beforeSchema = z.strictObject({
  file: z.string().nullable(),
  entries: z.record(z.string(), z.strictObject({ host: z.string().nullable(), port: z.string().nullable(), dbname: z.string().nullable() })),
  paused: z.array(z.string()),
  resumed: z.array(z.string()),
});
type Before = z.output<typeof beforeSchema>;

const entryValues = z.record(z.string(), z.string().nullable());

/** What apply sends and writes: the databases it pauses and resumes, and the file edit (null: none). */
const plannedSchema = z.object({
  pause: z.array(z.string()),
  resume: z.array(z.string()),
  file: z.object({ path: z.string(), sha256: z.string(), edits: z.array(z.object({ entry: z.string(), from: entryValues, to: entryValues })) }).nullable(),
  /** Databases whose server connections to the old target must be closed before the step ends (`waitClose: true`). */
  waitClose: z.array(z.string()),
});
type Planned = z.output<typeof plannedSchema>;

/** The admin-console commands and the file rewrite of a planned payload, in the order apply runs them. */
function actionsOf(connection: string, planned: Planned, timeoutMs: number): Action[] {
  const console_ = (sql: string): Action => ({ type: 'sql', connection, sql });
  return [
    ...planned.pause.map((d) => console_(`PAUSE ${adminIdent(d)}`)),
    ...(planned.file !== null ? [{ type: 'file' as const, ...planned.file }, console_('RELOAD')] : []),
    ...planned.resume.map((d) => console_(`RESUME ${adminIdent(d)}`)),
    ...(planned.waitClose.length > 0
      ? [
          {
            type: 'poll' as const,
            connection,
            sql: 'SHOW SERVERS',
            expect: `no server connection of ${planned.waitClose.join(', ')} with close_needed`,
            intervalMs: POLL_MS,
            timeoutMs,
          },
        ]
      : []),
  ];
}

/** A PgBouncer admin-console identifier: bare when it can be, else double-quoted. */
export function adminIdent(name: string): string {
  return /^[a-z0-9_]+$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

const count = (value: number | string | undefined) => Number(value ?? 0);
const timeoutOf = (step: Step<Config>) => step.config.pauseTimeout ?? DEFAULT_PAUSE_TIMEOUT_MS;
const backupSuffix = (ctx: BaseContext, step: Step<Config>) => `cutover-${ctx.runId}-${step.id}`;
const describeTarget = (t: Target) => `${t.host ?? '(default host)'}:${t.port ?? '5432'}/${t.dbname ?? '(entry name)'}`;

function names(c: Config): string[] {
  return c.action === 'switch' ? Object.keys(c.to ?? {}) : (c.databases ?? []);
}

/** The fix of a check finding that the step's own plan would also stop on. */
const LATE = "clear it before the run: this step's plan would stop on it only after the steps before it ran";

/**
 * The pooler as it is, and what in it blocks the step: an entry it does not
 * have; for a pause or a switch, session pooling (unless allowed) and an
 * entry already paused. The plan and the check (before the run starts) both
 * ask this.
 */
async function poolerNow(console: PoolerConsole, config: Config) {
  const wanted = names(config);
  const rows = await console.show<DatabaseRow>('DATABASES');
  const pools = await console.show<PoolRow>('POOLS');
  const modes = await poolModes(console, rows, pools);
  const present = wanted.filter((n) => rows.some((r) => r.name === n));
  const pausedNow = present.filter((d) => count(rows.find((r) => r.name === d)?.paused) > 0);
  const blockers = wanted.filter((n) => !present.includes(n)).map((n) => `no database "${n}" in SHOW DATABASES`);
  if (config.action !== 'resume') {
    const session = present.filter((d) => modes.get(d)?.includes('session'));
    if (session.length > 0 && config.allowSessionPooling !== true) {
      blockers.push(
        `${session.join(', ')} ${session.length === 1 ? 'uses' : 'use'} session pooling: PAUSE waits until every client disconnects, so the pause would hold the application until pauseTimeout; set allowSessionPooling: true to accept that`,
      );
    }
    for (const d of pausedNow)
      blockers.push(
        `${d} is already paused: another pause window is open (another operator's, or one a killed run of this step left: resume or roll back that run); RESUME it or wait`,
      );
  }
  return { rows, pools, modes, present, pausedNow, blockers };
}

async function admin(ctx: BaseContext, step: ConnectedStep<Config>, purpose: string): Promise<PgBouncerAdmin> {
  const name = step.connection;
  const resolved = ctx.resolved(name);
  if (resolved.kind !== 'pgbouncer') throw new UsageError(`connection "${name}" is ${resolved.kind}, not pgbouncer`);
  const console = await PgBouncerAdmin.open(name, resolved, `cutover/${ctx.runId}/${step.id}/${purpose}`);
  try {
    await console.show('VERSION');
  } catch (error) {
    await console.close();
    throw new UsageError(`connection "${name}" is not PgBouncer's admin console (database pgbouncer, a user in admin_users): ${errorMessage(error)}`);
  }
  return console;
}

/** Effective pool modes per database: its pools' (per-user overrides included), else its own, else the pooler's default. */
async function poolModes(console: PoolerConsole, rows: readonly DatabaseRow[], pools: readonly PoolRow[]): Promise<Map<string, string[]>> {
  const setting = (await console.show<{ key: string; value: string }>('CONFIG')).find((r) => r.key === 'pool_mode');
  const modes = new Map<string, string[]>();
  for (const row of rows) {
    const fromPools = pools.filter((p) => p.database === row.name && p.pool_mode !== null).map((p) => p.pool_mode ?? '');
    modes.set(row.name, [...new Set(fromPools.length > 0 ? fromPools : [row.pool_mode ?? setting?.value ?? 'session'])]);
  }
  return modes;
}

/** Who holds a pause open: clients linked to a server of the database (in a transaction, or a whole session). */
async function holders(console: PgBouncerAdmin, databases: readonly string[]): Promise<string[]> {
  const servers = (await console.show<SocketRow>('SERVERS')).filter((s) => databases.includes(s.database) && s.link !== '');
  const clients = await console.show<SocketRow>('CLIENTS');
  return servers.map((s) => {
    const c = clients.find((x) => x.ptr === s.link);
    const who = c === undefined ? 'a client' : `${c.user}@${c.addr}:${c.port}${c.application_name ? ` (${c.application_name})` : ''}`;
    return `${who} on ${s.database}, last request at ${c?.request_time ?? s.request_time}`;
  });
}

export class PauseTimeoutError extends Error {
  override readonly name = 'PauseTimeoutError';
  constructor(
    readonly databases: readonly string[],
    readonly timeoutMs: number,
    readonly holders: readonly string[],
  ) {
    super(
      `PAUSE ${databases.join(', ')} did not complete within ${timeoutMs}ms; the pooler was resumed and nothing was repointed. ` +
        `Held by: ${holders.length > 0 ? holders.join('; ') : 'no client any more'}`,
    );
  }
}

/** Differences between what SHOW DATABASES says and where each entry should point. */
function mismatches(rows: readonly DatabaseRow[], targets: Readonly<Record<string, Target>>): string[] {
  const problems: string[] = [];
  for (const [name, want] of Object.entries(targets)) {
    const row = rows.find((r) => r.name === name);
    if (row === undefined) {
      problems.push(`${name}: not in SHOW DATABASES`);
      continue;
    }
    const got = { host: row.host, port: row.port === null ? null : String(row.port), dbname: row.database };
    // An absent key means PgBouncer's default: port 5432, dbname the entry's name.
    const expected = { host: want.host, port: want.port ?? '5432', dbname: want.dbname ?? name };
    for (const key of TARGET_KEYS) {
      if (expected[key] !== null && got[key] !== expected[key]) problems.push(`${name}: ${key} is ${String(got[key])}, planned ${expected[key]}`);
    }
  }
  return problems;
}

/** The new targets that do not answer as PostgreSQL servers from here: a typo found before anything pauses. */
async function unreachable(edits: readonly FileEdit[]): Promise<string[]> {
  const results = await Promise.all(
    edits.map(async (e) => {
      const host = e.to['host'] ?? 'localhost';
      const port = Number(e.to['port'] ?? 5432);
      const why = await probePostgres(host, port, PROBE_TIMEOUT_MS);
      return why === undefined ? undefined : `${e.entry}: the new target ${host}:${port} does not answer as a PostgreSQL server from here (${why})`;
    }),
  );
  return results.filter((r): r is string => r !== undefined);
}

/**
 * The console connections of one pause window, both logged in before anything
 * pauses, so no login happens while clients wait: `pausing` sends PAUSE (and
 * is closed if PAUSE outlives its deadline); `control` watches, reloads,
 * verifies and resumes.
 */
class PauseWindow {
  /** Databases PAUSE was sent for, pending ones included: all of them must be resumed. */
  readonly paused: string[] = [];
  private pausedAt: number | undefined;
  /** How long pause() waited for server logins in progress before its first PAUSE (0: none were). */
  loginWaitMs = 0;

  private constructor(
    private readonly ctx: BaseContext,
    private readonly control: PgBouncerAdmin,
    private readonly pausing: PgBouncerAdmin,
  ) {}

  static async open(ctx: BaseContext, step: ConnectedStep<Config>): Promise<PauseWindow> {
    const [control, pausing] = await Promise.all([admin(ctx, step, 'control'), admin(ctx, step, 'pause')]);
    return new PauseWindow(ctx, control, pausing);
  }

  /** How long clients have been held, from the first PAUSE sent. */
  heldMs(): number {
    return this.pausedAt === undefined ? 0 : Date.now() - this.pausedAt;
  }

  /**
   * PAUSE each database with one deadline for all, showing meanwhile what is
   * still in use. On the deadline: the waiting connection is closed, the
   * holders named, every database this window paused resumed.
   */
  async pause(databases: readonly string[], timeoutMs: number): Promise<void> {
    await this.settleLogins(databases, Math.min(LOGIN_SETTLE_MS, timeoutMs));
    const deadline = Date.now() + timeoutMs;
    this.pausedAt ??= Date.now();
    for (const database of databases) {
      const started = Date.now();
      const done = this.pausing
        .command(`PAUSE ${adminIdent(database)}`, { timeoutMs: Math.max(1, deadline - Date.now()), signal: this.ctx.signal })
        .then(() => this.untilPaused(database, deadline, timeoutMs));
      this.paused.push(database);
      let settled = false;
      const progress = (async () => {
        for (;;) {
          await Promise.race([sleep(250), done.catch(() => {})]);
          // settled is set by the code below this loop while it awaits.
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          if (settled) return;
          const pools = (await this.control.show<PoolRow>('POOLS').catch(() => [])).filter((p) => p.database === database);
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          if (settled) return;
          const busy = pools.reduce((n, p) => n + count(p.sv_active), 0);
          const waiting = pools.reduce((n, p) => n + count(p.cl_waiting), 0);
          this.ctx.progress(
            `PAUSE ${database}: ${busy} server connection(s) still in a transaction, ${waiting} client(s) held, ${((Date.now() - started) / 1000).toFixed(1)}s`,
          );
        }
      })();
      try {
        await done;
      } catch (error) {
        settled = true;
        await progress;
        if (!(error instanceof AdminTimeoutError)) throw error;
        const held = await holders(this.control, databases);
        await this.resume();
        throw new PauseTimeoutError(databases, timeoutMs, held);
      } finally {
        settled = true;
        await progress;
      }
    }
  }

  /**
   * Waits, up to `boundMs`, until PgBouncer is logging in to no server for
   * `databases`. PAUSE closes a server connection that is still logging in;
   * PgBouncer counts that as a failed login and, after RESUME, opens no
   * server connection for the pool until server_login_retry (15 s by
   * default) has passed, while every client of the entry waits (seen here: a
   * rollback right after a switch, while the pool was still growing on the
   * new server). Clients are not held yet. Past the bound (a server that
   * does not answer) the pause goes ahead.
   */
  private async settleLogins(databases: readonly string[], boundMs: number): Promise<void> {
    const started = Date.now();
    for (;;) {
      const pools = (await this.control.show<PoolRow>('POOLS')).filter((p) => databases.includes(p.database));
      const logins = pools.reduce((n, p) => n + count(p.sv_login), 0);
      if (logins === 0 || Date.now() - started >= boundMs) return;
      this.ctx.progress(`before PAUSE: PgBouncer is logging in to ${logins} server connection(s), ${(this.loginWaitMs / 1000).toFixed(1)}s`);
      await sleep(POLL_MS);
      this.loginWaitMs = Date.now() - started;
    }
  }

  /**
   * Returns once no server connection of `database` is in a transaction or
   * being tested: what PgBouncer itself waits for before it answers PAUSE.
   * Its answer is not taken for it: a WAIT_CLOSE marks its database for good
   * (nothing clears db_wait_close, 1.18 to the current source), and from
   * then on, whenever that database has no connection left to close,
   * PgBouncer answers every admin command that waits, a PAUSE of any
   * database included, with "WAIT_CLOSE" while transactions still run (and
   * so waitClose does not send WAIT_CLOSE). Past the deadline this throws
   * as a PAUSE that did not answer would.
   */
  private async untilPaused(database: string, deadline: number, timeoutMs: number): Promise<void> {
    for (;;) {
      const pools = (await this.control.show<PoolRow>('POOLS')).filter((p) => p.database === database);
      const busy = pools.reduce((n, p) => n + count(p.sv_active) + count(p.sv_tested) + count(p.sv_active_cancel) + count(p.sv_being_canceled), 0);
      if (busy === 0) return;
      if (Date.now() >= deadline) throw new AdminTimeoutError(`PAUSE ${adminIdent(database)}`, timeoutMs);
      this.ctx.signal.throwIfAborted();
      await sleep(POLL_MS);
    }
  }

  /** Those of `databases` that are paused now and not among `ours` (what this step left paused). */
  async pausedBySomeoneElse(databases: readonly string[], ours: readonly string[]): Promise<string[]> {
    const rows = await this.control.show<DatabaseRow>('DATABASES');
    return databases.filter((d) => !ours.includes(d) && count(rows.find((r) => r.name === d)?.paused) > 0);
  }

  /** RESUME every database that is paused now among `databases` (default: those this window paused). */
  async resume(databases: readonly string[] = this.paused): Promise<void> {
    if (databases.length === 0) return;
    const rows = await this.control.show<DatabaseRow>('DATABASES');
    for (const database of databases) {
      if (count(rows.find((r) => r.name === database)?.paused) === 0) continue;
      await this.control.command(`RESUME ${adminIdent(database)}`);
    }
  }

  /**
   * After the switch: returns once PgBouncer holds no server connection of
   * `databases` marked close_needed (to the old target). In session pooling a
   * client keeps its old connection until it disconnects, so this has a
   * deadline; past it the step fails naming how many are still open.
   */
  async waitClose(databases: readonly string[], timeoutMs: number): Promise<void> {
    if (databases.length === 0) return;
    const started = Date.now();
    const deadline = started + timeoutMs;
    for (;;) {
      const open = (await this.control.show<SocketRow>('SERVERS')).filter((s) => databases.includes(s.database) && count(s.close_needed) > 0);
      if (open.length === 0) return;
      if (Date.now() >= deadline) {
        throw new VerificationError(
          `${open.length} server connection(s) of ${[...new Set(open.map((s) => s.database))].join(', ')} to the old target were still open after ${timeoutMs}ms (the entry does point to the new one; clients in session pooling keep their old connection until they disconnect)`,
        );
      }
      this.ctx.signal.throwIfAborted();
      this.ctx.progress(`${open.length} server connection(s) to the old target still open, ${((Date.now() - started) / 1000).toFixed(1)}s`);
      await sleep(POLL_MS);
    }
  }

  /**
   * Rewrites the file with `targets`, reloads, verifies; on any failure puts
   * the previous contents back and reloads again before rethrowing.
   */
  async repoint(file: string, expectedSha: string, targets: Readonly<Record<string, Target>>, backupName: string): Promise<void> {
    const text = readDatabasesFile(file);
    if (sha256(text) !== expectedSha) {
      throw new UsageError(
        `${file} changed since the plan read it (sha256 ${sha256(text).slice(0, 12)}, planned ${expectedSha.slice(0, 12)}); nothing was written`,
      );
    }
    backupDatabasesFile(file, text, backupName);
    writeDatabasesFile(file, withTargets(text, targets));
    try {
      await this.control.command('RELOAD');
      const wrong = mismatches(await this.control.show<DatabaseRow>('DATABASES'), targets);
      if (wrong.length > 0) throw new VerificationError(`after RELOAD, PgBouncer does not point where planned: ${wrong.join('; ')}`);
    } catch (error) {
      writeDatabasesFile(file, text);
      await this.control.command('RELOAD').catch(() => {});
      throw error;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.control.close(), this.pausing.close()]);
  }
}

/** RESUME outside a pause window (a resume step, the rollback of a pause): those of `databases` paused now; returns them. */
async function resumeOnly(ctx: BaseContext, step: ConnectedStep<Config>, databases: readonly string[]): Promise<string[]> {
  if (databases.length === 0) return [];
  const console = await admin(ctx, step, 'resume');
  try {
    const rows = await console.show<DatabaseRow>('DATABASES');
    const paused = databases.filter((d) => count(rows.find((r) => r.name === d)?.paused) > 0);
    for (const database of paused) await console.command(`RESUME ${adminIdent(database)}`);
    return paused;
  } finally {
    await console.close();
  }
}

function targetsOf(edits: readonly FileEdit[], side: 'from' | 'to'): Record<string, Target> {
  return Object.fromEntries(edits.map((e) => [e.entry, { host: e[side]['host'] ?? null, port: e[side]['port'] ?? null, dbname: e[side]['dbname'] ?? null }]));
}

const POOL_COLUMNS: PlanTable['columns'] = [
  { key: 'database', title: 'database' },
  { key: 'mode', title: 'pool mode' },
  { key: 'clients', title: 'clients active', align: 'right' },
  { key: 'waiting', title: 'waiting', align: 'right' },
  { key: 'servers', title: 'servers in use', align: 'right' },
  { key: 'paused', title: 'paused' },
];

export const pgbouncerStep = defineStep({
  kind: 'pgbouncer',
  summary: 'Switch PgBouncer [databases] entries to a new server in one pause window (PAUSE, rewrite, RELOAD, verify, RESUME), or pause/resume',
  config,
  connection: { required: true, kinds: ['pgbouncer'] },
  validate(c) {
    const issues: { path: string[]; message: string }[] = [];
    if (c.action === 'switch') {
      if (c.file === undefined) issues.push({ path: ['file'], message: 'a switch needs "file": where the [databases] entries are' });
      if (c.to === undefined || Object.keys(c.to).length === 0) issues.push({ path: ['to'], message: 'a switch needs "to": the entries to move' });
      if (c.databases !== undefined) issues.push({ path: ['databases'], message: 'a switch names its entries under "to", not "databases"' });
    } else {
      if (c.databases === undefined) issues.push({ path: ['databases'], message: `${c.action} needs "databases"` });
      if (c.file !== undefined) issues.push({ path: ['file'], message: `${c.action} rewrites no file` });
      if (c.to !== undefined) issues.push({ path: ['to'], message: `${c.action} moves no entry` });
    }
    return issues;
  },
  planned: plannedSchema,
  before: beforeSchema,
  files: (c) => (c.file !== undefined ? [{ path: ['file'], file: c.file }] : []),
  async check(ctx, step) {
    const findings: CheckFinding[] = [];
    if (step.config.file !== undefined) {
      const file = ctx.resolvePath(step.config.file);
      // The switch replaces the file by renaming a sibling over it: both the file and its directory must be writable.
      const problems: string[] = [];
      for (const target of [file, path.dirname(file)]) {
        try {
          await access(target, constants.R_OK | constants.W_OK);
        } catch (error) {
          problems.push(`${target}: ${(error as NodeJS.ErrnoException).code ?? 'not accessible'}`);
        }
      }
      findings.push(
        problems.length === 0
          ? { severity: 'ok', check: 'databases file writable', message: `${file} and its directory can be rewritten` }
          : {
              severity: 'error',
              check: 'databases file writable',
              message: problems.join('; '),
              fix: 'run cutover as a user that can write the file and its directory (often the pgbouncer or postgres OS user)',
            },
      );
      if (problems.length === 0) {
        const text = readDatabasesFile(file);
        for (const name of Object.keys(step.config.to ?? {}))
          if (entryTarget(text, name) === undefined)
            findings.push({ severity: 'error', check: 'entry in the databases file', message: `no entry "${name}" in ${file}`, fix: LATE });
      }
    }
    // What the plan would stop on, found before the run starts: not after the steps before this one (a freeze) ran.
    const { blockers } = await poolerNow(await ctx.pgbouncer(step.connection), step.config);
    const wanted = names(step.config);
    findings.push(
      ...(blockers.length === 0
        ? [
            {
              severity: 'ok' as const,
              check: 'pooler entries',
              message: `${wanted.join(', ')}: in SHOW DATABASES${step.config.action === 'resume' ? '' : ', not paused'}`,
            },
          ]
        : blockers.map((message) => ({ severity: 'error' as const, check: 'pooler entries', message, fix: LATE }))),
    );
    return findings;
  },
  effects: () => 'external',
  // Converges: a re-run pauses, writes the same entries, reloads, verifies and resumes again.
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),

  async plan(ctx, step) {
    const console = await admin(ctx, step, 'plan');
    try {
      const { rows, pools, modes, present, pausedNow, blockers } = await poolerNow(console, step.config);
      const notes: string[] = [];
      const poolTable: PlanTable = {
        title: 'pools',
        columns: POOL_COLUMNS,
        rows: present.map((database) => {
          const own = pools.filter((p) => p.database === database);
          return {
            database,
            mode: (modes.get(database) ?? []).join(', '),
            clients: own.reduce((n, p) => n + count(p.cl_active), 0),
            waiting: own.reduce((n, p) => n + count(p.cl_waiting), 0),
            servers: own.reduce((n, p) => n + count(p.sv_active), 0),
            paused: pausedNow.includes(database) ? 'yes' : 'no',
          };
        }),
      };
      const timeoutMs = timeoutOf(step);
      const blocked = blockers.length > 0 ? { blockers } : {};
      const planOf = (planned: Planned) => ({ actions: actionsOf(step.connection, planned, timeoutMs), planned });

      if (step.config.action === 'pause') {
        notes.push(
          `PAUSE waits until each database's server connections are released, for up to ${timeoutMs}ms; past that it resumes and fails, naming the clients holding it`,
        );
        return { ...planOf({ pause: present, resume: [], file: null, waitClose: [] }), tables: [poolTable], notes, ...blocked };
      }
      if (step.config.action === 'resume') {
        // The payload names the entries, not what is paused at plan time: a resume closes a
        // window a pause step opens earlier in the same run, after the plan was made (and saved).
        const idle = present.filter((d) => !pausedNow.includes(d));
        if (idle.length > 0) notes.push(`not paused now: ${idle.join(', ')}; RESUME goes only to an entry paused when the step runs`);
        return { ...planOf({ pause: [], resume: present, file: null, waitClose: [] }), tables: [poolTable], notes, ...blocked };
      }

      const file = ctx.resolvePath(step.config.file ?? '');
      const text = readDatabasesFile(file);
      const edits: FileEdit[] = [];
      const entries: PlanTable['rows'][number][] = [];
      for (const [name, to] of Object.entries(step.config.to ?? {})) {
        const current = entryTarget(text, name);
        if (current === undefined) {
          blockers.push(`no entry "${name}" in ${file}`);
          continue;
        }
        const running = rows.find((r) => r.name === name);
        const drift = running === undefined ? [] : mismatches([running], { [name]: current });
        if (drift.length > 0)
          blockers.push(`the running pooler does not match ${file} (${drift.join('; ')}): a RELOAD is pending, or this is not the file it reads`);
        const desired: Target = { host: to.host, port: to.port !== undefined ? String(to.port) : current.port, dbname: to.dbname ?? current.dbname };
        entries.push({ database: name, now: describeTarget(current), after: describeTarget(desired) });
        if (TARGET_KEYS.some((k) => current[k] !== desired[k])) edits.push({ entry: name, from: { ...current }, to: { ...desired } });
      }
      blockers.push(...(await unreachable(edits)));
      const tables: PlanTable[] = [
        {
          title: `entries in ${file}`,
          columns: [
            { key: 'database', title: 'database' },
            { key: 'now', title: 'now' },
            { key: 'after', title: 'after' },
          ],
          rows: entries,
        },
        poolTable,
      ];
      if (edits.length === 0) {
        // Blocked with nothing to move (an entry the file lacks): no pause window to describe.
        if (blockers.length === 0) notes.push('every entry already points where asked: nothing to do');
        return { ...planOf({ pause: [], resume: [], file: null, waitClose: [] }), tables, notes, ...(blockers.length > 0 ? { blockers } : {}) };
      }
      const moving = edits.map((e) => e.entry);
      notes.push(
        `clients of ${moving.join(', ')} are held inside PgBouncer from PAUSE to RESUME; PAUSE waits up to ${timeoutMs}ms for running transactions, then the step resumes and fails without repointing`,
        `after RELOAD, SHOW DATABASES must show every entry where planned, else the file is restored, reloaded and resumed; a backup is kept as ${file}.${backupSuffix(ctx, step)}`,
      );
      if (step.config.waitClose === true) {
        notes.push(
          `after RESUME, the step ends once PgBouncer holds no server connection to the old target for the moved entries, or fails after ${timeoutMs}ms`,
        );
      }
      return {
        ...planOf({
          pause: moving,
          resume: moving,
          file: { path: file, sha256: sha256(text), edits },
          waitClose: step.config.waitClose === true ? moving : [],
        }),
        tables,
        notes,
        ...(blockers.length > 0 ? { blockers } : {}),
      };
    } finally {
      await console.close();
    }
  },

  async apply(ctx, step, planned) {
    const { file, pause: toPause } = planned;
    const prior = ctx.priorBefore;
    const before: Before = {
      file: file?.path ?? null,
      // A re-run keeps the first attempt's "from": that is where rollback must go back to.
      entries: { ...targetsOf(file?.edits ?? [], 'from'), ...prior?.entries },
      paused: toPause,
      resumed: [],
    };
    ctx.recordBefore(before);

    if (step.config.action === 'resume') {
      const resumed = await resumeOnly(ctx, step, planned.resume);
      return { before: { ...before, resumed }, output: `resumed ${resumed.join(', ') || 'nothing: none was paused'}` };
    }
    const down = file === null ? [] : await unreachable(file.edits);
    if (down.length > 0) throw new VerificationError(`nothing was paused: ${down.join('; ')}`);
    const window = await PauseWindow.open(ctx, step);
    try {
      try {
        await window.pause(toPause, timeoutOf(step));
      } catch (error) {
        if (!(error instanceof PauseTimeoutError)) await window.resume().catch(() => {});
        throw error;
      }
      const pausedMs = window.heldMs();
      const settled = window.loginWaitMs > 0 ? `; first waited ${window.loginWaitMs}ms for PgBouncer's server logins in progress` : '';
      if (step.config.action === 'pause') return { before, output: `paused ${toPause.join(', ')} in ${pausedMs}ms${settled}` };
      try {
        if (file !== null) await window.repoint(file.path, file.sha256, targetsOf(file.edits, 'to'), backupSuffix(ctx, step));
      } finally {
        await window.resume();
      }
      const heldMs = window.heldMs();
      const closing = planned.waitClose;
      const waitStarted = Date.now();
      await window.waitClose(closing, timeoutOf(step));
      const closed = closing.length > 0 ? `; old server connections closed ${Date.now() - waitStarted}ms after RESUME` : '';
      return {
        // Resumed: a pause found on these entries later is someone else's, which rollback must not end.
        before: { ...before, paused: [] },
        output: `moved ${toPause.join(', ')}; clients were held ${heldMs}ms (PAUSE took ${pausedMs}ms, then rewrite, RELOAD, verify, RESUME)${closed}${settled}`,
      };
    } finally {
      await window.close();
    }
  },

  async verify(ctx, step, planned) {
    const console = await admin(ctx, step, 'verify');
    try {
      const rows = await console.show<DatabaseRow>('DATABASES');
      const { file } = planned;
      const wrong = file === null ? [] : mismatches(rows, targetsOf(file.edits, 'to'));
      const pausedNow = names(step.config).filter((d) => count(rows.find((r) => r.name === d)?.paused) > 0);
      if (step.config.action === 'pause') {
        const running = planned.pause.filter((d) => !pausedNow.includes(d));
        if (running.length > 0) wrong.push(`not paused: ${running.join(', ')}`);
      } else if (pausedNow.length > 0) wrong.push(`still paused: ${pausedNow.join(', ')}`);
      if (wrong.length > 0) throw new VerificationError(wrong.join('; '));
    } finally {
      await console.close();
    }
  },

  async rollback(ctx, step, before) {
    if (step.config.action === 'resume') {
      // Undoing a resume pauses again.
      const window = await PauseWindow.open(ctx, step);
      try {
        await window.pause(before.resumed, timeoutOf(step));
      } finally {
        await window.close();
      }
      return;
    }
    const text = before.file === null ? '' : readDatabasesFile(before.file);
    const back = Object.entries(before.entries).filter(([name, target]) => {
      const now = entryTarget(text, name);
      return now !== undefined && TARGET_KEYS.some((k) => now[k] !== target[k]);
    });
    if (before.file === null || back.length === 0) {
      // A pause, or a switch that stopped before its file was written: only the pause may be left.
      await resumeOnly(ctx, step, before.paused);
      return;
    }
    const window = await PauseWindow.open(ctx, step);
    try {
      // An entry paused now that this step did not leave paused is someone else's window: ending it is not ours to do.
      const foreign = await window.pausedBySomeoneElse(
        back.map(([name]) => name),
        before.paused,
      );
      if (foreign.length > 0) {
        throw new VerificationError(
          `${foreign.join(', ')} ${foreign.length === 1 ? 'is' : 'are'} paused, not by this step: someone else is in a pause window; RESUME it or wait, then roll back again (nothing was changed)`,
        );
      }
      await window.pause(
        back.map(([name]) => name),
        timeoutOf(step),
      );
      await window.repoint(before.file, sha256(text), Object.fromEntries(back), `${backupSuffix(ctx, step)}-rollback`);
    } finally {
      await window.resume([...new Set([...window.paused, ...before.paused])]).catch(() => {});
      await window.close();
    }
  },
});
