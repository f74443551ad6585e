/**
 * `freeze-writes`: the moment after which the old database must not change.
 *
 * New sessions of the frozen roles become read-only through a role-in-
 * database setting (`ALTER ROLE r IN DATABASE d SET
 * default_transaction_read_only = on`), the most specific level, so the
 * runbook's own role, exempt roles and any setting a role has of its own at
 * other levels are untouched. Existing sessions keep the setting they started
 * with, so they are terminated (after `grace`). `blockConnections` also sets
 * NOLOGIN, so nothing reconnects at all. Every previous value, including "not
 * set", is journaled before anything changes, and rollback restores exactly
 * that. A probe, a write attempted as a frozen role in a transaction that is
 * always rolled back, proves the freeze (SQLSTATE 25006) and, after
 * rollback, that the role can write again.
 *
 * Read-only by default is not a security boundary: a session can still say
 * SET default_transaction_read_only = off. `blockConnections` closes that.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { DatabaseError, PlanDriftError, UsageError, VerificationError } from '../errors.js';
import { defineStep, jsonDifferences, type Action, type BaseContext, type CheckFinding } from '../step/contract.js';
import { inTransaction, type Queryable } from '../db/session.js';
import { quoteIdent, quoteLiteral } from '../db/quote.js';
import { duration } from '../runbook/schema.js';
import { privilege, roleFacts } from '../step/check-helpers.js';

const config = z.object({
  databases: z.array(z.string().min(1)).optional().describe("databases to freeze (default: the connection's database)"),
  roles: z
    .array(z.string().min(1))
    .optional()
    .describe("roles to freeze (default: every login role except superusers, replication roles and the runbook's own)"),
  exempt: z.array(z.string().min(1)).optional().describe('roles never frozen'),
  grace: duration.optional().describe('time existing sessions get to finish before they are terminated (default 0s)'),
  blockConnections: z.boolean().optional().describe('also set NOLOGIN on the frozen roles (cluster-wide) so nothing reconnects'),
  probe: z
    .union([z.boolean(), z.strictObject({ role: z.string().min(1) })])
    .optional()
    .describe('prove the freeze with a write attempted as a frozen role (default true: the first frozen role)'),
});

type Config = z.output<typeof config>;

const READ_ONLY = 'default_transaction_read_only';
const READ_ONLY_SQLSTATE = '25006';
/** Logging in as a NOLOGIN role: what blockConnections makes of a frozen role. */
const CANNOT_LOGIN_SQLSTATE = '28000';
const PROBE_SQL = 'CREATE TEMP TABLE cutover_write_probe (x int)';

const settingSchema = z.object({ role: z.string(), database: z.string(), value: z.string().nullable() });
const loginSchema = z.object({ role: z.string(), canLogin: z.boolean() });

/** One role-in-database setting: its value before the step (null: not set). */
type Setting = z.output<typeof settingSchema>;

/**
 * Everything apply does, from the catalogs as the plan read them: the
 * settings it overrides (with their values, which rollback restores), the
 * logins it blocks, the sessions' scope it terminates, and the probe.
 */
const plannedSchema = z.object({
  roles: z.array(z.string()),
  databases: z.array(z.string()),
  settings: z.array(settingSchema),
  blockConnections: z.boolean(),
  /** With blockConnections: each frozen role's LOGIN before the step. */
  logins: z.array(loginSchema),
  graceMs: z.number(),
  probe: z.object({ role: z.string(), database: z.string() }).nullable(),
});

type Planned = z.output<typeof plannedSchema>;

const beforeSchema = z
  .object({
    settings: z.array(settingSchema),
    logins: z.array(loginSchema),
    probe: z.object({ role: z.string(), database: z.string(), writable: z.boolean() }).nullable(),
  })
  .nullable();

type Before = NonNullable<z.output<typeof beforeSchema>>;

interface RoleRow {
  name: string;
  superuser: boolean;
  replication: boolean;
  can_login: boolean;
  is_self: boolean;
}

