/**
 * Resolves runbook connection specs into something a driver can use, and into
 * an identity that can be shown and journaled. Secrets stay inside
 * `ResolvedPostgres.clientConfig`; `identity` never holds one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ClientConfig } from 'pg';
import type { ConnectionKind, ConnectionSpec, OracleConnectionSpec, PatroniConnectionSpec, PgBouncerConnectionSpec, PostgresConnectionSpec } from '../runbook/schema.js';
import { UsageError } from '../errors.js';

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
  /** libpq environment for external commands (psql, pg_dump, pg_upgrade). */
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: readonly string[];
}

export interface ResolvedOracle {
  readonly kind: 'oracle';
  readonly identity: ConnectionIdentity;
  readonly spec: { readonly connectString: string; readonly user: string; readonly password?: string };
  readonly secrets: readonly string[];
}

/** PgBouncer's admin console: no startup options (it refuses unknown ones), simple query protocol only. */
export interface ResolvedPgBouncer {
  readonly kind: 'pgbouncer';
  readonly identity: ConnectionIdentity;
  readonly clientConfig: Readonly<ClientConfig>;
  readonly secrets: readonly string[];
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
  readonly secrets: readonly string[];
}

export type ResolvedConnection = ResolvedPostgres | ResolvedOracle | ResolvedPgBouncer | ResolvedPatroni;

function readPasswordFile(name: string, file: string, baseDir: string): string {
  const full = path.resolve(baseDir, file);
  try {
    return readFileSync(full, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`connection "${name}": cannot read passwordFile ${full} (${code})`);
  }
}

function resolvePostgres(name: string, spec: PostgresConnectionSpec, baseDir: string): ResolvedPostgres {
  const config: ClientConfig = {};
  const secrets: string[] = [];
  let host = spec.host;
  let port = spec.port;
  let database = spec.database;
  let user = spec.user;
  if (spec.url !== undefined) {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      // Never echo the URL: it may hold a password.
      throw new UsageError(`connection "${name}": url is not a valid postgres:// URL`);
    }
    if (url.password) secrets.push(decodeURIComponent(url.password));
    config.connectionString = spec.url;
    host ??= url.hostname || undefined;
    port ??= url.port ? Number(url.port) : undefined;
    database ??= decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
    user ??= decodeURIComponent(url.username) || undefined;
  }
  if (spec.host !== undefined) config.host = spec.host;
  if (spec.port !== undefined) config.port = spec.port;
  if (spec.database !== undefined) config.database = spec.database;
  if (spec.user !== undefined) config.user = spec.user;
  if (spec.sslmode !== undefined && spec.sslmode !== 'disable' && spec.sslmode !== 'prefer') {
    config.ssl = { rejectUnauthorized: spec.sslmode === 'verify-ca' || spec.sslmode === 'verify-full' };
  }
  const password =
    spec.password ?? (spec.passwordFile !== undefined ? readPasswordFile(name, spec.passwordFile, baseDir) : undefined);
  if (password !== undefined) {
    config.password = password;
    secrets.push(password);
  }
  const target = `${user ?? '(default user)'}@${host ?? 'localhost'}:${port ?? 5432}/${database ?? '(default database)'}`;
  const env: Record<string, string> = {};
  if (host !== undefined) env['PGHOST'] = host;
  if (port !== undefined) env['PGPORT'] = String(port);
  if (database !== undefined) env['PGDATABASE'] = database;
  if (user !== undefined) env['PGUSER'] = user;
  const urlPassword = spec.url !== undefined ? secrets[0] : undefined;
  if (password !== undefined || urlPassword !== undefined) env['PGPASSWORD'] = password ?? urlPassword ?? '';
  if (spec.sslmode !== undefined) env['PGSSLMODE'] = spec.sslmode;
  return { kind: 'postgres', identity: { name, kind: 'postgres', target }, clientConfig: config, env, secrets };
}

function resolveOracle(name: string, spec: OracleConnectionSpec, baseDir: string): ResolvedOracle {
  const password =
    spec.password ?? (spec.passwordFile !== undefined ? readPasswordFile(name, spec.passwordFile, baseDir) : undefined);
  const resolved: ResolvedOracle['spec'] = {
    connectString: spec.connectString,
    user: spec.user,
    ...(password === undefined ? {} : { password }),
  };
  return {
    kind: 'oracle',
    identity: { name, kind: 'oracle', target: `${spec.user}@${spec.connectString}` },
    spec: resolved,
    secrets: password === undefined ? [] : [password],
  };
}

function resolvePgBouncer(name: string, spec: PgBouncerConnectionSpec, baseDir: string): ResolvedPgBouncer {
  // The same forms as a postgres connection, always on the admin console's database.
  let url = spec.url;
  if (url !== undefined && URL.canParse(url)) {
    const parsed = new URL(url);
    parsed.pathname = '/pgbouncer';
    url = parsed.toString();
  }
  const { clientConfig, identity, secrets } = resolvePostgres(
    name,
    { ...spec, kind: 'postgres', database: 'pgbouncer', ...(url !== undefined ? { url } : {}) },
    baseDir,
  );
  return { kind: 'pgbouncer', identity: { ...identity, kind: 'pgbouncer' }, clientConfig, secrets };
}

function readPemFile(name: string, key: string, file: string, baseDir: string): string {
  const full = path.resolve(baseDir, file);
  try {
    return readFileSync(full, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`connection "${name}": cannot read ${key} ${full} (${code})`);
  }
}

function resolvePatroni(name: string, spec: PatroniConnectionSpec, baseDir: string): ResolvedPatroni {
  const base = (url: string) => url.replace(/\/$/, '');
  const password =
    spec.password ?? (spec.passwordFile !== undefined ? readPasswordFile(name, spec.passwordFile, baseDir) : undefined);
  if (password !== undefined && spec.username === undefined) throw new UsageError(`connection "${name}": a password needs a username`);
  const authorization =
    spec.username === undefined ? undefined : `Basic ${Buffer.from(`${spec.username}:${password ?? ''}`).toString('base64')}`;
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
    secrets: [...(password !== undefined ? [password] : []), ...(authorization !== undefined ? [authorization.slice(6)] : []), ...(tls.key !== undefined ? [tls.key] : [])],
  };
}

export function resolveConnection(name: string, spec: ConnectionSpec, baseDir: string): ResolvedConnection {
  switch (spec.kind) {
    case 'postgres':
      return resolvePostgres(name, spec, baseDir);
    case 'oracle':
      return resolveOracle(name, spec, baseDir);
    case 'pgbouncer':
      return resolvePgBouncer(name, spec, baseDir);
    case 'patroni':
      return resolvePatroni(name, spec, baseDir);
  }
}
