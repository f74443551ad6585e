/**
 * Small read-only checks several kinds' `check` hooks share: the login
 * role's attributes and memberships, a server setting, a program on PATH.
 */
import type { Queryable } from '../db/session.js';
import type { CheckContext, CheckFinding } from './contract.js';

export interface RoleFacts {
  readonly role: string;
  readonly superuser: boolean;
  readonly replication: boolean;
  readonly createrole: boolean;
  readonly signalBackend: boolean;
  readonly createOnDatabase: boolean;
}

export async function roleFacts(db: Queryable): Promise<RoleFacts> {
  const { rows } = await db.query<{
    role: string;
    superuser: boolean;
    replication: boolean;
    createrole: boolean;
    signal_backend: boolean;
    create_db: boolean;
  }>(
    `SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolreplication AS replication, r.rolcreaterole AS createrole,
       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal_backend,
       has_database_privilege(current_database(), 'CREATE') AS create_db
     FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = rows[0];
  return {
    role: row?.role ?? '?',
    superuser: row?.superuser === true,
    replication: row?.replication === true,
    createrole: row?.createrole === true,
    signalBackend: row?.signal_backend === true,
    createOnDatabase: row?.create_db === true,
  };
}

export async function setting(db: Queryable, name: string): Promise<string> {
  const { rows } = await db.query<{ value: string }>('SELECT current_setting($1) AS value', [name]);
  return rows[0]?.value ?? '';
}

export function privilege(check: string, ok: boolean, role: string, missing: string, fix: string): CheckFinding {
  return ok ? { severity: 'ok', check, message: `role ${role} has it` } : { severity: 'error', check, message: `role ${role} ${missing}`, fix };
}

export async function programFinding(ctx: CheckContext, name: string): Promise<CheckFinding> {
  const found = await ctx.program(name);
  if (found === undefined) {
    return {
      severity: 'error',
      check: `program ${name}`,
      message: `${name} is not found${name.includes('/') ? '' : ' on PATH'}`,
      fix: `install it, or give its full path`,
    };
  }
  return { severity: 'ok', check: `program ${name}`, message: `${found.path}${found.version !== undefined ? ` (${found.version})` : ''}` };
}