interface SessionRow {
  pid: number;
  role: string;
  database: string;
  application_name: string;
  client: string | null;
  state: string | null;
  writing: boolean;
  query: string | null;
}

const ROLES_SQL = `SELECT rolname AS name, rolsuper AS superuser, rolreplication AS replication, rolcanlogin AS can_login,
       rolname = current_user AS is_self
  FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname`;

const SETTINGS_SQL = `SELECT r.rolname AS role, d.datname AS database,
       (SELECT substr(c, length('${READ_ONLY}=') + 1)
          FROM pg_db_role_setting s, unnest(s.setconfig) AS c
         WHERE s.setrole = r.oid AND s.setdatabase = d.oid AND c LIKE '${READ_ONLY}=%') AS value
  FROM pg_roles r, pg_database d
 WHERE r.rolname = ANY($1) AND d.datname = ANY($2)
 ORDER BY 1, 2`;

/** Client sessions only: a walsender of a frozen role is replication, and replication must go on. */
const SESSIONS_SQL = `SELECT pid, usename AS role, datname AS database, application_name, client_addr::text AS client, state,
       backend_xid IS NOT NULL AS writing, left(query, 200) AS query
  FROM pg_stat_activity
 WHERE usename = ANY($1) AND datname = ANY($2) AND pid <> pg_backend_pid() AND backend_type = 'client backend'
 ORDER BY pid`;

const TERMINATE_SQL = `SELECT count(pg_terminate_backend(pid)) AS terminated
  FROM pg_stat_activity
 WHERE usename = ANY($1) AND datname = ANY($2) AND pid <> pg_backend_pid() AND backend_type = 'client backend'`;

const freezeStatement = (s: Pick<Setting, 'role' | 'database'>) =>
  `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${quoteIdent(s.database)} SET ${READ_ONLY} = on`;

const blockStatement = (role: string) => `ALTER ROLE ${quoteIdent(role)} NOLOGIN`;

const restoreStatement = (s: Setting) =>
  s.value === null
    ? `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${quoteIdent(s.database)} RESET ${READ_ONLY}`
    : `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${quoteIdent(s.database)} SET ${READ_ONLY} = ${quoteLiteral(s.value)}`;

interface Scope {
  readonly roles: string[];
  readonly databases: string[];
  readonly notFrozen: string[];
  readonly problems: string[];
}

/** Which roles and databases the step freezes, and why the other roles are left alone. */
async function scopeOf(db: Queryable, c: Config): Promise<Scope> {
  const { rows: roles } = await db.query<RoleRow>(ROLES_SQL);
  const { rows: here } = await db.query<{ db: string; dbs: string[] }>(
    'SELECT current_database() AS db, array(SELECT datname FROM pg_database ORDER BY 1) AS dbs',
  );
  const databases = c.databases ?? [here[0]?.db ?? ''];
  const problems = databases.filter((d) => !here[0]?.dbs.includes(d)).map((d) => `no database named ${d}`);
  const exempt = new Set(c.exempt ?? []);
  const notFrozen: string[] = [];
  let frozen: RoleRow[];
  if (c.roles !== undefined) {
    problems.push(...c.roles.filter((r) => !roles.some((x) => x.name === r)).map((r) => `no role named ${r}`));
    frozen = roles.filter((r) => c.roles?.includes(r.name) && !exempt.has(r.name));
    for (const r of frozen.filter((x) => x.is_self)) problems.push(`${r.name} is the runbook's own role: freezing it would stop the runbook`);
  } else {
    frozen = [];
    for (const r of roles.filter((x) => x.can_login)) {
      const why = r.is_self ? "the runbook's own role" : r.superuser ? 'superuser' : r.replication ? 'replication' : exempt.has(r.name) ? 'exempt' : undefined;
      if (why === undefined) frozen.push(r);
      else notFrozen.push(`${r.name} (${why})`);
    }
  }
  return { roles: frozen.map((r) => r.name), databases, notFrozen, problems };
}

