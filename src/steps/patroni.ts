/**
 * `patroni`: a planned switchover through Patroni's REST API, the moment a
 * cutover behind an HA manager exists for.
 *
 * The plan reads `GET /cluster`, `GET /config` and each member's
 * `GET /patroni`, and refuses (blockers) what Patroni would refuse or quietly
 * work around: not exactly one leader, a candidate that is not running, not
 * streaming from the leader, on another timeline, lagging more than `maxLag`,
 * replaying nothing (replay paused), tagged `nofailover`, or not in `/sync`
 * in synchronous mode; a paused cluster without a named candidate; a
 * switchover already scheduled. Apply sends `POST /switchover` and then waits
 * for the state the application needs, not for Patroni's answer: the
 * candidate leads, the old leader streams from it on the new timeline, and
 * `GET /primary` answers 200 on the new leader and on no other member (which
 * is what HAProxy's `option httpchk GET /primary` routes by). Patroni's
 * "Switched over to X instead of Y" is a failure. Rollback switches back to
 * the leader recorded before the POST.
 */
import { done, notYet, poll } from '../poll.js';
import { z } from 'zod';
import { PatroniApi, type Cluster, type Member, type MemberStatus } from '../db/patroni-api.js';
import { UsageError, VerificationError } from '../errors.js';
import { defineStep, type BaseContext, type ConnectedStep, type Json, type PlanTable, type Step } from '../step/contract.js';
import { byteSize, duration } from '../runbook/schema.js';

const memberName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\s"]+$/, "a Patroni member's name");

const config = z.object({
  action: z.enum(['switchover']).describe('switchover: make another member the leader, planned and reversible'),
  candidate: memberName.optional().describe('the member to lead; default: the streaming replica with the least lag that qualifies'),
  maxLag: byteSize
    .optional()
    .describe("how far the candidate may be behind the leader, from GET /cluster's lag (default 1MB, Patroni's maximum_lag_on_failover default)"),
  scheduledAt: z
    .string()
    .regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/, 'an ISO 8601 time with a zone, e.g. 2026-11-22T03:00:00+00:00')
    .optional()
    .describe("Patroni's scheduled_at: the switchover happens then; the step waits for it"),
  waitTimeout: duration
    .optional()
    .describe('how long to wait after POST /switchover (or the scheduled time) for the new leader, the old one streaming and /primary (default 2m)'),
  moves: z
    .array(z.string().min(1))
    .optional()
    .describe(
      'postgres connections that reach the leader (through HAProxy, or to the old leader itself): the switchover restarts their server, so the run lets go of their locks first and takes them again at their next use',
    ),
});
type Config = z.output<typeof config>;

const DEFAULT_MAX_LAG = 1024 * 1024;
const DEFAULT_WAIT_MS = 120_000;
/** Patroni answers POST /switchover only after polling up to about 20 s itself. */
const POST_TIMEOUT_MS = 60_000;
const POLL_MS = 500;

/** What rollback needs: who led before, and whom this step asked to lead. */
const beforeSchema = z.strictObject({ leader: z.string(), candidate: z.string(), scheduledAt: z.string().nullable() });
type Before = z.output<typeof beforeSchema>;

/** The POST /switchover apply sends (null: the candidate already leads, nothing to send). */
const plannedSchema = z.object({
  post: z.object({ url: z.string(), leader: z.string(), candidate: z.string(), scheduledAt: z.string().nullable() }).nullable(),
});
type Post = NonNullable<z.output<typeof plannedSchema>['post']>;

const bodyOf = (post: Post): { [key: string]: Json } => ({
  leader: post.leader,
  candidate: post.candidate,
  ...(post.scheduledAt !== null ? { scheduled_at: post.scheduledAt } : {}),
});

/** Patroni switched, refused, or switched to someone else. */
export class SwitchoverError extends Error {
  override readonly name = 'SwitchoverError';
}

function apiFor(ctx: BaseContext, step: ConnectedStep<Config>): PatroniApi {
  const name = step.connection;
  const resolved = ctx.resolved(name);
  if (resolved.kind !== 'patroni') throw new UsageError(`connection "${name}" is ${resolved.kind}, not patroni`);
  return new PatroniApi(name, resolved);
}

