/**
 * What only the new cluster can answer: is it empty and initialised by the
 * same install user, do its settings match (data checksums, template1
 * encoding and locale), does it offer every extension and load every library
 * the old one uses, and can it take the old cluster's logical slots.
 */
import type { Queryable } from '../db/session.js';
import { DatabaseError } from '../errors.js';
import { clusterFacts, major, type ClusterFacts, type Finding } from './checks.js';

async function setting(db: Queryable, name: string): Promise<string | undefined> {
  const { rows } = await db.query<{ v: string | null }>('SELECT current_setting($1, true) AS v', [name]);
  return rows[0]?.v ?? undefined;
}

/** template1's encoding and locale; before 15 there is no provider column, and the provider is always libc. */
async function template1(db: Queryable): Promise<Record<string, unknown>> {
  const { rows } = await db.query<{ d: Record<string, unknown> }>(
    `SELECT jsonb_build_object('encoding', pg_encoding_to_char(d.encoding), 'collate', d.datcollate, 'ctype', d.datctype)
            || jsonb_strip_nulls(jsonb_build_object('provider', COALESCE(to_jsonb(d) -> 'datlocprovider', '"c"'::jsonb), 'locale', to_jsonb(d) -> 'datlocale', 'icu', to_jsonb(d) -> 'daticulocale')) AS d
       FROM pg_database d WHERE d.datname = 'template1'`,
  );
  return rows[0]?.d ?? {};
}

export interface OldCluster {
  readonly facts: ClusterFacts;
  readonly db: Queryable;
  readonly extensions: ReadonlyMap<string, readonly string[]>;
  readonly libraries: ReadonlyMap<string, readonly string[]>;
  readonly logicalSlots: number;
  readonly subscriptions: number;
  /** Subscriptions with retain_dead_tuples (19+): the new cluster needs one more slot, pg_conflict_detection. */
  readonly retainDeadTuples?: number | undefined;
  readonly oldMajor: number;
}

