/**
 * A PostgreSQL session opened for one purpose (a step, a lock, a plan). The
 * session settings that keep a cutover safe are sent in the startup packet, so
 * they hold from the first statement and cost no round trip:
 * application_name, lock_timeout, statement_timeout and, for anything that
 * must not write, default_transaction_read_only.
 */
import type pg from 'pg';
import type { QueryResultRow } from 'pg';
import { loadPg } from './pg-driver.js';
import { ConnectionFailedError, DatabaseError, isSqlstate } from '../errors.js';
import type { ResolvedPostgres } from './connections.js';

export interface SessionOptions {
  /** Shown in pg_stat_activity: `cutover/<runId>/<stepId>`. */
  readonly applicationName: string;
  /** undefined: leave the server's own setting (role, database) in force. */
  readonly readOnly: boolean | undefined;
  /** Log in as this role instead of the connection's user, without its password. */
  readonly user?: string;
  /** Connect to this database instead of the connection's. */
  readonly database?: string;
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** TCP keepalives, for a session that stays idle for long (the run lock). */
  readonly keepAlive?: boolean;
}

export interface QueryResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
  readonly command: string;
}

/** What steps get: run SQL, nothing else. */
export interface Queryable {
  readonly connectionName: string;
  query<Row extends QueryResultRow = QueryResultRow>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>>;
  /**
   * Several statements, one row list per statement: in one round trip (the
   * simple query protocol) on a session that may write, one statement at a
   * time through the extended protocol on a read-only one.
   */
  queryMany<Row extends QueryResultRow = QueryResultRow>(statements: readonly string[]): Promise<Row[][]>;
}

export class Session implements Queryable {
  private constructor(
    readonly connectionName: string,
    private readonly client: pg.Client,
    /**
     * Read-only sessions send every statement through the extended query
     * protocol, which carries exactly one statement: text such as
     * `SET default_transaction_read_only = off; COMMIT; INSERT ...` fails
     * there instead of escaping the read-only transaction.
     */
    private singleStatement: boolean,
    /** How to reach the server again, to cancel a running statement. */
    private readonly cancelConfig: pg.ClientConfig,
  ) {}

  /** Statements in flight on this session. */
  private active = 0;

  /**
   * Readies an idle session of ours for another phase, in one round trip: its
   * application_name, and its access mode, at the server
   * (default_transaction_read_only) and here (one statement per message when
   * read-only), so a read-only phase can take a session a writing phase
   * handed back, and the other way round. Only between transactions.
   */
  async reuseAs(applicationName: string, readOnly: boolean): Promise<void> {
    await this.query("SELECT set_config('application_name', $1, false), set_config('default_transaction_read_only', $2, false)", [
      applicationName,
      readOnly ? 'on' : 'off',
    ]);
    this.singleStatement = readOnly;
  }

  /**
   * Cancels the statement running on this session, if any, the way psql's
   * Ctrl-C does: the server aborts it (SQLSTATE 57014) and the session's
   * transaction with it. Sent from a second connection as the same role.
   */
  async cancel(): Promise<void> {
    if (this.active === 0) return;
    const pid = (this.client as pg.Client & { readonly processID?: number | null }).processID;
    if (typeof pid !== 'number') return;
    const { Client } = await loadPg();
    const canceller = new Client({ ...this.cancelConfig, application_name: 'cutover/cancel', connectionTimeoutMillis: 5_000 });
    canceller.on('error', () => {});
    try {
      await canceller.connect();
      await canceller.query('SELECT pg_cancel_backend($1)', [pid]);
    } finally {
      await canceller.end().catch(() => {});
    }
  }

  static async open(connectionName: string, resolved: ResolvedPostgres, options: SessionOptions): Promise<Session> {
    const startupOptions = [
      `-c lock_timeout=${options.lockTimeoutMs}`,
      `-c statement_timeout=${options.statementTimeoutMs}`,
      ...(options.readOnly === undefined ? [] : [`-c default_transaction_read_only=${options.readOnly ? 'on' : 'off'}`]),
    ].join(' ');
    const { Client } = await loadPg();
    const config: pg.ClientConfig = { ...resolved.clientConfig };
    if (options.user !== undefined && options.user !== config.user) {
      // Another role's password is not ours: trust, peer, cert or ~/.pgpass must let it in.
      delete config.password;
      config.user = options.user;
    }
    if (options.database !== undefined) config.database = options.database;
    const connect = async (ssl: pg.ClientConfig['ssl']): Promise<pg.Client> => {
      const client = new Client({
        ...config,
        ssl,
        application_name: options.applicationName.slice(0, 63),
        options: startupOptions,
        connectionTimeoutMillis: config.connectionTimeoutMillis ?? 15_000,
        ...(options.keepAlive === true ? { keepAlive: true, keepAliveInitialDelayMillis: 10_000 } : {}),
      });
      // An idle client whose server goes away emits 'error'; without a listener
      // that would crash the process instead of failing the next query.
      client.on('error', () => {});
      try {
        await client.connect();
        return client;
      } catch (error) {
        await client.end().catch(() => {});
        throw error;
      }
    };
    let client: pg.Client;
    try {
      try {
        client = await connect(config.ssl);
      } catch (error) {
        // sslmode allow/prefer: a server without TLS is accepted in plain text, as libpq does.
        if (!resolved.tlsFallback || !/does not support SSL/i.test(errorText(error))) throw error;
        client = await connect(false);
      }
    } catch (error) {
      const failed = toDatabaseError(
        connectionName,
        explainConnectError(error, resolved, options.user),
        undefined,
        `cannot connect to ${resolved.identity.target}${options.user !== undefined ? ` as ${options.user}` : ''}`,
      );
      throw new ConnectionFailedError(failed.message, failed.details);
    }
    return new Session(connectionName, client, options.readOnly === true, config);
  }