const isLeader = (m: Member) => m.role === 'leader' || m.role === 'standby_leader';
const tagged = (m: Member, tag: string) => m.tags?.[tag] === true || m.tags?.[tag] === 'true';
const lagOf = (m: Member) => (typeof m.lag === 'number' ? m.lag : undefined);
const mb = (bytes: number) => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)}MB` : `${bytes} bytes`);

/** Everything the plan and the waits read: the cluster, every member's own status, the leader's WAL senders. */
interface Snapshot {
  readonly cluster: Cluster;
  readonly statuses: ReadonlyMap<string, MemberStatus | string>;
  readonly leaders: readonly Member[];
  /** Member names the (single) leader's pg_stat_replication shows as streaming. */
  readonly streaming: ReadonlySet<string>;
}

async function snapshot(api: PatroniApi, signal: AbortSignal): Promise<Snapshot> {
  const cluster = await api.cluster({ signal });
  const statuses = new Map(await Promise.all(cluster.members.map(async (m) => [m.name, await api.status(m, { signal })] as const)));
  const leaders = cluster.members.filter(isLeader);
  const leaderStatus = leaders.length === 1 ? statuses.get(leaders[0]?.name ?? '') : undefined;
  const streaming = new Set(
    typeof leaderStatus === 'object' ? (leaderStatus.replication ?? []).filter((r) => r.state === 'streaming').map((r) => r.application_name) : [],
  );
  return { cluster, statuses, leaders, streaming };
}

/** Why `member` cannot take over from `leader` now; empty when it can. */
async function disqualified(
  api: PatroniApi,
  snap: Snapshot,
  member: Member,
  leader: Member,
  options: { readonly maxLag: number; readonly synchronous: boolean; readonly signal: AbortSignal },
): Promise<string[]> {
  const why: string[] = [];
  const status = snap.statuses.get(member.name);
  if (member.state !== 'running') why.push(`${member.name} is ${member.state ?? 'in an unknown state'}, not running`);
  if (typeof status === 'string') why.push(`${member.name}'s GET /patroni failed: ${status}`);
  if (tagged(member, 'nofailover')) why.push(`${member.name} is tagged nofailover: Patroni never promotes it`);
  if (!snap.streaming.has(member.name)) why.push(`${member.name} is not streaming from ${leader.name} (not in its pg_stat_replication as streaming)`);
  if (member.timeline !== leader.timeline) why.push(`${member.name} is on timeline ${member.timeline ?? '?'}, the leader on ${leader.timeline ?? '?'}`);
  const lag = lagOf(member);
  if (lag === undefined) why.push(`${member.name}'s lag is ${String(member.lag ?? 'unknown')}`);
  else if (lag > options.maxLag) why.push(`${member.name} lags ${mb(lag)} behind ${leader.name}, more than maxLag ${mb(options.maxLag)}`);
  if (typeof status === 'object' && status.xlog?.paused === true)
    why.push(`WAL replay is paused on ${member.name} (pg_wal_replay_pause): it would be promoted behind`);
  if (options.synchronous) {
    const sync = await api.probe(member, '/sync', { signal: options.signal });
    if (sync !== 200) why.push(`synchronous mode is on and ${member.name} is not a synchronous standby (GET /sync answered ${sync})`);
  }
  return why;
}

const CLUSTER_COLUMNS: PlanTable['columns'] = [
  { key: 'member', title: 'member' },
  { key: 'role', title: 'role' },
  { key: 'state', title: 'state' },
  { key: 'address', title: 'postgres' },
  { key: 'timeline', title: 'TL', align: 'right' },
  { key: 'lag', title: 'lag', align: 'right' },
  { key: 'streaming', title: 'streaming' },
  { key: 'notes', title: 'notes' },
];

function clusterTable(snap: Snapshot, chosen: string | undefined): PlanTable {
  return {
    title: 'cluster (GET /cluster)',
    columns: CLUSTER_COLUMNS,
    rows: snap.cluster.members.map((m) => {
      const status = snap.statuses.get(m.name);
      const notes = [
        ...(m.name === chosen ? ['<- candidate'] : []),
        ...(tagged(m, 'nofailover') ? ['nofailover'] : []),
        ...(typeof status === 'object' && status.xlog?.paused === true ? ['replay paused'] : []),
      ];
      return {
        member: m.name,
        role: m.role,
        state: m.state ?? '',
        address: m.host === undefined ? '' : `${m.host}:${m.port ?? ''}`,
        timeline: m.timeline ?? null,
        lag: isLeader(m) ? '' : (m.lag ?? null),
        streaming: isLeader(m) ? '' : snap.streaming.has(m.name) ? 'yes' : 'no',
        notes: notes.join(', '),
      };
    }),
  };
}

/**
 * What is still missing for `leader` to lead with `replica` streaming from it
 * and /primary answering on the leader only; empty when all holds.
 */
