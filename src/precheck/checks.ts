/**
 * The checks `pg_upgrade --check` makes (src/bin/pg_upgrade/check.c, for old
 * 12-18 and new 13-18), made online, read-only, over normal connections to
 * the live old cluster, plus what pg_upgrade is blind to. Every finding has
 * an id, a severity, the objects it is about, and what to do.
 */
import { quoteLiteral } from '../db/quote.js';
import type { Queryable } from '../db/session.js';
import { inParallel } from '../parallel.js';

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  readonly id: string;
  readonly severity: Severity;
  /** The database it was found in; absent for cluster-wide findings. */
  readonly database?: string;
  readonly objects: readonly string[];
  readonly message: string;
  readonly remediation: string;
}

const finding = (f: Finding): Finding => f;

/** Major version from server_version_num (170004 -> 17). */
export const major = (versionNum: number) => Math.floor(versionNum / 10000);

// ------------------------------------------------------------ cluster-wide

export interface ClusterFacts {
  readonly versionNum: number;
  readonly databases: readonly { name: string; allowConn: boolean; invalid: boolean }[];
  readonly installUser: string;
  readonly currentUser: string;
}

export async function clusterFacts(db: Queryable): Promise<ClusterFacts> {
  const { rows } = await db.query<{ v: number; install: string; me: string }>(
    `SELECT current_setting('server_version_num')::int AS v, (SELECT rolname FROM pg_roles WHERE oid = 10) AS install, current_user AS me`,
  );
  // datconnlimit = -2 marks a database left invalid by an interrupted DROP DATABASE (15+).
  const { rows: dbs } = await db.query<{ name: string; allow: boolean; invalid: boolean }>(
    'SELECT datname AS name, datallowconn AS allow, datconnlimit = -2 AS invalid FROM pg_database ORDER BY datname',
  );
  const row = rows[0];
  return {
    versionNum: row?.v ?? 0,
    databases: dbs.map((d) => ({ name: d.name, allowConn: d.allow, invalid: d.invalid })),
    installUser: row?.install ?? '',
    currentUser: row?.me ?? '',
  };
}

export function databaseFindings(facts: ClusterFacts): Finding[] {
  const out: Finding[] = [];
  const noConn = facts.databases.filter((d) => d.name !== 'template0' && !d.allowConn).map((d) => d.name);
  if (noConn.length > 0) {
    out.push(
      finding({
        id: 'database-disallows-connections',
        severity: 'error',
        objects: noConn,
        message: 'databases other than template0 must allow connections: pg_upgrade connects to every one',
        remediation: 'ALTER DATABASE ... WITH ALLOW_CONNECTIONS true (or drop the database) before the upgrade.',
      }),
    );
  }
  if (facts.databases.some((d) => d.name === 'template0' && d.allowConn)) {
    out.push(
      finding({
        id: 'template0-allows-connections',
        severity: 'error',
        objects: ['template0'],
        message: 'template0 must not allow connections',
        remediation: 'ALTER DATABASE template0 WITH ALLOW_CONNECTIONS false.',
      }),
    );
  }
  const invalid = facts.databases.filter((d) => d.invalid).map((d) => d.name);
  if (invalid.length > 0) {
    out.push(
      finding({
        id: 'invalid-database',
        severity: 'error',
        objects: invalid,
        message: 'databases left invalid by an interrupted DROP DATABASE',
        remediation: 'DROP DATABASE them; they cannot be connected to or upgraded.',
      }),
    );
  }
  if (facts.currentUser !== facts.installUser) {
    out.push(
      finding({
        id: 'not-install-user',
        severity: 'warning',
        objects: [facts.currentUser],
        message: `the checks ran as ${facts.currentUser}; pg_upgrade must run as the install (bootstrap) superuser ${facts.installUser}`,
        remediation: `Run pg_upgrade with -U ${facts.installUser}; some checks here may not see objects ${facts.currentUser} cannot read.`,
      }),
    );
  }
  return out;
}