  /** Calls `listener` once when the connection ends or fails (including a server-side termination). */
  onEnd(listener: (reason: string) => void): void {
    let called = false;
    const once = (reason: string) => {
      if (called) return;
      called = true;
      listener(reason);
    };
    this.client.on('error', (error: Error) => {
      once(error.message);
    });
    this.client.on('end', () => {
      once('the connection closed');
    });
  }

  async query<Row extends QueryResultRow = QueryResultRow>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
    try {
      const config: pg.QueryConfig & { queryMode?: 'extended' } = {
        text: sql,
        ...(params !== undefined ? { values: [...params] } : {}),
        ...(this.singleStatement ? { queryMode: 'extended' as const } : {}),
      };
      this.active++;
      const result = await this.client.query<Row>(config).finally(() => this.active--);
      return { rows: result.rows, rowCount: result.rowCount ?? 0, command: result.command };
    } catch (error) {
      throw toDatabaseError(this.connectionName, error, sql);
    }
  }

  async queryMany<Row extends QueryResultRow = QueryResultRow>(statements: readonly string[]): Promise<Row[][]> {
    if (this.singleStatement) {
      const results: Row[][] = [];
      for (const statement of statements) results.push((await this.query<Row>(statement)).rows);
      return results;
    }
    const sql = statements.join(';\n');
    try {
      this.active++;
      const result = (await this.client.query<Row>(sql).finally(() => this.active--)) as pg.QueryResult<Row> | pg.QueryResult<Row>[];
      return Array.isArray(result) ? result.map((r) => r.rows) : [result.rows];
    } catch (error) {
      throw toDatabaseError(this.connectionName, error, sql);
    }
  }

  /** Runs `body` in a transaction; commits if it returns, rolls back if it throws. */
  transaction<T>(body: (tx: Queryable) => Promise<T>): Promise<T> {
    return inTransaction(this, () => body(this));
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

function errorText(error: unknown): string {
  // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty.
  if (error instanceof AggregateError && error.message === '' && error.errors[0] instanceof Error) return error.errors[0].message;
  return error instanceof Error ? error.message : String(error);
}

/** node-postgres' own wording for a missing password says nothing about how to give one. */
function explainConnectError(error: unknown, resolved: ResolvedPostgres, user: string | undefined): unknown {
  // scram fails in the client without a password; md5 sends an empty one and the server refuses it (28P01).
  const otherRole = user !== undefined && user !== resolved.clientConfig.user;
  const noPassword = (otherRole || resolved.clientConfig.password === undefined) && (error as { code?: unknown }).code === '28P01';
  if (noPassword || /client password must be a string|password must be a string/i.test(errorText(error))) {
    return new Error(
      otherRole
        ? `the server asks for a password for role ${user}, and only trust, peer, cert or ~/.pgpass can give one here`
        : 'the server asks for a password and none was given (password, passwordFile, the URL, PGPASSWORD or ~/.pgpass)',
    );
  }
  const code = (error as { code?: unknown }).code ?? (error instanceof AggregateError ? (error.errors[0] as { code?: unknown } | undefined)?.code : undefined);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') {
    return new Error(`${errorText(error)} (${code}: is the server running and the host and port right?)`);
  }
  return error;
}

interface PgErrorFields {
  message?: string;
  code?: string;
  detail?: string;
  hint?: string;
  position?: string;
}

export function toDatabaseError(connection: string, error: unknown, sql?: string, prefix?: string): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const fields = (typeof error === 'object' && error !== null ? error : {}) as PgErrorFields;
  const base = error instanceof Error ? errorText(error) : String(error);
  const message = prefix === undefined ? base : `${prefix}: ${base}`;
  const position = fields.position !== undefined ? Number(fields.position) : undefined;
  return new DatabaseError(message, {
    connection,
    ...(isSqlstate(fields.code) ? { sqlstate: fields.code } : {}),
    ...(fields.detail !== undefined ? { detail: fields.detail } : {}),
    ...(fields.hint !== undefined ? { hint: fields.hint } : {}),
    ...(position !== undefined && Number.isFinite(position) ? { position } : {}),
    ...(sql !== undefined ? { sql } : {}),
  });
}

/** Runs `body` in a transaction on `db`; commits if it returns, rolls back if it throws. */
export async function inTransaction<T>(db: Queryable, body: () => Promise<T>): Promise<T> {
  await db.query('BEGIN');
  try {
    const result = await body();
    await db.query('COMMIT');
    return result;
  } catch (error) {
    await db.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