export async function newClusterChecks(
  old: OldCluster,
  fresh: Queryable,
  openDatabase: (database: string) => Promise<Queryable>,
  targetMajor: number,
): Promise<Finding[]> {
  const out: Finding[] = [];
  const facts = await clusterFacts(fresh);
  if (major(facts.versionNum) !== targetMajor) {
    out.push({
      id: 'new-cluster-version',
      severity: 'error',
      objects: [String(major(facts.versionNum))],
      message: `the new cluster is PostgreSQL ${major(facts.versionNum)}, not ${targetMajor}`,
      remediation: 'Point newCluster at the cluster you will upgrade into, or fix targetVersion.',
    });
  }
  if (facts.installUser !== old.facts.installUser) {
    out.push({
      id: 'install-user-differs',
      severity: 'error',
      objects: [old.facts.installUser, facts.installUser],
      message: `the clusters were initialised by different install users (${old.facts.installUser}, ${facts.installUser})`,
      remediation: `initdb the new cluster with -U ${old.facts.installUser}.`,
    });
  }
  // The install user (the bootstrap superuser, oid 10) is the one role pg_upgrade allows: name only the others.
  const { rows: roles } = await fresh.query<{ name: string }>(`SELECT rolname AS name FROM pg_roles WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY oid`);
  if (roles.length > 0) {
    out.push({
      id: 'new-cluster-has-other-roles',
      severity: 'error',
      objects: roles.map((r) => r.name),
      message: `the new cluster has roles besides the install user ${facts.installUser}; pg_upgrade allows only that one, because restoring the old roles would collide`,
      remediation:
        'Drop the other roles from the new cluster (or initdb it again) and create them only after the upgrade, if at all: the old roles come across.',
    });
  }
  const { rows: prepared } = await fresh.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts ORDER BY gid');
  if (prepared.length > 0) {
    out.push({
      id: 'new-cluster-prepared-transactions',
      severity: 'error',
      objects: prepared.map((p) => p.gid),
      message: 'the new cluster has prepared transactions',
      remediation: 'ROLLBACK PREPARED them on the new cluster, or initdb it again.',
    });
  }
  try {
    out.push(...(await tablespaceDirectories(old.db, fresh, old.oldMajor)));
  } catch (error) {
    if (!(error instanceof DatabaseError)) throw error;
    out.push({
      id: 'tablespace-dirs-not-checked',
      severity: 'warning',
      objects: [error.message],
      message: 'could not look for existing tablespace directories of the new version',
      remediation:
        'Run the precheck as a superuser (pg_stat_file and pg_control_system), or look for PG_<version>_* directories in each tablespace location by hand.',
    });
  }
  const occupied: string[] = [];
  for (const d of facts.databases.filter((x) => x.allowConn)) {
    const { rows } = await (
      await openDatabase(d.name)
    ).query<{ object: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS object FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid >= 16384 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' ORDER BY 1 LIMIT 20`,
    );
    occupied.push(...rows.map((r) => `${d.name}: ${r.object}`));
  }
  if (occupied.length > 0) {
    out.push({
      id: 'new-cluster-not-empty',
      severity: 'error',
      objects: occupied,
      message: 'the new cluster holds user relations',
      remediation: 'Upgrade into a freshly initialised, empty cluster.',
    });
  }
  const [oldSums, newSums] = [await setting(old.db, 'data_checksums'), await setting(fresh, 'data_checksums')];
  if (oldSums !== newSums) {
    out.push({
      id: 'data-checksums-differ',
      severity: 'error',
      objects: [`old ${oldSums ?? '?'}`, `new ${newSums ?? '?'}`],
      message: 'data checksums must be on in both clusters or off in both (initdb enables them by default from PostgreSQL 18)',
      remediation:
        newSums === 'on'
          ? 'initdb the new cluster with --no-data-checksums, or enable them on the old one with pg_checksums (offline).'
          : 'initdb the new cluster with --data-checksums.',
    });
  }
  try {
    out.push(...(await controlDataDiffers(old.db, fresh)));
  } catch (error) {
    if (!(error instanceof DatabaseError)) throw error;
    out.push({
      id: 'control-data-not-compared',
      severity: 'warning',
      objects: [error.message],
      message: 'could not read pg_control_init() to compare the build settings of the clusters',
      remediation: 'Run the precheck as a superuser, or compare pg_controldata of both clusters by hand.',
    });
  }
  // From 16 on pg_upgrade gives the new cluster the old one's locale and encoding itself.
  const [oldT1, newT1] = targetMajor <= 15 ? [await template1(old.db), await template1(fresh)] : [{}, {}];
  const differing = Object.keys({ ...oldT1, ...newT1 }).filter((k) => JSON.stringify(oldT1[k]) !== JSON.stringify(newT1[k]));
  if (differing.length > 0) {
    out.push({
      id: 'template1-locale-differs',
      severity: 'error',
      objects: differing.map((k) => `${k}: ${JSON.stringify(oldT1[k])} -> ${JSON.stringify(newT1[k])}`),
      message: 'template1 encoding, locale or locale provider differ between the clusters',
      remediation: "initdb the new cluster with the old one's encoding, locale and provider.",
    });
  }
  const { rows: available } = await fresh.query<{ name: string }>('SELECT name FROM pg_available_extensions');
  const offered = new Set(available.map((a) => a.name));
  const missing = [...old.extensions].filter(([name]) => !offered.has(name)).map(([name, dbs]) => `${name} (in ${dbs.join(', ')})`);
  if (missing.length > 0) {
    out.push({
      id: 'extension-not-available',
      severity: 'error',
      objects: missing,
      message: 'extensions installed in the old cluster that the new one does not offer',
      remediation: "Install their packages for the new version on the new cluster's host.",
    });
  }
  const unloadable: string[] = [];
  for (const [library, dbs] of old.libraries) {
    try {
      await fresh.query(`LOAD '${library.replaceAll("'", "''")}'`);
    } catch (error) {
      if (!(error instanceof DatabaseError)) throw error;
      unloadable.push(`${library} (used in ${dbs.join(', ')}): ${error.message}`);
    }
  }
  if (unloadable.length > 0) {
    out.push({
      id: 'library-not-loadable',
      severity: 'error',
      objects: unloadable,
      message: 'shared libraries used by functions in the old cluster that the new one cannot load',
      remediation: 'Install the library for the new version, or drop the functions that use it.',
    });
  }
  // Logical slots come across from 17 on; from 19, a subscription with retain_dead_tuples also needs the pg_conflict_detection slot.
  const conflictSlot = (old.retainDeadTuples ?? 0) > 0 ? 1 : 0;
  if (old.oldMajor >= 17 && targetMajor >= 17 && old.logicalSlots + conflictSlot > 0) {
    const problems: string[] = [];
    const walLevel = (await setting(fresh, 'wal_level')) ?? '?';
    // 19 enables logical decoding on demand with wal_level = replica (effective_wal_level).
    const accepted = targetMajor >= 19 ? ['replica', 'logical'] : ['logical'];
    if (!accepted.includes(walLevel)) problems.push(`wal_level is ${walLevel}, must be ${accepted.join(' or ')}`);
    const needed = old.logicalSlots + conflictSlot;
    const maxSlots = Number((await setting(fresh, 'max_replication_slots')) ?? 0);
    if (maxSlots < needed)
      problems.push(
        `max_replication_slots is ${maxSlots}, the old cluster needs ${needed} (${old.logicalSlots} logical slot(s)${conflictSlot ? ' and pg_conflict_detection' : ''})`,
      );
    const { rows: slots } = await fresh.query<{ logical: number; conflict: boolean }>(
      "SELECT count(*) FILTER (WHERE slot_type = 'logical' AND NOT temporary)::int AS logical, bool_or(slot_name = 'pg_conflict_detection') IS TRUE AS conflict FROM pg_replication_slots",
    );
    if ((slots[0]?.logical ?? 0) > 0) problems.push(`the new cluster already has ${slots[0]?.logical} logical slot(s)`);
    if (slots[0]?.conflict === true) problems.push('the new cluster already has a pg_conflict_detection slot');
    if (problems.length > 0) {
      out.push({
        id: 'new-cluster-cannot-take-slots',
        severity: 'error',
        objects: problems,
        message: "the new cluster is not configured to receive the old cluster's logical slots",
        remediation: `Set wal_level = ${accepted.join(' or ')} and max_replication_slots on the new cluster, and drop its slots.`,
      });
    }
  }
  if (old.subscriptions > 0 && targetMajor >= 17) {
    const origins = Number((await setting(fresh, targetMajor >= 18 ? 'max_active_replication_origins' : 'max_replication_slots')) ?? 0);
    if (origins < old.subscriptions) {
      out.push({
        id: 'new-cluster-cannot-take-subscriptions',
        severity: 'error',
        objects: [`${origins} < ${old.subscriptions}`],
        message: `${targetMajor >= 18 ? 'max_active_replication_origins' : 'max_replication_slots'} on the new cluster is lower than the number of subscriptions`,
        remediation: 'Raise it on the new cluster before the upgrade.',
      });
    }
  }
  return out;
}

