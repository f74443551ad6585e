/**
 * Preflight (`cutover check`, and the first thing `plan` does): opens every
 * connection the runbook names, read-only, and reports how it logged in
 * (TLS, server version, recovery, role); then asks each step's kind for the
 * privileges, settings and programs it will need. Writes nothing and
 * journals nothing. Knows the step contract, never a kind.
 *
 * A step is only checked when every connection it uses opened; a connection
 * failure is reported against the connection, never against a step.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { DatabaseError, errorMessage } from '../errors.js';
import { Session } from '../db/session.js';
import { PgBouncerAdmin } from '../db/pgbouncer-admin.js';
import { PatroniApi } from '../db/patroni-api.js';
import type { ConnectionKind } from '../db/connection-spec.js';
import type { Runbook } from '../runbook/load.js';
import { execaRunner, type CommandRunner } from '../step/commands.js';
import type { EngineOptions } from './run-context.js';
import { resolveAll } from '../runbook/connections.js';
import type { CheckContext, CheckFinding, Step } from '../step/contract.js';

export interface ConnectionCheck {
  readonly name: string;
  readonly kind: ConnectionKind;
  readonly target: string;
  readonly status: 'ok' | 'failed' | 'not-checked';
  readonly passwordFrom: string;
  readonly serverVersion?: string;
  readonly inRecovery?: boolean;
  readonly tls?: string;
  readonly role?: string;
  readonly superuser?: boolean;
  readonly error?: string;
  readonly fix?: string;
  readonly warnings: readonly string[];
}

export interface StepCheck {
  readonly stepId: string;
  readonly kind: string;
  /** Connections the step uses that failed: the step was not checked. */
  readonly blockedBy: readonly string[];
  readonly findings: readonly CheckFinding[];
}

export interface PreflightResult {
  readonly connections: readonly ConnectionCheck[];
  readonly steps: readonly StepCheck[];
  /** True when every connection opened and no finding is an error. */
  readonly ok: boolean;
  readonly connectionsOk: boolean;
}

export type PreflightOptions = Pick<EngineOptions, 'registry' | 'signal' | 'commands' | 'protect'> & {
  /** Check only these steps (plan --only/--from); all connections are still opened. */
  readonly steps?: readonly Step[];
};

interface ServerFacts {
  version: string;
  in_recovery: boolean;
  role: string;
  superuser: boolean;
  ssl: boolean | null;
  ssl_version: string | null;
  client_dn: string | null;
}

const FACTS_SQL = `SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS in_recovery,
  current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
  s.ssl, s.version AS ssl_version, s.client_dn
FROM (SELECT 1) one LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid()`;

/** A connection that did not open: what the server or the driver said, its SQLSTATE, and what to do. */
function failure(error: unknown, target: string): { status: 'failed'; error: string; fix: string } {
  const message = errorMessage(error);
  const sqlstate = error instanceof DatabaseError ? error.details.sqlstate : undefined;
  return { status: 'failed', error: sqlstate !== undefined ? `${message} (SQLSTATE ${sqlstate})` : message, fix: fixFor(message, target) };
}

function fixFor(message: string, target: string): string {
  // PgBouncer's console: a user it knows, but not as an admin.
  if (/\bnot allowed\b/i.test(message)) return `list the user in admin_users of the PgBouncer at ${target} (stats_users may only read), then RELOAD it`;
  if (/password authentication failed|SASL|no password|asks for a password/i.test(message)) {
    return 'check the password (password, passwordFile, the URL, PGPASSWORD or ~/.pgpass) and the user';
  }
  if (/pg_hba\.conf/i.test(message)) return `add a pg_hba.conf line admitting this user from this host on ${target}`;
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|timeout/i.test(message))
    return 'check the host and port, and that the server is running and reachable from here';
  if (/SSL|TLS|certificate|self[- ]signed/i.test(message)) return 'check sslmode and sslrootcert (the CA that signed the server certificate)';
  if (/does not exist/i.test(message)) return 'check the database and user names';
  return 'see the error above';
}

