/**
 * PgBouncer's admin console: the `pgbouncer` database of a running pooler,
 * spoken to over the simple query protocol with nothing in the startup packet
 * but user, database and application_name (it refuses other parameters).
 *
 * Its commands have no timeout of their own. `PAUSE` waits for every server
 * connection of the database to be released, which in session pooling, or
 * behind a long transaction, may be never; and a `RESUME` sent while that
 * `PAUSE` waits leaves the waiting console connection hanging for good. So a
 * command run with a deadline ends its own console connection when the
 * deadline passes, and the caller resumes from a fresh one.
 */
import type pg from 'pg';
import type { QueryResultRow } from 'pg';
import { loadPg } from './pg-driver.js';
import { DatabaseError, errorMessage, isSqlstate } from '../errors.js';
import type { ResolvedPgBouncer } from './connections.js';

/** A console command that did not answer within its deadline; its connection was closed. */
export class AdminTimeoutError extends Error {
  override readonly name = 'AdminTimeoutError';
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`${command} did not complete within ${timeoutMs}ms`);
  }
}

export class PgBouncerAdmin {
  private constructor(
    readonly connectionName: string,
    private readonly client: pg.Client,
  ) {}

  static async open(connectionName: string, resolved: ResolvedPgBouncer, applicationName: string): Promise<PgBouncerAdmin> {
    const { Client } = await loadPg();
    const client = new Client({ ...resolved.clientConfig, application_name: applicationName.slice(0, 63) });
    // A closed console connection (our own deadline, a pooler restart) must not crash the process.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (error) {
      const failed = asDatabaseError(connectionName, error, 'connect');
      throw new DatabaseError(`cannot connect to ${resolved.identity.target}: ${failed.message}`, failed.details);
    }
    return new PgBouncerAdmin(connectionName, client);
  }

  /** `SHOW <what>`: one object per row, values as PgBouncer prints them. */
  async show<Row extends QueryResultRow>(what: string): Promise<Row[]> {
    const sql = `SHOW ${what}`;
    try {
      return (await this.client.query<Row>(sql)).rows;
    } catch (error) {
      throw asDatabaseError(this.connectionName, error, sql);
    }
  }

  /** A console command (PAUSE, RESUME, RELOAD); past `timeoutMs` the connection is closed and AdminTimeoutError thrown. */
  async command(sql: string, options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {}): Promise<void> {
    const running = this.client.query(sql);
    if (options.timeoutMs === undefined && options.signal === undefined) {
      await running.catch((error: unknown) => {
        throw asDatabaseError(this.connectionName, error, sql);
      });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      const give = (error: Error) => {
        // The only way to stop waiting for a console command: end the connection that sent it.
        this.client.connection.stream.destroy();
        reject(error);
      };
      if (options.timeoutMs !== undefined) {
        const timeoutMs = options.timeoutMs;
        timer = setTimeout(() => {
          give(new AdminTimeoutError(sql, timeoutMs));
        }, timeoutMs);
      }
      if (options.signal !== undefined) {
        const signal = options.signal;
        onAbort = () => {
          give(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      await Promise.race([
        running.catch((error: unknown) => {
          throw asDatabaseError(this.connectionName, error, sql);
        }),
        deadline,
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
      running.catch(() => {}); // settled by the destroyed connection, if it was
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

function asDatabaseError(connection: string, error: unknown, sql: string): DatabaseError {
  const e = error as { code?: string; detail?: string; hint?: string };
  // The connection is in the details: formatDatabaseError puts its name in front, once.
  return new DatabaseError(errorMessage(error), {
    connection,
    sql,
    ...(isSqlstate(e.code) ? { sqlstate: e.code } : {}),
    ...(e.detail !== undefined ? { detail: e.detail } : {}),
    ...(e.hint !== undefined ? { hint: e.hint } : {}),
  });
}