const probeRoleOf = (c: Config, roles: readonly string[]): string | undefined =>
  c.probe === false ? undefined : typeof c.probe === 'object' ? c.probe.role : roles[0];

/** Whether `role` can write in `database`: a temp table in a transaction that is always rolled back. */
async function canWrite(ctx: BaseContext, connection: string, role: string, database: string): Promise<boolean> {
  let db: Queryable;
  try {
    db = await ctx.sessionAs(connection, role, database);
  } catch (error) {
    if (error instanceof DatabaseError && error.details.sqlstate === CANNOT_LOGIN_SQLSTATE) return false;
    throw new VerificationError(
      `cannot log in as ${role} to probe its writes (${error instanceof Error ? error.message : String(error)}); let pg_hba admit it (trust, cert, peer, or ~/.pgpass) or set probe: false`,
    );
  }
  await db.query('BEGIN');
  try {
    await db.query(PROBE_SQL);
    return true;
  } catch (error) {
    if (error instanceof DatabaseError && error.details.sqlstate === READ_ONLY_SQLSTATE) return false;
    throw error;
  } finally {
    await db.query('ROLLBACK').catch(() => {});
  }
}

/** What the step would do now, and what a reviewer reads besides. */
async function planFreeze(db: Queryable, c: Config): Promise<{ planned: Planned; scope: Scope }> {
  const scope = await scopeOf(db, c);
  const { rows: settings } = await db.query<Setting>(SETTINGS_SQL, [scope.roles, scope.databases]);
  const blockConnections = c.blockConnections === true;
  const { rows: logins } = blockConnections
    ? await db.query<{ role: string; canLogin: boolean }>(
        'SELECT rolname AS role, rolcanlogin AS "canLogin" FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1',
        [scope.roles],
      )
    : { rows: [] };
  const probeRole = probeRoleOf(c, scope.roles);
  const probeDatabase = scope.databases[0];
  return {
    planned: {
      roles: scope.roles,
      databases: scope.databases,
      settings,
      blockConnections,
      logins,
      graceMs: c.grace ?? 0,
      probe: probeRole === undefined || probeDatabase === undefined ? null : { role: probeRole, database: probeDatabase },
    },
    scope,
  };
}

/**
 * A plan as it would read had an earlier attempt of this step not written:
 * the values that attempt recorded replace the ones it changed, so a retry
 * compares like with like.
 */
function withoutOurWrites(planned: Planned, prior: Before | undefined): Planned {
  if (prior === undefined) return planned;
  const same = (a: { role: string; database?: string }, b: { role: string; database?: string }) => a.role === b.role && a.database === b.database;
  return {
    ...planned,
    settings: planned.settings.map((s) => prior.settings.find((p) => same(p, s)) ?? s),
    logins: planned.logins.map((l) => prior.logins.find((p) => p.role === l.role) ?? l),
  };
}

/** What rollback runs, in one transaction: the settings and logins as they were. */
function restoreStatements(before: Before): string[] {
  return [...before.settings.map(restoreStatement), ...before.logins.map((l) => `ALTER ROLE ${quoteIdent(l.role)} ${l.canLogin ? 'LOGIN' : 'NOLOGIN'}`)];
}