/**
 * pg_upgrade creates each tablespace of the old cluster again, in a
 * directory named after the new version (PG_<major>_<catalog version>) inside
 * the same location; one left by an earlier, failed attempt makes it stop.
 * pg_upgrade runs on the old cluster's host, so the old cluster's
 * pg_stat_file sees the same file system (it needs superuser or
 * pg_read_server_files).
 */
async function tablespaceDirectories(old: Queryable, fresh: Queryable, oldMajor: number): Promise<Finding[]> {
  const { rows: spaces } = await old.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')");
  if ((spaces[0]?.n ?? 0) === 0) return [];
  const { rows: control } = await fresh.query<{ suffix: string | null }>(
    `SELECT 'PG_' || (current_setting('server_version_num')::int / 10000) || '_' || catalog_version_no AS suffix FROM pg_control_system()`,
  );
  const { rows: own } = await old.query<{ catalog: number | null }>('SELECT catalog_version_no AS catalog FROM pg_control_system()');
  const suffix = control[0]?.suffix;
  if (suffix === null || suffix === undefined || suffix === `PG_${oldMajor}_${own[0]?.catalog ?? ''}`) return [];
  const { rows } = await old.query<{ dir: string }>(
    `SELECT dir FROM (SELECT pg_tablespace_location(oid) || '/' || $1 AS dir FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')) t
      WHERE (pg_stat_file(dir, true)).size IS NOT NULL ORDER BY 1`,
    [suffix],
  );
  return rows.length === 0
    ? []
    : [
        {
          id: 'new-cluster-tablespace-dir-exists',
          severity: 'error',
          objects: rows.map((r) => r.dir),
          message: 'tablespace directories for the new version already exist (left by an earlier attempt?)',
          remediation: 'Remove those directories (after making sure no cluster uses them) before the upgrade.',
        },
      ];
}

/**
 * The build and initdb settings pg_upgrade compares in pg_control (block
 * sizes, WAL segment size, alignment, identifier and index limits, TOAST
 * and large-object chunk sizes); data checksums and int8 passing have
 * findings of their own.
 */
const CONTROL_FIELDS = [
  'max_data_alignment',
  'database_block_size',
  'blocks_per_segment',
  'wal_block_size',
  'bytes_per_wal_segment',
  'max_identifier_length',
  'max_index_columns',
  'max_toast_chunk_size',
  'large_object_chunk_size',
] as const;

async function controlDataDiffers(old: Queryable, fresh: Queryable): Promise<Finding[]> {
  const read = async (db: Queryable) => (await db.query<{ c: Record<string, unknown> }>('SELECT to_jsonb(i) AS c FROM pg_control_init() i')).rows[0]?.c ?? {};
  const [a, b] = [await read(old), await read(fresh)];
  const differing = CONTROL_FIELDS.filter((k) => String(a[k]) !== String(b[k])).map((k) => `${k}: ${String(a[k])} -> ${String(b[k])}`);
  return differing.length === 0
    ? []
    : [
        {
          id: 'control-data-differs',
          severity: 'error',
          objects: differing,
          message: 'the clusters were built or initialised with different storage settings, which pg_upgrade cannot convert',
          remediation: "initdb the new cluster with the old one's settings (e.g. --wal-segsize), with binaries built with the same block size and alignment.",
        },
      ];
}
