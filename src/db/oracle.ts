/**
 * Oracle, read-only, through node-oracledb in Thin mode: pure JavaScript, no
 * Instant Client. The driver is loaded only when a runbook reaches an Oracle
 * connection. Tests inject a connector (no Oracle server can run here).
 */
import { DatabaseError } from '../errors.js';
import type { ResolvedOracle } from './connections.js';

export type OracleBinds = Readonly<Record<string, string | number>>;

/** What steps get: a query returning rows as objects keyed by upper-case column name. */
export interface OracleSession {
  readonly connectionName: string;
  query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, binds?: OracleBinds): Promise<Row[]>;
  close(): Promise<void>;
}

/** The part of an oracledb connection this module uses; tests pass their own. */
export interface OracleConnection {
  execute(sql: string, binds: OracleBinds, options: { outFormat: number }): Promise<{ rows?: unknown[] }>;
  close(): Promise<void>;
}

export type OracleConnector = (spec: ResolvedOracle['spec']) => Promise<OracleConnection>;

/** node-oracledb's constant for rows as objects (`oracledb.OUT_FORMAT_OBJECT`). */
export const OUT_FORMAT_OBJECT = 4002;

export const thinConnector: OracleConnector = async (spec) => {
  const { default: oracledb } = await import('oracledb');
  return oracledb.getConnection({
    user: spec.user,
    connectString: spec.connectString,
    ...(spec.password === undefined ? {} : { password: spec.password }),
  });
};

export async function openOracle(name: string, resolved: ResolvedOracle, connector: OracleConnector = thinConnector): Promise<OracleSession> {
  let connection: OracleConnection;
  try {
    connection = await connector(resolved.spec);
  } catch (error) {
    throw oracleError(name, error, undefined, `cannot connect to ${resolved.identity.target}`);
  }
  return {
    connectionName: name,
    async query<Row extends Record<string, unknown>>(sql: string, binds: OracleBinds = {}): Promise<Row[]> {
      try {
        const result = await connection.execute(sql, binds, { outFormat: OUT_FORMAT_OBJECT });
        return (result.rows ?? []) as Row[];
      } catch (error) {
        throw oracleError(name, error, sql);
      }
    },
    close: () => connection.close().catch(() => {}),
  };
}

/** ORA- errors have no SQLSTATE; the ORA code stays in the message. */
function oracleError(connection: string, error: unknown, sql?: string, prefix?: string): DatabaseError {
  const message = error instanceof Error ? error.message : String(error);
  return new DatabaseError(prefix === undefined ? message : `${prefix}: ${message}`, {
    connection,
    ...(sql !== undefined ? { sql } : {}),
  });
}

/** The schemas to read: the runbook's `schemas` keys, else the connecting user's current schema. */
export async function oracleOwners(db: OracleSession, mapped: readonly string[]): Promise<string[]> {
  if (mapped.length > 0) return [...mapped];
  const rows = await db.query<{ SCHEMA: string }>(`SELECT SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') AS "SCHEMA" FROM dual`);
  const schema = rows[0]?.SCHEMA;
  if (schema === undefined) throw new Error(`${db.connectionName}: could not read the current schema`);
  return [schema];
}