export async function preparedTransactions(db: Queryable): Promise<Finding[]> {
  const { rows } = await db.query<{ gid: string; database: string }>('SELECT gid, database FROM pg_prepared_xacts ORDER BY gid');
  return rows.length === 0
    ? []
    : [
        finding({
          id: 'prepared-transactions',
          severity: 'error',
          objects: rows.map((r) => `${r.database}: ${r.gid}`),
          message: 'prepared transactions exist; pg_upgrade refuses a cluster that has any',
          remediation: 'COMMIT PREPARED or ROLLBACK PREPARED each one (find their owner first).',
        }),
      ];
}

export async function longTransactions(db: Queryable): Promise<Finding[]> {
  const { rows } = await db.query<{ pid: number; datname: string | null; age: string }>(
    `SELECT pid, datname, (now() - xact_start)::text AS age FROM pg_stat_activity
      WHERE xact_start < now() - interval '5 minutes' AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY xact_start`,
  );
  return rows.length === 0
    ? []
    : [
        finding({
          id: 'long-running-transactions',
          severity: 'warning',
          objects: rows.map((r) => `pid ${r.pid} (${r.datname ?? '?'}, ${r.age})`),
          message: 'transactions open for more than 5 minutes: stopping the cluster for the upgrade will wait for or kill them',
          remediation: 'Find out what they are and end them before the window (pg_terminate_backend), or plan for it.',
        }),
      ];
}

// ------------------------------------------------------------ per database

/**
 * Types pg_upgrade cannot carry, by the old versions it checks them for: the
 * on-disk format or the OIDs they store change between majors.
 */
const UNSUPPORTED_TYPES: readonly { id: string; base: string; oldMax: number; newMin: number; why: string; fix: string }[] = [
  {
    id: 'reg-types',
    base: `n.nspname = 'pg_catalog' AND t.typname IN ('regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator', 'regproc', 'regprocedure')`,
    oldMax: 99,
    newMin: 0,
    why: 'reg* types store OIDs, which pg_upgrade does not preserve (only regclass, regrole and regtype are safe)',
    fix: 'Change those columns to text (ALTER TABLE ... ALTER COLUMN ... TYPE text) and back after the upgrade, or drop them.',
  },
  {
    id: 'aclitem-type',
    base: `n.nspname = 'pg_catalog' AND t.typname = 'aclitem'`,
    oldMax: 15,
    newMin: 16,
    why: 'the aclitem storage format changed in PostgreSQL 16',
    fix: 'Change those columns to text before the upgrade.',
  },
  {
    id: 'removed-types',
    base: `n.nspname = 'pg_catalog' AND t.typname IN ('abstime', 'reltime', 'tinterval')`,
    oldMax: 11,
    newMin: 12,
    why: 'these types were removed in PostgreSQL 12',
    fix: 'Change those columns to timestamptz or interval before the upgrade.',
  },
  {
    id: 'sql-identifier-type',
    base: `n.nspname = 'information_schema' AND t.typname = 'sql_identifier'`,
    oldMax: 11,
    newMin: 12,
    why: 'the sql_identifier storage format changed in PostgreSQL 12',
    fix: 'Change those columns to name or text before the upgrade.',
  },
];

/**
 * User columns whose type is one the `base` condition selects (over pg_type
 * t and pg_namespace n), or an array, domain or composite over one
 * (recursively), as pg_upgrade's data type check does.
 */
// The recursive step is three equality joins (arrays, domains, composites
// holding a column of the type), not one join on an OR: with an OR the planner
// can only pair every type with every type found so far, seconds on an empty
// cluster and minutes with 10,000 tables (two pg_type rows each). Which
// composite holds which type is read once (every table's row type is a
// composite), not once per step of the recursion.
const typeUsageSql = (base: string) => `WITH RECURSIVE holds AS MATERIALIZED (
    SELECT a.atttypid AS held, t.oid AS holder FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
     WHERE t.typtype = 'c' AND NOT a.attisdropped AND a.atttypid <> t.oid),
  steps AS MATERIALIZED (
    SELECT t.typelem AS held, t.oid AS holder FROM pg_type t WHERE t.typelem <> 0 AND t.typlen = -1
    UNION ALL
    SELECT t.typbasetype, t.oid FROM pg_type t WHERE t.typbasetype <> 0
    UNION ALL
    SELECT held, holder FROM holds),
  base AS (
    SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE ${base}
    UNION
    SELECT s.holder FROM steps s JOIN base ON s.held = base.oid)
  SELECT DISTINCT format('%I.%I.%I', n.nspname, c.relname, a.attname) AS object
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE a.atttypid IN (SELECT oid FROM base) AND NOT a.attisdropped AND a.attnum > 0
     AND c.relkind IN ('r', 'm', 'i') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
   ORDER BY 1`;