async function missing(
  api: PatroniApi,
  names: { readonly leader: string; readonly replica: string },
  signal: AbortSignal,
): Promise<{ missing: string[]; wrongLeader?: string }> {
  let snap: Snapshot;
  try {
    snap = await snapshot(api, signal);
  } catch (error) {
    if (signal.aborted) throw error;
    return { missing: [`GET /cluster: ${error instanceof Error ? error.message : String(error)}`] };
  }
  const gaps: string[] = [];
  const leader = snap.leaders.length === 1 ? snap.leaders[0] : undefined;
  if (leader?.name !== names.leader) {
    gaps.push(`${names.leader} to lead (now: ${snap.leaders.map((l) => l.name).join(', ') || 'no leader'})`);
  }
  const replica = snap.cluster.members.find((m) => m.name === names.replica);
  if (replica === undefined) gaps.push(`${names.replica} to be a member again`);
  else if (leader?.name === names.leader) {
    if (isLeader(replica) || replica.state !== 'running') gaps.push(`${names.replica} to run as a replica (now: ${replica.role}, ${replica.state ?? '?'})`);
    else if (!snap.streaming.has(names.replica)) gaps.push(`${names.replica} to stream from ${names.leader}`);
    else if (replica.timeline !== leader.timeline) gaps.push(`${names.replica} to reach timeline ${leader.timeline ?? '?'} (now ${replica.timeline ?? '?'})`);
  }
  const primaries = await Promise.all(snap.cluster.members.map(async (m) => [m.name, await api.probe(m, '/primary', { signal })] as const));
  for (const [name, status] of primaries) {
    if (name === names.leader && status !== 200) gaps.push(`GET /primary on ${name} to answer 200 (now ${status})`);
    if (name !== names.leader && status === 200) gaps.push(`GET /primary on ${name} to stop answering 200`);
  }
  const other = leader !== undefined && leader.name !== names.leader && leader.name !== names.replica ? leader.name : undefined;
  return other === undefined ? { missing: gaps } : { missing: gaps, wrongLeader: other };
}

/** Polls until `missing` is empty; past the deadline fails naming what is still missing. */
async function settle(
  ctx: BaseContext,
  api: PatroniApi,
  names: { readonly leader: string; readonly replica: string },
  options: { readonly deadline: number; readonly timeoutMs: number },
): Promise<number> {
  const started = Date.now();
  const found = await poll(
    async () => {
      const state = await missing(api, names, ctx.signal);
      if (state.wrongLeader !== undefined) throw new SwitchoverError(`Patroni made ${state.wrongLeader} the leader instead of ${names.leader}`);
      if (state.missing.length === 0) return done(Date.now() - started);
      ctx.progress(`waiting ${((Date.now() - started) / 1000).toFixed(1)}s for: ${state.missing.join('; ')}`);
      return notYet(state.missing);
    },
    { intervalMs: POLL_MS, timeoutMs: Math.max(0, options.deadline - started), signal: ctx.signal },
  );
  if (!found.done) throw new VerificationError(`after ${Math.round(options.timeoutMs / 1000)}s still waiting for: ${found.seen.join('; ')}`);
  return found.value;
}

