/**
 * A real PgBouncer for tests and the demo: Debian's binary (scripts/tools.ts),
 * on loopback, run as the `postgres` OS user under root (it refuses to run as
 * root), with its `[databases]` entries in a file pulled in by `%include`, as
 * production set-ups keep them. Clients and the admin console log in with
 * SCRAM passwords from the auth file; PgBouncer reaches the servers as
 * `postgres`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, osUser } from './embedded-postgres.js';
import { pgbouncerPath } from './tools.js';

export interface BouncerEntry {
  readonly host: string;
  readonly port: number;
  readonly dbname: string;
}

export interface TestPgBouncer {
  readonly port: number;
  readonly dir: string;
  /** The file holding the [databases] entries. */
  readonly databasesFile: string;
  readonly adminUser: string;
  readonly adminPassword: string;
  /** A client URL for an entry (the application's view), as `postgres` or another user with its password. */
  urlFor(database: string, as?: { readonly user: string; readonly password: string }): string;
  /** An admin console client, connected. */
  admin(): Promise<pg.Client>;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  readonly databases: Readonly<Record<string, BouncerEntry>>;
  readonly poolMode?: 'session' | 'transaction';
  /** Further client users and their passwords (the servers must admit them). */
  readonly users?: Readonly<Record<string, string>>;
  /** PgBouncer's server_login_retry, in seconds (its default: 15). */
  readonly serverLoginRetry?: number;
}

const ADMIN = 'bouncer_admin';
const APP = 'postgres';

function entryLine(name: string, e: BouncerEntry): string {
  return `${name} = host=${e.host} port=${e.port} dbname=${e.dbname}`;
}

export async function startPgBouncer(options: PgBouncerOptions): Promise<TestPgBouncer> {
  const binary = pgbouncerPath();
  const user = osUser();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-pgbouncer-'));
  const port = await freePort();
  const adminPassword = `admin-${Math.random().toString(36).slice(2, 10)}`;
  const appPassword = `app-${Math.random().toString(36).slice(2, 10)}`;
  const databasesFile = path.join(dir, 'databases.ini');
  const files: Record<string, string> = {
    [databasesFile]: `; the entries a cutover moves\n[databases]\n${Object.entries(options.databases)
      .map(([n, e]) => entryLine(n, e))
      .join('\n')}\n`,
    [path.join(dir, 'users.txt')]: Object.entries({ [ADMIN]: adminPassword, [APP]: appPassword, ...options.users })
      .map(([name, password]) => `"${name}" "${password}"\n`)
      .join(''),
    [path.join(dir, 'pgbouncer.ini')]: [
      `%include ${databasesFile}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = scram-sha-256',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `admin_users = ${ADMIN}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      ...(options.serverLoginRetry !== undefined ? [`server_login_retry = ${options.serverLoginRetry}`] : []),
      'default_pool_size = 10',
      'max_client_conn = 200',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      // node-postgres sends it; PgBouncer refuses startup parameters it does not know.
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  };
  for (const [file, text] of Object.entries(files)) {
    writeFileSync(file, text, { mode: 0o600 });
    if (user) chownSync(file, user.uid, user.gid);
  }
  if (user) chownSync(dir, user.uid, user.gid);

  const child: ChildProcess = spawn(binary, [path.join(dir, 'pgbouncer.ini')], {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    stdio: 'ignore',
  });
  let exited = false;
  child.on('exit', () => (exited = true));

  const admin = async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: ADMIN, password: adminPassword, database: 'pgbouncer' });
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await (await admin()).end();
      break;
    } catch (error) {
      // exited is set by the child's exit handler while this loop awaits.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      if (exited || Date.now() > deadline) {
        const log = (() => {
          try {
            return readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8');
          } catch {
            return '(no log)';
          }
        })();
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`pgbouncer did not start: ${String(error)}\n${log}`);
      }
      await sleep(50);
    }
  }

  return {
    port,
    dir,
    databasesFile,
    adminUser: ADMIN,
    adminPassword,
    urlFor: (database, as = { user: APP, password: appPassword }) => `postgres://${as.user}:${as.password}@127.0.0.1:${port}/${database}`,
    admin,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const until = Date.now() + 10_000;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the exit handler meanwhile
        while (!exited && Date.now() < until) await sleep(20);
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- likewise
        if (!exited) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
