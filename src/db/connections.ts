/**
 * Resolves runbook connection specs the way libpq users write them into
 * something a driver can use, and into an identity that can be shown and
 * journaled. Secrets stay inside `ResolvedPostgres.clientConfig` and `env`;
 * `identity` never holds one.
 *
 * Password, first found wins (libpq's order): `password`, `passwordFile`, the
 * URL's password, $PGPASSWORD, then the password file ($PGPASSFILE or
 * ~/.pgpass, ignored when group/world readable, as libpq does).
 *
 * The URL is parsed here, not by the driver: node-postgres lets a parsed
 * connection string override `password`, which is how `url` + `password`
 * used to fail with "client password must be a string".
 */
import os from 'node:os';
import path from 'node:path';
import type { ClientConfig } from 'pg';
import type {
  ConnectionKind,
  ConnectionSpec,
  OracleConnectionSpec,
  PatroniConnectionSpec,
  PgBouncerConnectionSpec,
  PostgresConnectionSpec,
  SslMode,
} from './connection-spec.js';
import { UsageError } from '../errors.js';
import { FileRefusal, SMALL_FILE_LIMIT, checkRegularFile, readRegularFile, readableByOthers } from '../files.js';

export interface ConnectionIdentity {
  readonly name: string;
  readonly kind: ConnectionKind;
  /** Where it points, without credentials: `user@host:port/database`. */
  readonly target: string;
}

export interface ResolvedPostgres {
  readonly kind: 'postgres';
  readonly identity: ConnectionIdentity;
  readonly clientConfig: Readonly<ClientConfig>;
  /** sslmode allow/prefer: try TLS, and connect without it if the server does not offer it. */
  readonly tlsFallback: boolean;
  readonly sslmode: SslMode;
  /** Where the password came from (never the password): shown by `cutover check`. */
  readonly passwordSource: string;
  /** libpq environment for external commands (psql, pg_dump, pg_upgrade). */
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: readonly string[];
  /** Things a person should fix that do not stop the connection (a readable password file). */
  readonly warnings: readonly string[];
}

export interface ResolvedOracle {
  readonly kind: 'oracle';
  readonly identity: ConnectionIdentity;
  readonly spec: { readonly connectString: string; readonly user: string; readonly password?: string };
  readonly passwordSource: string;
  readonly secrets: readonly string[];
  readonly warnings: readonly string[];
}

/** PgBouncer's admin console: no startup options (it refuses unknown ones), simple query protocol only. */
export interface ResolvedPgBouncer {
  readonly kind: 'pgbouncer';
  readonly identity: ConnectionIdentity;
  readonly clientConfig: Readonly<ClientConfig>;
  readonly passwordSource: string;
  readonly secrets: readonly string[];
  readonly warnings: readonly string[];
}

/** Patroni's REST API: the members to ask, in order, and how to authenticate. */
export interface ResolvedPatroni {
  readonly kind: 'patroni';
  readonly identity: ConnectionIdentity;
  /** Base URLs (`http(s)://host:port`), the connection's `url` first. */
  readonly urls: readonly string[];
  /** `Basic ...` for the unsafe endpoints, when a username is given. */
  readonly authorization?: string;
  /** PEM contents for https: a CA to verify the API, a client certificate and key. */
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly passwordSource: string;
  readonly secrets: readonly string[];
  readonly warnings: readonly string[];
}

export type ResolvedConnection = ResolvedPostgres | ResolvedOracle | ResolvedPgBouncer | ResolvedPatroni;

/** Where a problem is in the spec, so validation can point at the key. */
export class ConnectionSpecError extends UsageError {
  constructor(
    readonly connection: string,
    readonly key: string,
    message: string,
  ) {
    super(`connection "${connection}": ${message}`);
  }
}

export interface ResolveOptions {
  /** Directory relative paths are resolved against (the runbook's). */
  readonly baseDir: string;
  /** PGPASSWORD, PGPASSFILE, HOME; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const URL_PARAMETERS = new Set(['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connect_timeout', 'application_name']);
const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

function decode(name: string, what: string, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    // Never echo the text: it may be a password.
    throw new ConnectionSpecError(name, 'url', `the URL's ${what} has an invalid percent-encoding (write %25 for a literal %)`);
  }
}

interface ParsedUrl {
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  /** The password exactly as written in the URL (percent-encoded). */
  rawPassword?: string;
  params: Map<string, string>;
}

