/**
 * What a runbook may say about a connection: one strict object per kind of
 * server (PostgreSQL, Oracle, PgBouncer's admin console, a Patroni cluster).
 * It lives with the code that opens connections; the runbook schema uses it.
 */
import { z } from 'zod';

const secretSource = {
  password: z
    .string()
    .min(4, 'a password shorter than 4 characters is refused: it could not be redacted from output without destroying it')
    .optional()
    .describe('at least 4 characters; write ${secret:NAME} or use passwordFile; never logged. Without any: $PGPASSWORD, then $PGPASSFILE or ~/.pgpass'),
  passwordFile: z
    .string()
    .optional()
    .describe('a regular file (at most 64 KiB, mode 600) whose first line is the password, relative to the runbook; never logged'),
};

export const postgresConnectionSchema = z
  .strictObject({
    kind: z.literal('postgres'),
    url: z.string().optional().describe('postgres://user[:password]@host:port/database?sslmode=...&sslrootcert=... (percent-encode special characters)'),
    host: z.string().optional().describe("overrides the URL's; default $PGHOST or localhost"),
    port: z.number().int().min(1).max(65535).optional().describe("overrides the URL's; default $PGPORT or 5432"),
    database: z.string().optional().describe("overrides the URL's; default $PGDATABASE or the user name"),
    user: z.string().optional().describe("overrides the URL's; default $PGUSER or the OS user"),
    sslmode: z
      .enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'])
      .optional()
      .describe('as libpq; default disable (or $PGSSLMODE); allow/prefer try TLS first'),
    sslrootcert: z.string().optional().describe('CA certificate file (PEM) to verify the server with, or "system"'),
    sslcert: z.string().optional().describe('client certificate file (PEM)'),
    sslkey: z.string().optional().describe('client private key file (PEM); never logged'),
    startedByRunbook: z
      .boolean()
      .optional()
      .describe(
        'the server is started by a step of this runbook (the new cluster of a pg_upgrade): it is locked when the first step that uses it starts, and not opened by check or before the run',
      ),
    ...secretSource,
  })
  .refine((c) => c.password === undefined || c.passwordFile === undefined, {
    message: 'give either password or passwordFile, not both',
    path: ['passwordFile'],
  });

export const oracleConnectionSchema = z
  .strictObject({
    kind: z.literal('oracle'),
    connectString: z.string().describe('host:port/service_name or an Easy Connect string'),
    user: z.string(),
    ...secretSource,
  })
  .refine((c) => c.password === undefined || c.passwordFile === undefined, {
    message: 'give either password or passwordFile, not both',
    path: ['passwordFile'],
  });

/** PgBouncer's admin console (the `pgbouncer` database), for the `pgbouncer` step kind. */
export const pgbouncerConnectionSchema = z
  .strictObject({
    kind: z.literal('pgbouncer'),
    url: z.string().optional().describe('postgres://admin@host:6432/pgbouncer: a user in admin_users'),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().optional(),
    ...secretSource,
  })
  .refine((c) => c.password === undefined || c.passwordFile === undefined, {
    message: 'give either password or passwordFile, not both',
    path: ['passwordFile'],
  });

const httpUrl = z.string().regex(/^https?:\/\/[^\s/]+\/?$/, "expected http(s)://host:port of a member's REST API, without a path");

/** Patroni's REST API (one member's, others optional), for the `patroni` step kind. */
export const patroniConnectionSchema = z
  .strictObject({
    kind: z.literal('patroni'),
    url: httpUrl.describe("http(s)://host:8008: one member's REST API; the others are found from GET /cluster"),
    members: z.array(httpUrl).optional().describe("further members' REST APIs, asked when `url` does not answer"),
    username: z.string().optional().describe('basic auth (restapi.authentication), used for POST /switchover'),
    ...secretSource,
    caFile: z.string().optional().describe('CA certificate to verify an https REST API, relative to the runbook'),
    certFile: z.string().optional().describe('client certificate (restapi.verify_client), relative to the runbook'),
    keyFile: z.string().optional().describe("the client certificate's key, relative to the runbook"),
  })
  .refine((c) => c.password === undefined || c.passwordFile === undefined, {
    message: 'give either password or passwordFile, not both',
    path: ['passwordFile'],
  })
  .refine((c) => (c.certFile === undefined) === (c.keyFile === undefined), {
    message: 'a client certificate needs both certFile and keyFile',
    path: ['keyFile'],
  });

export const connectionSchema = z.discriminatedUnion('kind', [
  postgresConnectionSchema,
  oracleConnectionSchema,
  pgbouncerConnectionSchema,
  patroniConnectionSchema,
]);

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export type PostgresConnectionSpec = z.output<typeof postgresConnectionSchema>;
export type OracleConnectionSpec = z.output<typeof oracleConnectionSchema>;
export type PgBouncerConnectionSpec = z.output<typeof pgbouncerConnectionSchema>;
export type PatroniConnectionSpec = z.output<typeof patroniConnectionSchema>;
export type ConnectionSpec = z.output<typeof connectionSchema>;
export type ConnectionKind = ConnectionSpec['kind'];