/**
 * User columns of composite types made by initdb or belonging to
 * information_schema (which may have been dropped and reloaded), also inside
 * arrays, domains and composites: their OIDs differ in the new cluster.
 */
const SYSTEM_COMPOSITE_SQL = typeUsageSql(`t.typtype = 'c' AND (t.oid < 16384 OR n.nspname = 'information_schema')`);

export interface DatabaseContext {
  readonly database: string;
  readonly oldMajor: number;
  readonly targetMajor: number;
  /** Whether the runbook replicates logically (publications or logical slots exist). */
  readonly logical: boolean;
  /** The two clusters pass int8 differently (see {@link int8PassByValue}). */
  readonly int8PassingDiffers?: boolean | undefined;
  /** The Unicode version changes with the upgrade (see {@link unicodeChange}); `to` is unknown without the new cluster for a release not known here. */
  readonly unicodeChange?: { readonly from: string; readonly to: string | undefined } | undefined;
}

/**
 * The functions PostgreSQL 14 moved from anyarray/anyelement to
 * anycompatiblearray/anycompatible. A user aggregate or operator built on
 * their old signatures cannot be restored into 14 or later.
 */
const OLD_POLYMORPHICS = [
  'array_append(anyarray,anyelement)',
  'array_cat(anyarray,anyarray)',
  'array_prepend(anyelement,anyarray)',
  'array_remove(anyarray,anyelement)',
  'array_replace(anyarray,anyelement,anyelement)',
  'array_position(anyarray,anyelement)',
  'array_position(anyarray,anyelement,integer)',
  'array_positions(anyarray,anyelement)',
  'width_bucket(anyelement,anyarray)',
];

/** User aggregates (transition or final function) and operators on those functions, in one query. */
export const INCOMPATIBLE_POLYMORPHICS_SQL = `WITH old AS (SELECT to_regprocedure(s)::oid AS fn FROM unnest(ARRAY[${OLD_POLYMORPHICS.map(quoteLiteral).join(', ')}]) s),
       poly AS (SELECT oid FROM pg_type WHERE oid IN ('anyarray'::regtype, 'anyelement'::regtype))
  SELECT format('aggregate %I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS object
    FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE p.oid >= 16384 AND a.aggtranstype IN (SELECT oid FROM poly)
     AND (a.aggtransfn::oid IN (SELECT fn FROM old) OR a.aggfinalfn::oid IN (SELECT fn FROM old))
  UNION ALL
  SELECT format('operator %I.%s(%s, %s)', n.nspname, o.oprname, o.oprleft::regtype, o.oprright::regtype)
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
   WHERE o.oid >= 16384 AND o.oprleft IN (SELECT oid FROM poly) AND o.oprcode::oid IN (SELECT fn FROM old)
  ORDER BY 1`;

/** Functions of contrib/isn: their C code takes int8 the way the build it was installed on passes it. */
export const ISN_FUNCTIONS_SQL = `SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS object
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.probin = '$libdir/isn' ORDER BY 1`;

/**
 * Columns of inheritance children that lack a NOT NULL their parent's column
 * has. Before 18 a child could lose it (ALTER TABLE ONLY child ... DROP NOT
 * NULL); restoring the schema into a new cluster then fails.
 */
export const NOT_NULL_INHERITANCE_SQL = `SELECT DISTINCT format('%I.%I.%I (parent %I.%I)', cn.nspname, c.relname, ca.attname, pn.nspname, p.relname) AS object
    FROM pg_inherits i
    JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attnum > 0 AND NOT pa.attisdropped AND pa.attnotnull
    JOIN pg_attribute ca ON ca.attrelid = i.inhrelid AND ca.attname = pa.attname AND NOT ca.attisdropped AND NOT ca.attnotnull
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
    JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
   ORDER BY 1`;