/** postgres://user:password@host:port/database?sslmode=... (also postgresql://). */
export function parsePostgresUrl(name: string, text: string): ParsedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConnectionSpecError(name, 'url', 'url is not a valid postgres:// URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConnectionSpecError(name, 'url', `url must start with postgres:// or postgresql:// (not ${url.protocol}//)`);
  }
  // An unencoded "/", "?" or "#" in a password ends the authority early: the rest of the password then reads
  // as a database, a parameter or a fragment, and would be shown as one. Refused without showing the URL.
  if (url.hash !== '' || `${url.pathname}${url.search}`.includes('@')) {
    throw new ConnectionSpecError(
      name,
      'url',
      `url has ${url.hash !== '' ? 'a "#"' : 'an "@" after its host'}: a password or user name holding "/", "?", "#" or "@" must be percent-encoded there (%2F, %3F, %23, %40); the URL is not shown, it may hold a password`,
    );
  }
  const parsed: ParsedUrl = { params: new Map() };
  if (url.hostname) parsed.host = decode(name, 'host', url.hostname.replace(/^\[(.*)\]$/, '$1'));
  if (url.port) parsed.port = Number(url.port);
  const database = decode(name, 'database', url.pathname.replace(/^\//, ''));
  if (database) parsed.database = database;
  if (url.username) parsed.user = decode(name, 'user name', url.username);
  if (url.password) {
    parsed.rawPassword = url.password;
    parsed.password = decode(name, 'password', url.password);
  }
  // URLSearchParams decodes leniently (a bad %zz stays literal); check the raw text first.
  decode(name, 'parameters', url.search);
  for (const [key, value] of url.searchParams) {
    if (!URL_PARAMETERS.has(key)) {
      throw new ConnectionSpecError(name, 'url', `unsupported URL parameter "${key}" (supported: ${[...URL_PARAMETERS].join(', ')})`);
    }
    parsed.params.set(key, value);
  }
  return parsed;
}

function readSecretFile(name: string, key: string, file: string, maxBytes = SMALL_FILE_LIMIT): { text: string; mode: number } {
  try {
    const { mode } = checkRegularFile(file, maxBytes);
    return { text: readRegularFile(file, maxBytes).toString('utf8'), mode };
  } catch (error) {
    if (error instanceof FileRefusal) throw new ConnectionSpecError(name, key, `${key}: ${error.message}`);
    throw error;
  }
}

/** The password in a password file: its first line, without the line ending. */
export function readPasswordFile(name: string, file: string): { password: string; content: string; warning?: string } {
  const { text, mode } = readSecretFile(name, 'passwordFile', file);
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password === '') throw new ConnectionSpecError(name, 'passwordFile', `passwordFile ${file} is empty`);
  return {
    password,
    content: text.trim(),
    ...(readableByOthers(mode)
      ? { warning: `connection "${name}": passwordFile ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it` }
      : {}),
  };
}

/** libpq's password file: `host:port:database:user:password`, `*` matches anything, `\` escapes. */
export function lookupPgpass(text: string, want: { host: string; port: number; database: string; user: string }): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields: string[] = [];
    let current = '';
    for (let i = 0; i < line.length; i++) {
      const char = line.charAt(i);
      if (char === '\\' && i + 1 < line.length) current += line.charAt(++i);
      else if (char === ':' && fields.length < 4) {
        fields.push(current);
        current = '';
      } else current += char;
    }
    fields.push(current);
    if (fields.length !== 5) continue;
    const [host, port, database, user, password] = fields as [string, string, string, string, string];
    const match = (pattern: string, value: string) => pattern === '*' || pattern === value;
    if (match(host, want.host) && match(port, String(want.port)) && match(database, want.database) && match(user, want.user)) {
      return password;
    }
  }
  return undefined;
}

function pgpassFile(env: Readonly<Record<string, string | undefined>>): string {
  return env['PGPASSFILE'] ?? path.join(env['HOME'] ?? os.homedir(), '.pgpass');
}