export const freezeWritesStep = defineStep({
  kind: 'freeze-writes',
  summary: 'Make the application roles read-only on the source, end their sessions, prove it, and give writes back on rollback',
  config,
  connection: { required: true, kinds: ['postgres'] },
  // Terminating sessions cannot be part of a transaction; everything is journaled first.
  effects: () => 'external',
  planned: plannedSchema,
  before: beforeSchema,
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),

  async check(ctx, step) {
    const role = await roleFacts(await ctx.session(step.connection));
    const findings: CheckFinding[] = [
      privilege(
        'ALTER ROLE ... SET',
        role.superuser || role.createrole,
        role.role,
        'is neither superuser nor has CREATEROLE',
        `run as a superuser, or ALTER ROLE ${role.role} CREATEROLE (with ADMIN on the frozen roles on PostgreSQL 16+)`,
      ),
      privilege(
        'pg_signal_backend',
        role.superuser || role.signalBackend,
        role.role,
        'cannot terminate other sessions',
        `GRANT pg_signal_backend TO ${role.role}`,
      ),
    ];
    if (step.config.probe !== false) {
      // The same role and database the probe will use: pg_hba must admit it without this connection's password.
      const scope = await scopeOf(await ctx.session(step.connection), step.config);
      const probeRole = probeRoleOf(step.config, scope.roles);
      const database = scope.databases[0];
      if (probeRole === undefined) {
        findings.push({ severity: 'warning', check: 'probe login', message: 'no role to probe with (no role would be frozen)' });
      } else {
        const login = await ctx.canLogIn(step.connection, probeRole, database);
        findings.push(
          login.ok
            ? {
                severity: 'ok',
                check: 'probe login',
                message: `pg_hba admits ${probeRole}${database !== undefined ? ` to ${database}` : ''} without a password`,
              }
            : {
                severity: 'error',
                check: 'probe login',
                message: `cannot log in as ${probeRole} to probe the freeze: ${login.reason ?? 'refused'}`,
                fix: 'let pg_hba admit that role from this host (trust, cert, peer, or ~/.pgpass), or set probe: false',
              },
        );
      }
    }
    return findings;
  },

  async plan(ctx, step) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const { planned, scope } = await planFreeze(db, step.config);
    const { settings } = planned;
    const { rows: sessions } = await db.query<SessionRow>(SESSIONS_SQL, [scope.roles, scope.databases]);
    const actions: Action[] = [
      ...settings.map((s): Action => ({ type: 'sql', connection, sql: freezeStatement(s) })),
      ...(planned.blockConnections ? planned.roles.map((r): Action => ({ type: 'sql', connection, sql: blockStatement(r) })) : []),
      { type: 'sql', connection, sql: TERMINATE_SQL, params: [planned.roles, planned.databases], transaction: false },
    ];
    const probeRole = planned.probe?.role;
    return {
      actions,
      planned,
      tables: [
        {
          title: `roles made read-only (${READ_ONLY}, role in database)`,
          columns: [
            { key: 'role', title: 'role' },
            { key: 'database', title: 'database' },
            { key: 'current', title: 'current setting' },
          ],
          rows: settings.map((s) => ({ role: s.role, database: s.database, current: s.value ?? '(not set)' })),
        },
        {
          title: `sessions to terminate${step.config.grace ? ` after ${step.config.grace}ms` : ''}`,
          columns: [
            { key: 'pid', title: 'pid', align: 'right' },
            { key: 'role', title: 'role' },
            { key: 'database', title: 'database' },
            { key: 'application_name', title: 'application' },
            { key: 'client', title: 'client' },
            { key: 'state', title: 'state' },
            { key: 'query', title: 'query' },
          ],
          rows: sessions.map((s) => ({ ...s, query: (s.query ?? '').replace(/\s+/g, ' ').slice(0, 60) })),
        },
      ],
      notes: [
        ...(scope.notFrozen.length > 0 ? [`not frozen: ${scope.notFrozen.join(', ')}`] : []),
        ...(scope.roles.length === 0 ? ['no role to freeze'] : []),
        ...(step.config.blockConnections === true ? ['NOLOGIN is cluster-wide: the frozen roles cannot log in to any database until rollback'] : []),
        probeRole === undefined
          ? 'no probe: the freeze is checked in the catalogs only'
          : `probe: a write as ${probeRole} in ${scope.databases[0] ?? '?'} must fail with SQLSTATE ${READ_ONLY_SQLSTATE}`,
      ],
      ...(scope.problems.length > 0 ? { blockers: scope.problems } : {}),
    };
  },

  async apply(ctx, step, planned) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const prior = ctx.priorBefore ?? undefined;
    // Sessions and roles come and go: plan again, and do nothing unless it is what was planned.
    const fresh = await planFreeze(db, step.config);
    if (fresh.scope.problems.length > 0) throw new UsageError(fresh.scope.problems.join('; '));
    const drift = jsonDifferences(withoutOurWrites(planned, prior), withoutOurWrites(fresh.planned, prior));
    if (drift.length > 0) throw new PlanDriftError(step.id, drift, 'planned');
    const { probe: planProbe } = planned;
    // Whether the probe role could write before: what rollback must give back.
    const probe = prior?.probe ?? (planProbe === null ? null : { ...planProbe, writable: await canWrite(ctx, connection, planProbe.role, planProbe.database) });
    // What an earlier attempt recorded is the state before any freeze; it wins.
    const keep = <T extends { role: string }>(earlier: readonly T[] | undefined, now: readonly T[], same: (a: T, b: T) => boolean) => [
      ...(earlier ?? []),
      ...now.filter((n) => !(earlier ?? []).some((e) => same(e, n))),
    ];
    const before: Before = {
      settings: keep(prior?.settings, planned.settings, (a, b) => a.role === b.role && a.database === b.database),
      logins: planned.blockConnections ? keep(prior?.logins, planned.logins, (a, b) => a.role === b.role) : (prior?.logins ?? []),
      probe,
    };
    ctx.recordBefore(before);

    await inTransaction(db, async () => {
      for (const s of planned.settings) await db.query(freezeStatement(s));
      if (planned.blockConnections) for (const r of planned.roles) await db.query(blockStatement(r));
    });
    if (planned.graceMs > 0) {
      ctx.progress(`frozen; ${planned.graceMs}ms for running sessions to finish`);
      await sleep(planned.graceMs, undefined, { signal: ctx.signal });
    }
    const { rows } = await db.query<{ terminated: string }>(TERMINATE_SQL, [planned.roles, planned.databases]);
    return {
      before,
      output: `froze ${planned.roles.length} role(s) in ${planned.databases.join(', ')}; terminated ${rows[0]?.terminated ?? 0} session(s)`,
    };
  },

  async verify(ctx, step, _planned, before) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    const roles = [...new Set(before?.settings.map((s) => s.role) ?? [])];
    const databases = [...new Set(before?.settings.map((s) => s.database) ?? [])];
    const { rows: writing } = await db.query<SessionRow>(SESSIONS_SQL, [roles, databases]);
    const problems = writing
      .filter((s) => s.writing || step.config.blockConnections === true)
      .map((s) => `session ${s.pid} of ${s.role} in ${s.database} ${s.writing ? 'is in a writing transaction' : 'is still connected'}`);
    const probe = before?.probe;
    if (probe && (await canWrite(ctx, connection, probe.role, probe.database))) {
      problems.push(`a write as ${probe.role} in ${probe.database} succeeded: it is not frozen`);
    }
    if (problems.length > 0) throw new VerificationError(problems.join('; '));
  },

  async planRollback(_ctx, step, before) {
    const connection = step.connection;
    return {
      actions: before === null ? [] : restoreStatements(before).map((sql) => ({ type: 'sql' as const, connection, sql })),
      ...(before?.probe?.writable === true ? { notes: [`then checks that ${before.probe.role} can write in ${before.probe.database} again`] } : {}),
    };
  },

  async rollback(ctx, step, before) {
    const connection = step.connection;
    const db = await ctx.session(connection);
    if (before === null) return;
    await inTransaction(db, async () => {
      for (const sql of restoreStatements(before)) await db.query(sql);
    });
    const probe = before.probe;
    if (probe?.writable === true && !(await canWrite(ctx, connection, probe.role, probe.database))) {
      throw new VerificationError(`settings restored, but ${probe.role} still cannot write in ${probe.database}`);
    }
  },
});
