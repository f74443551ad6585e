/**
 * The one place that finds the system tools the tests, benches and demo use
 * beside the embedded PostgreSQL servers from npm: Debian's PostgreSQL 15
 * (pg_upgrade, psql, vacuumdb, pgbench and a server of their own major, which
 * the npm packages do not ship) and a Chromium for the report tests.
 *
 * Each tool is looked for in its environment override first, then on PATH,
 * then where Debian and Ubuntu install it. `scripts/prerequisites.ts` (run by
 * `npm test` before any test) installs what is missing or says how.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The major of the system PostgreSQL the tests use for pg_upgrade, psql, vacuumdb and pgbench. */
export const SYSTEM_PG_MAJOR = 15;

/** The binaries the tests and benches run from the system PostgreSQL's bin directory. */
const SYSTEM_PG_BINARIES = ['postgres', 'initdb', 'pg_ctl', 'pg_upgrade', 'psql', 'vacuumdb', 'pgbench'] as const;
export type SystemPgBinary = (typeof SYSTEM_PG_BINARIES)[number];

export interface SystemTool {
  /** What it is, as a person reads it. */
  readonly name: string;
  /** Why the tests need it. */
  readonly why: string;
  /** The Debian/Ubuntu package that provides it. */
  readonly debianPackage: string;
  /** The environment variable that points at it elsewhere, if one does. */
  readonly override?: string;
  /** Where it is, or undefined when it is not on this machine. */
  find(): string | undefined;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, command);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

const hasAll = (dir: string) => SYSTEM_PG_BINARIES.every((b) => executable(path.join(dir, b)));

export const systemPostgres: SystemTool = {
  name: `PostgreSQL ${SYSTEM_PG_MAJOR} server and client tools (${SYSTEM_PG_BINARIES.join(', ')})`,
  why: 'pg_upgrade --check cross-checks, psql and vacuumdb baselines; the npm servers ship only initdb, pg_ctl and postgres',
  debianPackage: `postgresql-${SYSTEM_PG_MAJOR}`,
  override: 'CUTOVER_PG_BINDIR',
  find() {
    const override = process.env['CUTOVER_PG_BINDIR'];
    if (override !== undefined && override !== '') return hasAll(override) ? override : undefined;
    return [`/usr/lib/postgresql/${SYSTEM_PG_MAJOR}/bin`].find(hasAll);
  },
};

export const chromium: SystemTool = {
  name: 'Chromium',
  why: 'the HTML report is rendered and inspected in a real headless browser',
  debianPackage: 'chromium',
  override: 'CUTOVER_CHROMIUM',
  find() {
    const override = process.env['CUTOVER_CHROMIUM'];
    if (override !== undefined && override !== '') return executable(override) ? override : undefined;
    return onPath('chromium') ?? onPath('chromium-browser') ?? ['/usr/bin/chromium'].find(executable);
  },
};

/** A tool found by its override, then on PATH, then at Debian's path. */
function packaged(options: { name: string; why: string; debianPackage: string; override?: string; command: string; debianPath: string }): SystemTool {
  return {
    name: options.name,
    why: options.why,
    debianPackage: options.debianPackage,
    ...(options.override !== undefined ? { override: options.override } : {}),
    find() {
      const override = options.override === undefined ? undefined : process.env[options.override];
      if (override !== undefined && override !== '') return executable(override) ? override : undefined;
      return onPath(options.command) ?? [options.debianPath].find(executable);
    },
  };
}

export const pgbouncer = packaged({
  name: 'PgBouncer',
  why: 'the pgbouncer step kind is tested against a real pooler under client load',
  debianPackage: 'pgbouncer',
  override: 'CUTOVER_PGBOUNCER',
  command: 'pgbouncer',
  debianPath: '/usr/sbin/pgbouncer',
});

export const openssl = packaged({
  name: 'OpenSSL',
  why: 'the TLS connection tests make their own CA, server and client certificates',
  debianPackage: 'openssl',
  command: 'openssl',
  debianPath: '/usr/bin/openssl',
});

export const patroni = packaged({
  name: 'Patroni',
  why: 'the patroni step kind is tested against a real Patroni cluster behind HAProxy under client load',
  debianPackage: 'patroni',
  override: 'CUTOVER_PATRONI',
  command: 'patroni',
  debianPath: '/usr/bin/patroni',
});

export const etcd = packaged({
  name: 'etcd',
  why: "the test Patroni cluster keeps its state in etcd (Patroni's etcd3 DCS)",
  debianPackage: 'etcd-server',
  override: 'CUTOVER_ETCD',
  command: 'etcd',
  debianPath: '/usr/bin/etcd',
});

export const haproxy = packaged({
  name: 'HAProxy',
  why: "the test Patroni cluster's clients reach the leader through HAProxy checking GET /primary",
  debianPackage: 'haproxy',
  override: 'CUTOVER_HAPROXY',
  command: 'haproxy',
  debianPath: '/usr/sbin/haproxy',
});

/**
 * The unprivileged OS user the test servers run as when the tests run as root
 * (PostgreSQL refuses to run as root); Debian's postgresql packages create it.
 */
export const postgresOsUser: SystemTool = {
  name: 'the "postgres" OS user (only needed when running as root)',
  why: 'PostgreSQL refuses to start as root, so the test servers run as this user',
  debianPackage: `postgresql-${SYSTEM_PG_MAJOR}`,
  find() {
    if (process.getuid?.() !== 0) return 'not needed';
    return existsSync('/etc/passwd') && /^postgres:/m.test(readFileSync('/etc/passwd', 'utf8')) ? 'postgres' : undefined;
  },
};

/** Every system tool `npm test` needs. */
export const TEST_TOOLS: readonly SystemTool[] = [systemPostgres, postgresOsUser, chromium, pgbouncer, openssl, patroni, etcd, haproxy];

export class MissingToolError extends Error {
  constructor(readonly tool: SystemTool) {
    const elsewhere = tool.override === undefined ? '' : ` or set ${tool.override}`;
    super(`${tool.name} not found: run \`npm test\` (it installs it on Debian/Ubuntu as root)${elsewhere}`);
    this.name = 'MissingToolError';
  }
}

function required(tool: SystemTool): string {
  const found = tool.find();
  if (found === undefined) throw new MissingToolError(tool);
  return found;
}

/** The system PostgreSQL's bin directory. */
export function systemPgBinDir(): string {
  return required(systemPostgres);
}

/** The path of one binary of the system PostgreSQL. */
export function systemPgTool(binary: SystemPgBinary): string {
  return path.join(systemPgBinDir(), binary);
}

export function chromiumPath(): string {
  return required(chromium);
}

export function pgbouncerPath(): string {
  return required(pgbouncer);
}

export function opensslPath(): string {
  return required(openssl);
}

export function patroniPath(): string {
  return required(patroni);
}

export function etcdPath(): string {
  return required(etcd);
}

export function haproxyPath(): string {
  return required(haproxy);
}