function resolvePostgres(name: string, spec: PostgresConnectionSpec, options: ResolveOptions): ResolvedPostgres {
  const env = options.env ?? process.env;
  const url = spec.url !== undefined ? parsePostgresUrl(name, spec.url) : ({ params: new Map<string, string>() } as ParsedUrl);
  const secrets: string[] = [];
  const warnings: string[] = [];
  const host = spec.host ?? url.host ?? env['PGHOST'] ?? 'localhost';
  const port = spec.port ?? url.port ?? (env['PGPORT'] !== undefined ? Number(env['PGPORT']) : 5432);
  const user = spec.user ?? url.user ?? env['PGUSER'] ?? os.userInfo().username;
  const database = spec.database ?? url.database ?? env['PGDATABASE'] ?? user;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConnectionSpecError(name, 'port', `port ${port} is out of range (1-65535)`);

  let password: string | undefined;
  let passwordSource = 'none';
  if (url.password !== undefined) {
    // Known as a secret whichever source wins: it is written in the runbook.
    secrets.push(url.password);
    if (url.rawPassword !== undefined) secrets.push(url.rawPassword);
  }
  if (spec.password !== undefined) [password, passwordSource] = [spec.password, 'password'];
  else if (spec.passwordFile !== undefined) {
    const file = path.resolve(options.baseDir, spec.passwordFile);
    const read = readPasswordFile(name, file);
    if (read.warning !== undefined) warnings.push(read.warning);
    // The whole file is secret, not only the line used.
    secrets.push(read.content);
    [password, passwordSource] = [read.password, `passwordFile ${file}`];
  } else if (url.password !== undefined) [password, passwordSource] = [url.password, 'the URL'];
  else if (env['PGPASSWORD'] !== undefined && env['PGPASSWORD'] !== '') [password, passwordSource] = [env['PGPASSWORD'], 'PGPASSWORD'];
  else {
    const file = pgpassFile(env);
    try {
      const { mode } = checkRegularFile(file, SMALL_FILE_LIMIT);
      if (readableByOthers(mode)) {
        warnings.push(`password file ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); ignored, as libpq does: chmod 600 it`);
      } else {
        const found = lookupPgpass(readRegularFile(file, SMALL_FILE_LIMIT).toString('utf8'), { host, port, database, user });
        if (found !== undefined) [password, passwordSource] = [found, `password file ${file}`];
      }
    } catch (error) {
      // No password file is the common case; a named one that cannot be read is worth saying.
      if (!(error instanceof FileRefusal)) throw error;
      if (env['PGPASSFILE'] !== undefined) warnings.push(`PGPASSFILE: ${error.message}`);
    }
  }
  if (password !== undefined) secrets.push(password);

  const sslmode = (spec.sslmode ?? url.params.get('sslmode') ?? env['PGSSLMODE'] ?? 'disable') as SslMode;
  if (!SSL_MODES.includes(sslmode)) {
    throw new ConnectionSpecError(name, 'url', `sslmode "${sslmode}" is not one of ${SSL_MODES.join(', ')}`);
  }
  const certPath = (key: 'sslrootcert' | 'sslcert' | 'sslkey') => {
    const value = spec[key] ?? url.params.get(key);
    if (value === undefined || (key === 'sslrootcert' && value === 'system')) return value;
    return path.resolve(options.baseDir, value);
  };
  const rootcert = certPath('sslrootcert');
  const cert = certPath('sslcert');
  const key = certPath('sslkey');
  const config: ClientConfig = { host, port, database, user };
  if (password !== undefined) config.password = password;
  if (sslmode !== 'disable') {
    // A CA bundle can be a few hundred KiB; a certificate or key far less.
    const CERT_LIMIT = 1024 * 1024;
    const readCert = (which: string, file: string) => readSecretFile(name, which, file, CERT_LIMIT).text;
    // libpq: require with a root certificate behaves like verify-ca.
    const verify = sslmode === 'verify-ca' || sslmode === 'verify-full' || (sslmode === 'require' && rootcert !== undefined);
    const ssl: NonNullable<Exclude<ClientConfig['ssl'], boolean>> = { rejectUnauthorized: verify };
    if (rootcert !== undefined && rootcert !== 'system') ssl.ca = readCert('sslrootcert', rootcert);
    if (cert !== undefined) ssl.cert = readCert('sslcert', cert);
    if (key !== undefined) {
      const keyText = readCert('sslkey', key);
      ssl.key = keyText;
      secrets.push(keyText.trim());
    }
    if (verify && sslmode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
    config.ssl = ssl;
  }
  const connectTimeout = url.params.get('connect_timeout');
  if (connectTimeout !== undefined && /^\d+$/.test(connectTimeout)) config.connectionTimeoutMillis = Number(connectTimeout) * 1000;

  const target = `${user}@${host}:${port}/${database}`;
  const commandEnv: Record<string, string> = { PGHOST: host, PGPORT: String(port), PGDATABASE: database, PGUSER: user };
  if (password !== undefined) commandEnv['PGPASSWORD'] = password;
  commandEnv['PGSSLMODE'] = sslmode;
  if (rootcert !== undefined) commandEnv['PGSSLROOTCERT'] = rootcert;
  if (cert !== undefined) commandEnv['PGSSLCERT'] = cert;
  if (key !== undefined) commandEnv['PGSSLKEY'] = key;
  return {
    kind: 'postgres',
    identity: { name, kind: 'postgres', target },
    clientConfig: config,
    tlsFallback: sslmode === 'allow' || sslmode === 'prefer',
    sslmode,
    passwordSource,
    env: commandEnv,
    secrets,
    warnings,
  };
}

function resolveOracle(name: string, spec: OracleConnectionSpec, options: ResolveOptions): ResolvedOracle {
  const warnings: string[] = [];
  const secrets: string[] = [];
  let password = spec.password;
  let passwordSource = spec.password !== undefined ? 'password' : 'none';
  if (password === undefined && spec.passwordFile !== undefined) {
    const file = path.resolve(options.baseDir, spec.passwordFile);
    const read = readPasswordFile(name, file);
    if (read.warning !== undefined) warnings.push(read.warning);
    [password, passwordSource] = [read.password, `passwordFile ${file}`];
    if (read.content !== read.password) secrets.push(read.content);
  }
  return {
    kind: 'oracle',
    identity: { name, kind: 'oracle', target: `${spec.user}@${spec.connectString}` },
    spec: { connectString: spec.connectString, user: spec.user, ...(password === undefined ? {} : { password }) },
    passwordSource,
    secrets: [...secrets, ...(password === undefined ? [] : [password])],
    warnings,
  };
}

function resolvePgBouncer(name: string, spec: PgBouncerConnectionSpec, options: ResolveOptions): ResolvedPgBouncer {
  // The same forms as a postgres connection, always on the admin console's database.
  let url = spec.url;
  if (url !== undefined && URL.canParse(url)) {
    const parsed = new URL(url);
    parsed.pathname = '/pgbouncer';
    url = parsed.toString();
  }
  const { clientConfig, identity, secrets, passwordSource, warnings } = resolvePostgres(
    name,
    { ...spec, kind: 'postgres', database: 'pgbouncer', ...(url !== undefined ? { url } : {}) },
    options,
  );
  return { kind: 'pgbouncer', identity: { ...identity, kind: 'pgbouncer' }, clientConfig, secrets, passwordSource, warnings };
}

const PEM_LIMIT = 1024 * 1024;

function readPemFile(name: string, key: string, file: string, baseDir: string): string {
  return readSecretFile(name, key, path.resolve(baseDir, file), PEM_LIMIT).text;
}

function resolvePatroni(name: string, spec: PatroniConnectionSpec, options: ResolveOptions): ResolvedPatroni {
  const baseDir = options.baseDir;
  const base = (url: string) => url.replace(/\/$/, '');
  const fromFile = spec.passwordFile !== undefined ? readPasswordFile(name, path.resolve(baseDir, spec.passwordFile)) : undefined;
  const password = spec.password ?? fromFile?.password;
  if (password !== undefined && spec.username === undefined) throw new UsageError(`connection "${name}": a password needs a username`);
  const authorization = spec.username === undefined ? undefined : `Basic ${Buffer.from(`${spec.username}:${password ?? ''}`).toString('base64')}`;
  const tls = {
    ...(spec.caFile !== undefined ? { ca: readPemFile(name, 'caFile', spec.caFile, baseDir) } : {}),
    ...(spec.certFile !== undefined ? { cert: readPemFile(name, 'certFile', spec.certFile, baseDir) } : {}),
    ...(spec.keyFile !== undefined ? { key: readPemFile(name, 'keyFile', spec.keyFile, baseDir) } : {}),
  };
  const urls = [...new Set([spec.url, ...(spec.members ?? [])].map(base))];
  return {
    kind: 'patroni',
    identity: { name, kind: 'patroni', target: `${spec.username === undefined ? '' : `${spec.username}@`}${base(spec.url)}` },
    urls,
    ...(authorization !== undefined ? { authorization } : {}),
    tls,
    // The key is a secret too, should any message ever quote it.
    secrets: [
      ...(password !== undefined ? [password] : []),
      ...(fromFile !== undefined && fromFile.content !== fromFile.password ? [fromFile.content] : []),
      ...(authorization !== undefined ? [authorization.slice(6)] : []),
      ...(tls.key !== undefined ? [tls.key] : []),
    ],
    passwordSource: spec.password !== undefined ? 'password' : fromFile !== undefined ? `passwordFile ${spec.passwordFile ?? ''}` : 'none',
    warnings: fromFile?.warning !== undefined ? [fromFile.warning] : [],
  };
}

export function resolveConnection(name: string, spec: ConnectionSpec, options: ResolveOptions): ResolvedConnection {
  switch (spec.kind) {
    case 'postgres':
      return resolvePostgres(name, spec, options);
    case 'oracle':
      return resolveOracle(name, spec, options);
    case 'pgbouncer':
      return resolvePgBouncer(name, spec, options);
    case 'patroni':
      return resolvePatroni(name, spec, options);
  }
}