async function findProgram(name: string, commands: CommandRunner, signal: AbortSignal): Promise<{ path: string; version?: string } | undefined> {
  const candidates = name.includes('/')
    ? [name]
    : (process.env['PATH'] ?? '')
        .split(path.delimiter)
        .filter((d) => d !== '')
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
    } catch {
      continue;
    }
    // Only PostgreSQL's own tools are asked for a version: any other program might act on --version.
    if (!/^(pg_[a-z_]+|psql|postgres|initdb)$/.test(path.basename(candidate))) return { path: candidate };
    try {
      const result = await commands([candidate, '--version'], { timeoutMs: 10_000, signal });
      return { path: candidate, version: result.stdout.trim().split('\n')[0] ?? '' };
    } catch {
      return { path: candidate };
    }
  }
  return undefined;
}

/** The connections a step uses: its own, then those its config names. */
function connectionsOf(registry: PreflightOptions['registry'], step: Step): string[] {
  const definition = registry[step.kind];
  return [...new Set([step.connection, ...(definition?.connections?.(step.config) ?? [])].filter((n): n is string => n !== undefined))];
}

export async function preflight(runbook: Runbook, options: PreflightOptions): Promise<PreflightResult> {
  const signal = options.signal ?? new AbortController().signal;
  const commands = options.commands ?? execaRunner;
  const resolved = resolveAll(runbook);
  options.protect?.([...runbook.secrets, ...[...resolved.values()].flatMap((c) => c.secrets)]);
  const sessions = new Map<string, Session>();
  const consoles = new Map<string, PgBouncerAdmin>();
  const connections: ConnectionCheck[] = [];
  // plan --only / --from: a server the selected steps never use may be down while they are rehearsed.
  const selected = options.steps === undefined ? undefined : new Set(options.steps.flatMap((step) => connectionsOf(options.registry, step)));
  try {
    await Promise.all(
      [...resolved.entries()].map(async ([name, connection]) => {
        const base = {
          name,
          kind: connection.kind,
          target: connection.identity.target,
          passwordFrom: connection.passwordSource,
          warnings: connection.warnings,
        };
        if (selected !== undefined && !selected.has(name)) {
          connections.push({ ...base, status: 'not-checked', fix: 'not used by the selected steps' });
          return;
        }
        const spec = runbook.connections[name];
        if (spec?.kind === 'postgres' && spec.startedByRunbook === true) {
          connections.push({
            ...base,
            status: 'not-checked',
            fix: 'started by a step of this runbook: opened and locked when the first step that uses it runs',
          });
          return;
        }
        if (connection.kind === 'oracle') {
          connections.push({ ...base, status: 'not-checked', fix: 'Oracle connections are opened by the steps that use them' });
          return;
        }
        if (connection.kind === 'patroni') {
          try {
            const cluster = await new PatroniApi(name, connection).cluster({ signal });
            const leader = cluster.members.find((m) => m.role === 'leader')?.name ?? 'no leader';
            connections.push({ ...base, status: 'ok', serverVersion: `Patroni cluster: ${cluster.members.length} members, leader ${leader}` });
          } catch (error) {
            connections.push({ ...base, ...failure(error, connection.identity.target) });
          }
          return;
        }
        if (connection.kind === 'pgbouncer') {
          try {
            const console = await PgBouncerAdmin.open(name, connection, 'cutover/check');
            consoles.set(name, console);
            const [row] = await console.show<{ version: string }>('VERSION');
            connections.push({ ...base, status: 'ok', ...(row !== undefined ? { serverVersion: row.version } : {}) });
          } catch (error) {
            connections.push({ ...base, ...failure(error, connection.identity.target) });
          }
          return;
        }
        try {
          const session = await Session.open(name, connection, {
            applicationName: 'cutover/check',
            readOnly: true,
            lockTimeoutMs: runbook.defaults.lockTimeoutMs,
            statementTimeoutMs: Math.min(runbook.defaults.statementTimeoutMs, 30_000),
          });
          sessions.set(name, session);
          const facts = (await session.query<ServerFacts>(FACTS_SQL)).rows[0];
          connections.push({
            ...base,
            status: 'ok',
            ...(facts !== undefined
              ? {
                  serverVersion: facts.version,
                  inRecovery: facts.in_recovery,
                  tls: facts.ssl === true ? `${facts.ssl_version ?? 'TLS'}${facts.client_dn ? ` (client certificate ${facts.client_dn})` : ''}` : 'none',
                  role: facts.role,
                  superuser: facts.superuser,
                }
              : {}),
          });
        } catch (error) {
          connections.push({ ...base, ...failure(error, connection.identity.target) });
        }
      }),
    );
    connections.sort((a, b) => Object.keys(runbook.connections).indexOf(a.name) - Object.keys(runbook.connections).indexOf(b.name));
    const byName = new Map(connections.map((c) => [c.name, c]));
    const steps: StepCheck[] = [];
    for (const step of options.steps ?? runbook.steps) {
      const definition = options.registry[step.kind];
      if (definition === undefined) continue;
      const used = connectionsOf(options.registry, step);
      // A connection that failed blocks the step's checks; one the runbook starts itself cannot be checked yet.
      const blockedBy = used.filter(
        (n) => byName.get(n)?.status === 'failed' || (byName.get(n)?.status === 'not-checked' && byName.get(n)?.kind === 'postgres'),
      );
      if (blockedBy.length > 0) {
        steps.push({ stepId: step.id, kind: step.kind, blockedBy, findings: [] });
        continue;
      }
      const findings: CheckFinding[] = [];
      // Kind-agnostic: a step that writes cannot write on a standby.
      const target = step.connection !== undefined ? byName.get(step.connection) : undefined;
      if (target?.inRecovery === true && definition.effects(step.config) !== 'none') {
        findings.push({
          severity: 'error',
          check: 'primary',
          message: `connection "${target.name}" is a standby (in recovery); this step writes`,
          fix: 'point the connection at the primary',
        });
      }
      if (definition.check !== undefined) {
        const ctx: CheckContext = {
          signal,
          session: async (name) => {
            const session = sessions.get(name);
            if (session === undefined) throw new Error(`connection "${name}" was not opened`);
            return session;
          },
          program: (name) => findProgram(name, commands, signal),
          pgbouncer: async (name) => {
            const console = byName.get(name)?.status === 'ok' ? consoles.get(name) : undefined;
            if (console === undefined) throw new Error(`connection "${name}" is not an open PgBouncer console`);
            return { show: <Row extends object>(what: string) => console.show<Row & Record<string, unknown>>(what) };
          },
          canLogIn: async (name, user, database) => {
            const connection = resolved.get(name);
            if (connection?.kind !== 'postgres') return { ok: false, reason: `connection "${name}" is not postgres` };
            try {
              const session = await Session.open(name, connection, {
                applicationName: 'cutover/check/login',
                readOnly: undefined,
                user,
                ...(database !== undefined ? { database } : {}),
                lockTimeoutMs: runbook.defaults.lockTimeoutMs,
                statementTimeoutMs: 10_000,
              });
              await session.close();
              return { ok: true };
            } catch (error) {
              return { ok: false, reason: errorMessage(error) };
            }
          },
          resolvePath: (file) => path.resolve(runbook.dir, file),
        };
        try {
          findings.push(...(await definition.check(ctx, step)));
        } catch (error) {
          findings.push({ severity: 'error', check: 'preflight', message: `could not check: ${errorMessage(error)}` });
        }
      }
      steps.push({ stepId: step.id, kind: step.kind, blockedBy: [], findings });
    }
    const connectionsOk = connections.every((c) => c.status !== 'failed');
    return {
      connections,
      steps,
      connectionsOk,
      ok: connectionsOk && steps.every((s) => s.findings.every((f) => f.severity !== 'error')),
    };
  } finally {
    await Promise.all([...sessions.values(), ...consoles.values()].map((s) => s.close()));
  }
}
