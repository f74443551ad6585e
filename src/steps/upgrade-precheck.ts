/**
 * `upgrade-precheck`: everything that would stop pg_upgrade, known days
 * before the window, online and read-only against the live old cluster, for
 * any target major; with `newCluster`, compared against the (initialised,
 * empty) new cluster; with `pgUpgrade`, the real `pg_upgrade --check` too.
 * Checks that look inside databases run in every database that allows
 * connections, as pg_upgrade does. The plan is the report: it runs in a dry
 * run, and findings at or above `failOn` block the step.
 */
import path from 'node:path';
import { statfs } from 'node:fs/promises';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { inParallel } from '../parallel.js';
import { defineStep, type BaseContext, type ConnectedStep } from '../step/contract.js';
import {
  clusterFacts,
  databaseChecks,
  databaseFindings,
  diskSpaceFinding,
  extensionsAndLibraries,
  globalNamesWithNewlines,
  int8PassByValue,
  logicalSlots,
  longTransactions,
  major,
  preparedTransactions,
  reservedSlotNames,
  slotFindings,
  subscriptionStates,
  subscriptionsWithoutOrigin,
  unicodeChange,
  type Finding,
} from '../precheck/checks.js';
import { newClusterChecks } from '../precheck/new-cluster.js';
import { runPgUpgradeCheck } from '../precheck/pg-upgrade.js';
import { programFinding } from '../step/check-helpers.js';

const config = z.object({
  targetVersion: z.number().int().min(13).max(19).describe('the major version to upgrade to (13 to 19: the releases whose pg_upgrade rules the checks know)'),
  newCluster: z.string().min(1).optional().describe('a connection to the initialised, empty new cluster'),
  pgUpgrade: z
    .strictObject({
      oldBindir: z.string().min(1),
      newBindir: z.string().min(1),
      oldDatadir: z.string().min(1),
      newDatadir: z.string().min(1),
      user: z.string().min(1).describe('the install superuser (-U)'),
      jobs: z.number().int().min(1).max(1024).optional(),
      oldPort: z.number().int().min(1).max(65535).optional(),
      newPort: z.number().int().min(1).max(65535).optional(),
      socketDir: z.string().optional(),
      runAs: z.array(z.string().min(1)).optional().describe('prefix to run as the data directory owner, e.g. [sudo, -u, postgres]'),
    })
    .optional()
    .describe('also run the real pg_upgrade --check (read-only) with these paths'),
  writesFrozen: z.boolean().optional().describe('writes are stopped by an earlier step: a lagging logical slot is an error, not a warning'),
  failOn: z.enum(['error', 'warning']).optional().describe('the severity that blocks the step (default error)'),
});

type Config = z.output<typeof config>;

const RANK = { error: 2, warning: 1, info: 0 } as const;

/** Databases checked at once, each in its own sessions. */
const DATABASE_SESSIONS = 4;
/** Sessions per database that take its checks in turn: the two type-usage walks run side by side. */
const CHECK_SESSIONS = 2;