/** Sends POST /switchover and judges Patroni's answer; a scheduled one answers 202. */
async function postSwitchover(ctx: BaseContext, api: PatroniApi, url: string, body: { readonly [key: string]: Json }): Promise<string> {
  const response = await api.request('POST', url, { body, auth: true, timeoutMs: POST_TIMEOUT_MS, signal: ctx.signal });
  const text = response.body.trim();
  if (response.status === 401) {
    throw new UsageError(
      `POST /switchover was refused (401): the connection's username/password or client certificate is not what restapi.authentication expects`,
    );
  }
  if (response.status === 403) {
    const why = /certificate/i.test(text)
      ? 'restapi.verify_client wants a client certificate signed by its cafile: give the connection certFile and keyFile'
      : 'this address is not in restapi.allowlist, or the client certificate is not accepted';
    throw new UsageError(`POST /switchover was refused (403, Patroni: ${JSON.stringify(text.slice(0, 200))}): ${why}`);
  }
  if (response.status === 202) return text;
  // Patroni gave up its own wait, but the switchover may still happen: our wait decides.
  if (response.status === 503 && /status unknown/i.test(text)) return text;
  if (response.status !== 200) throw new SwitchoverError(`POST /switchover answered ${response.status}: ${text}`);
  const instead = /over to "([^"]*)" instead of "([^"]*)"/.exec(text);
  if (instead !== null) throw new SwitchoverError(`Patroni switched over to ${instead[1] ?? '?'} instead of ${instead[2] ?? '?'}`);
  return text;
}

const waitMsOf = (step: Step<Config>) => step.config.waitTimeout ?? DEFAULT_WAIT_MS;

/** When the wait ends: from now, or from the scheduled time. */
function deadlineOf(step: Step<Config>, scheduledAt: string | undefined): number {
  const from = scheduledAt === undefined ? Date.now() : Math.max(Date.now(), Date.parse(scheduledAt));
  return from + waitMsOf(step);
}

export const patroniStep = defineStep({
  kind: 'patroni',
  summary: 'Planned Patroni switchover through its REST API, with pre-checks, a wait for the new leader, streaming replica and /primary, and switch-back',
  config,
  connection: { required: true, kinds: ['patroni'] },
  validate(c, runbook) {
    const issues: { path: (string | number)[]; message: string }[] = [];
    if (c.scheduledAt !== undefined && Number.isNaN(Date.parse(c.scheduledAt))) issues.push({ path: ['scheduledAt'], message: 'not a time' });
    (c.moves ?? []).forEach((name, i) => {
      if (runbook.connectionKind(name) !== 'postgres') issues.push({ path: ['moves', i], message: `"${name}" is not a postgres connection of this runbook` });
    });
    return issues;
  },
  effects: () => 'external',
  stopsServerOf: (c) => c.moves ?? [],
  // Converges: apply re-reads the cluster and skips the POST when the candidate already leads.
  idempotent: true,
  reversibility: () => ({ kind: 'reversible' }),
  // null when there was nothing to do (the candidate already led).
  before: beforeSchema.nullable(),
  planned: plannedSchema,

  async plan(ctx, step) {
    const api = apiFor(ctx, step);
    const snap = await snapshot(api, ctx.signal);
    const blockers: string[] = [];
    const dcs = await api.dcsConfig({ signal: ctx.signal }).catch((error: unknown) => {
      if (ctx.signal.aborted) throw error;
      blockers.push(`GET /config failed, so whether synchronous mode is on is unknown: ${error instanceof Error ? error.message : String(error)}`);
      return { synchronous_mode: undefined };
    });
    const synchronous = dcs.synchronous_mode === true;
    const maxLag = step.config.maxLag ?? DEFAULT_MAX_LAG;
    const notes: string[] = [];
    const leader = snap.leaders.length === 1 ? snap.leaders[0] : undefined;
    if (leader === undefined) {
      blockers.push(
        `the cluster has ${snap.leaders.length === 0 ? 'no leader' : `${snap.leaders.length} leaders (${snap.leaders.map((l) => l.name).join(', ')})`}; a switchover needs exactly one`,
      );
    }
    if (snap.cluster.pause === true && step.config.candidate === undefined) {
      blockers.push('the cluster is paused (maintenance mode): Patroni switches over only to a named candidate; name one, or resume the cluster');
    }
    const scheduled = snap.cluster.scheduled_switchover;
    if (scheduled !== undefined) {
      blockers.push(
        `a switchover is already scheduled at ${scheduled.at}${scheduled.to === undefined ? '' : ` to ${scheduled.to}`}; cancel it (DELETE /switchover) first`,
      );
    }

    let chosen: string | undefined;
    if (leader !== undefined) {
      const checks = { maxLag, synchronous, signal: ctx.signal };
      const named = step.config.candidate;
      if (named !== undefined && named === leader.name) {
        notes.push(`${named} already leads: nothing to do`);
        return { actions: [], planned: { post: null }, tables: [clusterTable(snap, named)], notes, ...(blockers.length > 0 ? { blockers } : {}) };
      }
      if (named !== undefined) {
        const member = snap.cluster.members.find((m) => m.name === named);
        if (member === undefined) blockers.push(`no member "${named}" in the cluster (members: ${snap.cluster.members.map((m) => m.name).join(', ')})`);
        else blockers.push(...(await disqualified(api, snap, member, leader, checks)));
        chosen = named;
      } else {
        const replicas = snap.cluster.members.filter((m) => !isLeader(m));
        const judged = await Promise.all(replicas.map(async (m) => ({ m, why: await disqualified(api, snap, m, leader, checks) })));
        const fit = judged
          .filter((j) => j.why.length === 0)
          .sort((a, b) => (lagOf(a.m) ?? Infinity) - (lagOf(b.m) ?? Infinity) || a.m.name.localeCompare(b.m.name));
        chosen = fit[0]?.m.name;
        if (chosen === undefined) {
          blockers.push(
            replicas.length === 0 ? 'the cluster has no replica to switch over to' : `no replica qualifies: ${judged.flatMap((j) => j.why).join('; ')}`,
          );
        } else notes.push(`candidate ${chosen}: the qualifying replica with the least lag (${mb(lagOf(fit[0]?.m ?? leader) ?? 0)})`);
      }
    }
    const tables = [clusterTable(snap, chosen)];
    if (leader === undefined || chosen === undefined) return { actions: [], planned: { post: null }, tables, notes, blockers };

    const leaderBase = PatroniApi.baseOf(leader) ?? '';
    const post: Post = { url: `${leaderBase}/switchover`, leader: leader.name, candidate: chosen, scheduledAt: step.config.scheduledAt ?? null };
    const waitS = Math.round(waitMsOf(step) / 1000);
    notes.push(
      `Patroni demotes ${leader.name} (its clients are disconnected), promotes ${chosen} on a new timeline, and rejoins ${leader.name} as a replica; clients through HAProxy reconnect to ${chosen} once its GET /primary answers 200`,
      'rollback switches back to ' + leader.name,
    );
    return {
      actions: [
        {
          type: 'http',
          connection: step.connection,
          method: 'POST',
          url: post.url,
          body: bodyOf(post),
          then: `poll GET /cluster, GET /patroni and GET /primary every ${POLL_MS}ms for up to ${waitS}s${step.config.scheduledAt === undefined ? '' : ` after ${step.config.scheduledAt}`} until ${chosen} leads, ${leader.name} streams from it on its timeline, and /primary answers 200 on ${chosen} only`,
        },
      ],
      planned: { post },
      tables,
      notes,
      ...(blockers.length > 0 ? { blockers } : {}),
    };
  },

  async apply(ctx, step, { post }) {
    if (post === null) return { before: null, output: 'nothing to do' };
    const api = apiFor(ctx, step);
    const { leader, candidate } = post;
    // A re-run keeps the first attempt's leader: that is where rollback must go back to.
    const before: Before = ctx.priorBefore ?? { leader, candidate, scheduledAt: post.scheduledAt };
    ctx.recordBefore(before);

    const now = await api.cluster({ signal: ctx.signal });
    const current = now.members.filter(isLeader).map((m) => m.name);
    let answer = `${candidate} already leads`;
    if (!(current.length === 1 && current[0] === candidate)) {
      if (!(current.length === 1 && current[0] === leader)) {
        throw new SwitchoverError(`the leader is ${current.join(', ') || 'nobody'} now, the plan was made with ${leader}; nothing was sent, plan again`);
      }
      answer = await postSwitchover(ctx, api, post.url, bodyOf(post));
    }
    const tookMs = await settle(
      ctx,
      api,
      { leader: candidate, replica: leader },
      { deadline: deadlineOf(step, post.scheduledAt ?? undefined), timeoutMs: waitMsOf(step) },
    );
    return {
      before,
      output: `${answer}; ${candidate} leads, ${leader} streams from it, /primary answers on ${candidate} only (${tookMs}ms after Patroni's answer)`,
    };
  },

  async verify(ctx, step, { post }) {
    if (post === null) return;
    const state = await missing(apiFor(ctx, step), { leader: post.candidate, replica: post.leader }, ctx.signal);
    if (state.missing.length > 0) throw new VerificationError(`after the switchover: still waiting for ${state.missing.join('; ')}`);
  },

  async rollback(ctx, step, before) {
    if (before === null) return;
    const api = apiFor(ctx, step);
    const cluster = await api.cluster({ signal: ctx.signal });
    if (cluster.scheduled_switchover !== undefined && before.scheduledAt !== null) {
      // Ours has not happened yet: cancelling it is the whole undo.
      const cancelled = await api.request('DELETE', `${api.baseUrl()}/switchover`, { auth: true, signal: ctx.signal });
      if (cancelled.status !== 200) throw new SwitchoverError(`DELETE /switchover answered ${cancelled.status}: ${cancelled.body.trim()}`);
    }
    const leaders = cluster.members.filter(isLeader);
    const leader = leaders.length === 1 ? leaders[0] : undefined;
    if (leader === undefined) throw new SwitchoverError(`cannot switch back to ${before.leader}: the cluster has ${leaders.length} leaders now`);
    if (leader.name !== before.leader) {
      const base = PatroniApi.baseOf(leader) ?? api.baseUrl();
      await postSwitchover(ctx, api, `${base}/switchover`, { leader: leader.name, candidate: before.leader });
    }
    const waitMs = waitMsOf(step);
    await settle(
      ctx,
      api,
      { leader: before.leader, replica: leader.name === before.leader ? before.candidate : leader.name },
      { deadline: Date.now() + waitMs, timeoutMs: waitMs },
    );
  },
});