/** Indexes (including those behind exclusion constraints) using btree_gist's inet/cidr operator classes. */
export const GIST_INET_OPS_SQL = `SELECT format('%I.%I (on %I.%I, %s)', n.nspname, ic.relname, tn.nspname, t.relname, string_agg(DISTINCT o.opcname, ', ')) AS object
    FROM pg_index x
    JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
    JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
    CROSS JOIN LATERAL unnest(x.indclass::oid[]) AS k(opclass)
    JOIN pg_opclass o ON o.oid = k.opclass JOIN pg_am a ON a.oid = o.opcmethod
   WHERE a.amname = 'gist' AND o.opcname IN ('gist_inet_ops', 'gist_cidr_ops')
   GROUP BY n.nspname, ic.relname, tn.nspname, t.relname ORDER BY 1`;

/**
 * Relations whose stored contents depend on Unicode character semantics:
 * indexes (expressions, predicates), partitioned tables (key expressions),
 * check constraints and materialized views whose stored expression calls
 * normalize(), is_normalized(), unicode_assigned() or unicode_version(), or
 * calls lower(), upper(), initcap() or a regular-expression or ILIKE
 * operator under the builtin provider's C.UTF-8 or PG_UNICODE_FAST collation
 * (named, or the database default). Built-in functions are pinned, so
 * pg_depend does not record them: the expressions' stored node trees are
 * searched instead, one pattern per function (and collation). UTF8
 * databases only; 17+ catalogs.
 */
export const UNICODE_DEPENDENT_SQL = `WITH builtin_collations AS (
    SELECT oid FROM pg_collation WHERE collprovider = 'b' AND colllocale IN ('C.UTF-8', 'PG_UNICODE_FAST')
    UNION
    SELECT 'pg_catalog.default'::regcollation::oid FROM pg_database
     WHERE datname = current_database() AND datlocprovider = 'b' AND datlocale IN ('C.UTF-8', 'PG_UNICODE_FAST')),
  collation_functions AS (
    SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
       AND proname IN ('lower', 'upper', 'initcap') AND proargtypes[0] = 'text'::regtype
    UNION
    SELECT oprcode::oid FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace
       AND oprname IN ('~', '~*', '!~', '!~*', '~~*', '!~~*') AND oprright = 'text'::regtype),
  patterns(re) AS (
    SELECT '[{]FUNCEXPR :funcid ' || oid || '[ }]' FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
       AND proname IN ('normalize', 'is_normalized', 'unicode_assigned', 'unicode_version')
    UNION ALL
    SELECT '[{]FUNCEXPR :funcid ' || f.oid || ' (:\\w+ [^ ]+ )*:inputcollid ' || c.oid || '[ }]' FROM collation_functions f, builtin_collations c
    UNION ALL
    SELECT '[{]OPEXPR :opno ' || o.oid || ' (:\\w+ [^ ]+ )*:inputcollid ' || c.oid || '[ }]'
      FROM pg_operator o, builtin_collations c
     WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprname IN ('~', '~*', '!~', '!~*', '~~*', '!~~*') AND o.oprright = 'text'::regtype),
  rels(rel) AS (
    SELECT conrelid FROM pg_constraint, patterns WHERE conbin IS NOT NULL AND conbin::text ~ re
    UNION
    SELECT indexrelid FROM pg_index, patterns WHERE indexprs::text ~ re OR indpred::text ~ re
    UNION
    SELECT partrelid FROM pg_partitioned_table, patterns WHERE partexprs::text ~ re
    UNION
    SELECT r.ev_class FROM pg_rewrite r JOIN pg_class m ON m.oid = r.ev_class AND m.relkind = 'm', patterns WHERE r.ev_action::text ~ re)
  SELECT format('%I.%I', n.nspname, c.relname) AS object
    FROM rels JOIN pg_class c ON c.oid = rels.rel JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE (SELECT encoding FROM pg_database WHERE datname = current_database()) = pg_char_to_encoding('UTF8')
   ORDER BY 1`;

interface DatabaseCheck {
  readonly applies: (c: DatabaseContext) => boolean;
  /** One query whose rows are the objects found, as `object`. */
  readonly sql: string;
  readonly finding: (c: DatabaseContext) => Omit<Finding, 'database' | 'objects'>;
}

/**
 * Every check made inside each database, by the versions it applies to. They
 * run as one batch of statements: one round trip per database, whatever
 * their number.
 */