async function precheck(ctx: BaseContext, step: ConnectedStep<Config>): Promise<{ findings: Finding[]; output?: string }> {
  const c = step.config;
  const connection = step.connection;
  const db = await ctx.session(connection);
  const facts = await clusterFacts(db);
  const oldMajor = major(facts.versionNum);
  if (oldMajor < 10) throw new UsageError(`step "${step.id}": the old cluster is ${oldMajor}; upgrade-precheck reads catalogs of PostgreSQL 10 and later`);
  const findings: Finding[] = [...databaseFindings(facts), ...(await preparedTransactions(db)), ...(await longTransactions(db))];
  if (oldMajor > c.targetVersion) {
    // pg_upgrade cannot go down a version; the other checks would answer a question nobody asked.
    findings.push({
      id: 'old-cluster-newer',
      severity: 'error',
      objects: [String(oldMajor)],
      message: `the old cluster is PostgreSQL ${oldMajor}, newer than targetVersion ${c.targetVersion}: pg_upgrade only upgrades`,
      remediation: 'Fix targetVersion, or point the step at the cluster you will upgrade from.',
    });
    return { findings };
  }

  const target = c.targetVersion;
  findings.push(...(await globalNamesWithNewlines(db, oldMajor, target)));
  const slots = await logicalSlots(db);
  findings.push(...slotFindings(slots, oldMajor, c.writesFrozen === true), ...reservedSlotNames(slots, oldMajor, target));
  findings.push(...(await subscriptionsWithoutOrigin(db, oldMajor)));
  const { rows: subs } = await db.query<{ n: number; retain: number }>(
    `SELECT count(*)::int AS n, ${oldMajor >= 19 ? 'count(*) FILTER (WHERE subretaindeadtuples)::int' : '0'} AS retain FROM pg_subscription`,
  );
  const { rows: pubs } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_publication');

  const fresh = c.newCluster !== undefined ? await ctx.session(c.newCluster) : undefined;
  // Without the new cluster, assume a 64-bit build (int8 by value), as every release from 19 is.
  const int8PassingDiffers = (await int8PassByValue(db)) !== (fresh !== undefined ? await int8PassByValue(fresh) : true);
  const unicode = await unicodeChange(db, oldMajor, target, fresh);

  const extensions = new Map<string, string[]>();
  const libraries = new Map<string, string[]>();
  const perDatabase = await inParallel(
    facts.databases.filter((x) => x.allowConn && !x.invalid),
    DATABASE_SESSIONS,
    async (d) => {
      const checked = await databaseChecks(
        (worker) => ctx.sessionIn(connection, d.name, worker),
        {
          database: d.name,
          oldMajor,
          targetMajor: target,
          logical: slots.length > 0 || (pubs[0]?.n ?? 0) > 0,
          int8PassingDiffers,
          unicodeChange: unicode,
        },
        CHECK_SESSIONS,
      );
      const session = await ctx.sessionIn(connection, d.name);
      const states = oldMajor >= 17 ? await subscriptionStates(session, d.name) : [];
      return { d, findings: [...checked, ...states], found: await extensionsAndLibraries(session) };
    },
  );
  // In the databases' order, as when they were checked one after another.
  for (const {
    d,
    findings: found,
    found: { extensions: exts, libraries: libs },
  } of perDatabase) {
    findings.push(...found);
    for (const e of exts) extensions.set(e.name, [...(extensions.get(e.name) ?? []), d.name]);
    for (const l of libs) libraries.set(l, [...(libraries.get(l) ?? []), d.name]);
  }

  if (c.newCluster !== undefined && fresh !== undefined) {
    findings.push(
      ...(await newClusterChecks(
        { facts, db, extensions, libraries, logicalSlots: slots.length, subscriptions: subs[0]?.n ?? 0, retainDeadTuples: subs[0]?.retain ?? 0, oldMajor },
        fresh,
        (database) => ctx.sessionIn(c.newCluster ?? '', database),
        c.targetVersion,
      )),
    );
  } else {
    if (extensions.size > 0) {
      findings.push({
        id: 'extensions-to-verify',
        severity: 'info',
        objects: [...extensions].map(([n, dbs]) => `${n} (in ${dbs.join(', ')})`),
        message: `extensions the new ${c.targetVersion} cluster must offer`,
        remediation: 'Give newCluster to check them, or install their packages for the new version.',
      });
    }
    if (libraries.size > 0) {
      findings.push({
        id: 'libraries-to-verify',
        severity: 'info',
        objects: [...libraries.keys()],
        message: `shared libraries the new ${c.targetVersion} cluster must load`,
        remediation: 'Give newCluster to check that each loads.',
      });
    }
  }

  if (c.pgUpgrade === undefined) return { findings };
  // Readable only when the new data directory is on this host, which pgUpgrade implies.
  const space = await statfs(c.pgUpgrade.newDatadir).catch(() => undefined);
  if (space !== undefined) {
    const { rows } = await db.query<{ bytes: string }>('SELECT sum(pg_database_size(oid))::text AS bytes FROM pg_database WHERE datallowconn');
    findings.push(...diskSpaceFinding(Number(rows[0]?.bytes ?? 0), space.bavail * space.bsize, c.pgUpgrade.newDatadir));
  }
  const real = await runPgUpgradeCheck(ctx.commands, c.pgUpgrade, ctx.signal);
  findings.push(...real.findings);
  return { findings, output: real.output };
}

export const upgradePrecheckStep = defineStep({
  kind: 'upgrade-precheck',
  summary: 'Everything that would stop pg_upgrade, checked online and read-only against the live old cluster',
  config,
  connection: { required: true, kinds: ['postgres'] },
  connections: (c) => (c.newCluster !== undefined ? [c.newCluster] : []),
  effects: () => 'none',
  // Reads only: apply executes nothing, so nothing is planned; the findings are in the table.
  planned: z.null(),
  before: z.null(),
  reversibility: () => ({ kind: 'nothing-to-undo' }),

  async check(ctx, step) {
    const c = step.config;
    if (c.pgUpgrade === undefined) return [];
    return Promise.all([
      programFinding(ctx, path.join(c.pgUpgrade.newBindir, 'pg_upgrade')),
      ...(c.pgUpgrade.runAs?.[0] !== undefined ? [programFinding(ctx, c.pgUpgrade.runAs[0])] : []),
    ]);
  },

  async plan(ctx, step) {
    const { findings, output } = await precheck(ctx, step);
    const order = (f: Finding) => -RANK[f.severity];
    findings.sort((a, b) => order(a) - order(b) || a.id.localeCompare(b.id));
    const threshold = RANK[step.config.failOn ?? 'error'];
    const blocking = findings.filter((f) => RANK[f.severity] >= threshold);
    const count = (s: Finding['severity']) => findings.filter((f) => f.severity === s).length;
    return {
      actions: [],
      planned: null,
      tables: [
        {
          title: `pg_upgrade to ${step.config.targetVersion}: findings`,
          columns: [
            { key: 'severity', title: 'severity' },
            { key: 'id', title: 'check' },
            { key: 'database', title: 'database' },
            { key: 'objects', title: 'objects' },
            { key: 'remediation', title: 'what to do' },
          ],
          rows: findings.map((f) => ({ ...f, database: f.database ?? null, objects: f.objects.join(', ') })),
          footer: `${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} to verify`,
        },
      ],
      ...(output !== undefined ? { output } : {}),
      ...(blocking.length > 0
        ? {
            blockers: blocking.map(
              (f) =>
                `${f.id}${f.database ? ` in ${f.database}` : ''}: ${f.message} (${f.objects.slice(0, 5).join(', ')}${f.objects.length > 5 ? ', ...' : ''})`,
            ),
          }
        : {}),
    };
  },

  async apply() {
    return { before: null };
  },
});