export const DATABASE_CHECKS: readonly DatabaseCheck[] = [
  ...UNSUPPORTED_TYPES.map((t) => ({
    applies: (c: DatabaseContext) => c.oldMajor <= t.oldMax && c.targetMajor >= t.newMin,
    sql: typeUsageSql(t.base),
    finding: () => ({ id: t.id, severity: 'error' as const, message: t.why, remediation: t.fix }),
  })),
  {
    applies: () => true,
    sql: SYSTEM_COMPOSITE_SQL,
    finding: () => ({
      id: 'system-composite-types',
      severity: 'error',
      message: 'user columns of system composite types: their OIDs are not preserved',
      remediation: 'Change those columns to a user-defined type or text before the upgrade.',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 13,
    sql: `SELECT format('%I.%s(%s, NONE)', n.nspname, o.oprname, format_type(o.oprleft, NULL)) AS object
            FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
           WHERE o.oprright = 0 AND o.oid >= 16384 ORDER BY 1`,
    finding: () => ({
      id: 'postfix-operators',
      severity: 'error',
      message: 'postfix operators were removed in PostgreSQL 14',
      remediation: 'Drop them (and what uses them) before the upgrade.',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 13,
    sql: `SELECT format('%I.%I', n.nspname, c.conname) AS object FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.oid >= 16384 ORDER BY 1`,
    finding: () => ({
      id: 'user-encoding-conversions',
      severity: 'error',
      message: 'user-defined encoding conversions changed signature in PostgreSQL 14',
      remediation: 'Drop them before the upgrade and recreate them after.',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 13,
    sql: INCOMPATIBLE_POLYMORPHICS_SQL,
    finding: () => ({
      id: 'incompatible-polymorphics',
      severity: 'error',
      message:
        'user aggregates or operators built on array functions whose anyarray/anyelement signatures became anycompatiblearray/anycompatible in PostgreSQL 14',
      remediation: 'Drop them before the upgrade and create them again after it, declared with anycompatible and anycompatiblearray.',
    }),
  },
  {
    applies: (c) => c.int8PassingDiffers === true,
    sql: ISN_FUNCTIONS_SQL,
    finding: () => ({
      id: 'isn-int8-pass-by-value',
      severity: 'error',
      message: 'contrib/isn functions rely on bigint, which the old and new clusters pass differently (a 32-bit and a 64-bit build)',
      remediation: 'Dump the databases that use contrib/isn, drop the extension there, upgrade, then restore them.',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 18,
    sql: NOT_NULL_INHERITANCE_SQL,
    finding: () => ({
      id: 'not-null-inheritance',
      severity: 'error',
      message: 'inheritance children lack a NOT NULL their parent column has; restoring the schema into the new cluster fails',
      remediation: 'ALTER TABLE child ALTER COLUMN ... SET NOT NULL (after removing NULLs), or detach the child (ALTER TABLE child NO INHERIT parent).',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 18 && c.targetMajor >= 19,
    sql: GIST_INET_OPS_SQL,
    finding: () => ({
      id: 'gist-inet-ops',
      severity: 'error',
      message:
        "indexes use btree_gist's gist_inet_ops or gist_cidr_ops, which are no longer the default for inet and cidr from PostgreSQL 19: the restored index definitions would not match the index files",
      remediation:
        'Replace them before the upgrade with indexes on the core operator class: CREATE INDEX ... USING gist (col inet_ops), then drop the old ones.',
    }),
  },
  {
    applies: (c) => c.oldMajor >= 17 && c.unicodeChange !== undefined,
    sql: UNICODE_DEPENDENT_SQL,
    finding: (c) => ({
      id: 'unicode-dependent-objects',
      severity: 'warning',
      message: `relations whose indexes, partition keys, check constraints or materialized view contents depend on Unicode character semantics, and the Unicode version changes from ${c.unicodeChange?.from ?? '?'} to ${c.unicodeChange?.to ?? "the new release's (unknown here; give newCluster to compare)"}`,
      remediation:
        'After the upgrade, REINDEX those indexes, REFRESH those materialized views, and re-check those constraints and partition keys (few values change between Unicode versions).',
    }),
  },
  {
    applies: (c) => c.oldMajor <= 11,
    sql: `SELECT format('%I.%I', n.nspname, c.relname) AS object FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relhasoids AND n.nspname NOT IN ('pg_catalog') ORDER BY 1`,
    finding: () => ({
      id: 'tables-with-oids',
      severity: 'error',
      message: 'WITH OIDS tables cannot be upgraded past 11',
      remediation: 'ALTER TABLE ... SET WITHOUT OIDS before the upgrade.',
    }),
  },
  // Beyond pg_upgrade: what goes wrong after it, or around it.
  {
    applies: () => true,
    sql: `SELECT format('%I.%I', n.nspname, c.relname) AS object FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') ORDER BY 1`,
    finding: () => ({
      id: 'unlogged-tables',
      severity: 'warning',
      message: 'unlogged tables are carried by pg_upgrade but never reach standbys',
      remediation: 'Make them logged if standbys need them, or accept they are empty after a failover.',
    }),
  },
  {
    applies: () => true,
    sql: `SELECT format('%I.%I', n.nspname, c.relname) AS object FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid ORDER BY 1`,
    finding: () => ({
      id: 'invalid-indexes',
      severity: 'warning',
      message: 'invalid indexes (a failed CREATE INDEX CONCURRENTLY) are carried over invalid',
      remediation: 'REINDEX or drop and recreate them.',
    }),
  },
  {
    applies: (c) => c.logical,
    sql: `SELECT format('%I.%I', n.nspname, c.relname) AS object FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relreplident = 'd'
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cutover') AND n.nspname !~ '^pg_'
             AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) ORDER BY 1`,
    finding: () => ({
      id: 'tables-without-primary-key',
      severity: 'warning',
      message: 'logical replication cannot replicate UPDATE or DELETE of tables without a primary key or replica identity',
      remediation: 'Add a primary key, or set REPLICA IDENTITY FULL (slow) or USING INDEX.',
    }),
  },
];

/**
 * Each check its own statement, taken in turn by `sessions` sessions on the
 * database (`open(i)` gives the i-th): the two type-usage walks take most of
 * the time with many tables and run side by side. Put into one statement (one
 * round trip) they ran at about twice their separate time with 10,000 tables.
 */
export async function databaseChecks(open: (worker: number) => Promise<Queryable>, c: DatabaseContext, sessions = 1): Promise<Finding[]> {
  const checks = DATABASE_CHECKS.filter((k) => k.applies(c));
  const opened = new Map<number, Promise<Queryable>>();
  const session = (worker: number) => {
    let db = opened.get(worker);
    if (db === undefined) {
      db = open(worker).then(async (s) => {
        // The type-usage walks' recursive CTEs are estimated at hundreds of thousands of rows, past jit_above_cost:
        // compiling them took longer than running them (10,000 tables: 1.0 s of checks with JIT, 0.56 s without).
        // For this session only, and only on 11+ (where the setting exists); the phase's end resets it (DISCARD ALL).
        if (c.oldMajor >= 11) await s.query("SELECT set_config('jit', 'off', false)");
        return s;
      });
      opened.set(worker, db);
    }
    return db;
  };
  const results = await inParallel(checks, sessions, async (k, worker) => {
    const db = await session(worker);
    // AS MATERIALIZED is 12+; before 12 every CTE is materialized anyway.
    return (await db.query<{ object: string }>(c.oldMajor >= 12 ? k.sql : k.sql.replaceAll(' AS MATERIALIZED (', ' AS ('))).rows;
  });
  return checks.flatMap((k, i) => {
    const found = (results[i] ?? []).map((r) => r.object);
    return found.length === 0 ? [] : [{ ...k.finding(c), database: c.database, objects: found }];
  });
}

/** Extensions and the shared libraries of C functions in one database. */
export async function extensionsAndLibraries(db: Queryable): Promise<{ extensions: { name: string; version: string }[]; libraries: string[] }> {
  const { rows: extensions } = await db.query<{ name: string; version: string }>(
    'SELECT extname AS name, extversion AS version FROM pg_extension WHERE extname <> $1 ORDER BY 1',
    ['plpgsql'],
  );
  const { rows: libraries } = await db.query<{ lib: string }>(
    `SELECT DISTINCT p.probin AS lib FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE l.lanname = 'c' AND p.probin IS NOT NULL AND p.oid >= 16384 ORDER BY 1`,
  );
  return { extensions, libraries: libraries.map((l) => l.lib) };
}

export interface Slot {
  readonly name: string;
  readonly database: string | null;
  readonly invalid: boolean;
  readonly behind: number | null;
}

export async function logicalSlots(db: Queryable): Promise<Slot[]> {
  const { rows } = await db.query<{ slot: Record<string, unknown>; behind: string | null }>(
    `SELECT to_jsonb(s) AS slot, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.confirmed_flush_lsn)::text AS behind
       FROM pg_replication_slots s WHERE s.slot_type = 'logical' AND NOT s.temporary ORDER BY s.slot_name`,
  );
  return rows.map(({ slot, behind }) => ({
    name: String(slot['slot_name']),
    database: typeof slot['database'] === 'string' ? slot['database'] : null,
    invalid: slot['wal_status'] === 'lost' || (typeof slot['invalidation_reason'] === 'string' && slot['invalidation_reason'] !== ''),
    behind: behind === null ? null : Number(behind),
  }));
}

export function slotFindings(slots: readonly Slot[], oldMajor: number, writesFrozen: boolean): Finding[] {
  if (slots.length === 0) return [];
  if (oldMajor < 17) {
    return [
      {
        id: 'logical-slots-not-carried',
        severity: 'warning',
        objects: slots.map((s) => s.name),
        message: `pg_upgrade carries logical slots only from 17 on; from ${oldMajor} they are lost`,
        remediation: 'Record them (plugin, options) and recreate them on the new cluster after the upgrade; consumers must resynchronise.',
      },
    ];
  }
  const out: Finding[] = [];
  const invalid = slots.filter((s) => s.invalid).map((s) => s.name);
  if (invalid.length > 0) {
    out.push({
      id: 'invalid-logical-slots',
      severity: 'error',
      objects: invalid,
      message: 'invalidated logical slots make pg_upgrade fail',
      remediation: 'Drop them (pg_drop_replication_slot) and recreate after the upgrade.',
    });
  }
  const behind = slots.filter((s) => !s.invalid && (s.behind === null || s.behind > 0)).map((s) => `${s.name} (${s.behind ?? '?'} bytes behind)`);
  if (behind.length > 0) {
    out.push({
      id: 'logical-slots-not-caught-up',
      severity: writesFrozen ? 'error' : 'warning',
      objects: behind,
      message: 'pg_upgrade carries only logical slots that have consumed all WAL up to the shutdown',
      remediation: 'Freeze writes and let every consumer catch up (a replication-caught-up step) before the upgrade.',
    });
  }
  return out;
}

export async function subscriptionStates(db: Queryable, database: string): Promise<Finding[]> {
  const { rows } = await db.query<{ object: string }>(
    `SELECT format('%I: %I.%I (%s)', s.subname, n.nspname, c.relname, r.srsubstate) AS object
       FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE r.srsubstate NOT IN ('i', 'r') ORDER BY 1`,
  );
  return rows.length === 0
    ? []
    : [
        {
          id: 'subscription-tables-syncing',
          severity: 'error',
          database,
          objects: rows.map((r) => r.object),
          message: "subscription tables must be in state 'i' or 'r' for pg_upgrade to carry the subscription",
          remediation: 'Wait until the initial synchronisation is done (pg_subscription_rel.srsubstate = r).',
        },
      ];
}

/** Copy mode writes every file again: the new data directory's file system needs room for the old cluster. */
export function diskSpaceFinding(neededBytes: number, freeBytes: number, where: string): Finding[] {
  if (freeBytes >= neededBytes) return [];
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  return [
    {
      id: 'disk-space-for-copy',
      severity: 'warning',
      objects: [`${where}: ${gib(freeBytes)} free, the old cluster's databases take ${gib(neededBytes)}`],
      message: 'pg_upgrade in copy mode would run out of space',
      remediation: 'Free space, or run pg_upgrade with --link or --clone (no copy; --link means the old cluster cannot be started again once the new one ran).',
    },
  ];
}

// ------------------------------------------------------------ added by pg_upgrade 18 and 19

/** How the cluster's build passes int8 (and float8): by value on 64-bit builds, by reference on 32-bit ones. */
export async function int8PassByValue(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ byval: boolean }>(`SELECT typbyval AS byval FROM pg_type WHERE oid = 'int8'::regtype`);
  return rows[0]?.byval ?? true;
}

/** The Unicode version each release's built-in tables follow (unicode_version(), from 17). */
const UNICODE_OF: Readonly<Record<number, string>> = { 17: '15.1', 18: '16.0' };

/**
 * Whether the Unicode version changes from the old cluster to the new one:
 * read from the new cluster when it is given, otherwise from what the
 * target release is known to ship; an unknown target counts as a change, so
 * the warning errs on the side of naming the objects.
 */
export async function unicodeChange(
  old: Queryable,
  oldMajor: number,
  targetMajor: number,
  fresh?: Queryable,
): Promise<{ from: string; to: string | undefined } | undefined> {
  if (oldMajor < 17) return undefined;
  const version = async (db: Queryable) => (await db.query<{ v: string }>('SELECT unicode_version() AS v')).rows[0]?.v;
  const from = await version(old);
  const to = fresh !== undefined ? await version(fresh) : UNICODE_OF[targetMajor];
  return from !== undefined && from === to ? undefined : { from: from ?? '?', to };
}

/** Names with a newline or carriage return, which PostgreSQL 19 no longer accepts for databases, roles and tablespaces. */
export async function globalNamesWithNewlines(db: Queryable, oldMajor: number, targetMajor: number): Promise<Finding[]> {
  if (oldMajor > 18 || targetMajor < 19) return [];
  const { rows } = await db.query<{ object: string }>(
    `WITH names(kind, name) AS (
       SELECT 'database', datname::text FROM pg_database
       UNION ALL SELECT 'role', rolname::text FROM pg_roles
       UNION ALL SELECT 'tablespace', spcname::text FROM pg_tablespace)
     SELECT kind || ' ' || replace(replace(quote_ident(name), chr(10), '\\n'), chr(13), '\\r') AS object
       FROM names WHERE strpos(name, chr(10)) > 0 OR strpos(name, chr(13)) > 0 ORDER BY 1`,
  );
  return rows.length === 0
    ? []
    : [
        {
          id: 'global-names-with-newlines',
          severity: 'error',
          objects: rows.map((r) => r.object),
          message: 'database, role or tablespace names contain a newline or carriage return, which PostgreSQL 19 rejects',
          remediation: 'Rename them (ALTER DATABASE/ROLE/TABLESPACE ... RENAME TO ...) before the upgrade.',
        },
      ];
}

/** pg_conflict_detection is the slot PostgreSQL 19 reserves for retain_dead_tuples; an old logical slot of that name cannot be carried. */
export function reservedSlotNames(slots: readonly Slot[], oldMajor: number, targetMajor: number): Finding[] {
  if (oldMajor < 17 || targetMajor < 19) return [];
  const reserved = slots.filter((s) => s.name === 'pg_conflict_detection').map((s) => s.name);
  return reserved.length === 0
    ? []
    : [
        {
          id: 'reserved-slot-name',
          severity: 'error',
          objects: reserved,
          message: 'a logical slot is named pg_conflict_detection, a name PostgreSQL 19 reserves for itself',
          remediation: 'Drop the slot and create it again under another name (its consumer must then resynchronise or start from the new slot).',
        },
      ];
}

/** Subscriptions whose replication origin (pg_<subscription oid>) is missing: pg_upgrade (17+) cannot carry their progress. */
export async function subscriptionsWithoutOrigin(db: Queryable, oldMajor: number): Promise<Finding[]> {
  if (oldMajor < 17) return [];
  const { rows } = await db.query<{ object: string }>(
    `SELECT format('%I: %I', d.datname, s.subname) AS object FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
      WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin o WHERE o.roname = 'pg_' || s.oid) ORDER BY 1`,
  );
  return rows.length === 0
    ? []
    : [
        {
          id: 'subscription-without-origin',
          severity: 'error',
          objects: rows.map((r) => r.object),
          message: 'subscriptions without their replication origin cannot be upgraded',
          remediation: 'Drop and recreate those subscriptions (copy_data = false if the tables are in sync).',
        },
      ];
}
