/**
 * `cutover fleet plan|run|resume|status|approve <inventory> <runbook>`: one
 * runbook across the inventory's targets, wave by wave, in this process
 * (`--jobs N`). Prints; the library (src/fleet/) decides.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv, CommandModule } from 'yargs';
import {
  FleetAlreadyStartedError,
  FleetBusyError,
  UsageError,
  approveFleet,
  buildReport,
  fleetLog,
  runsDir,
  fleetStatus,
  formatDuration,
  inventoryJsonSchema,
  journalKeyFromEnv,
  loadInventory,
  planFleet,
  registry,
  queueFleetStore,
  redactUrl,
  rollbackFleet,
  runFleet,
  runFleetOnQueue,
  startQueueWorker,
  takeoverBoundSeconds,
  type CellStatus,
  type FleetStore,
  type PgFleetStore,
  type QueueTiming,
  type FleetEvent,
  type FleetPlan,
  type FleetRunResult,
  type FleetStatus,
} from '../../index.js';
import { makeDirs, suggest } from '../../runbooks.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { withJson, withStateDir, type ArgsOf } from '../options.js';
import { reportHtml } from '../report/html.js';
import { table } from '../table.js';
import { fleetReportHtml } from '../report/fleet-html.js';

const positionals = <T>(y: Argv<T>) =>
  withStateDir(y)
    .positional('inventory', { type: 'string', demandOption: true, describe: 'the inventory file (targets, waves)' })
    .positional('runbook', { type: 'string', demandOption: true, describe: 'the runbook every target runs' });

const withJobs = <T>(y: Argv<T>) =>
  y.option('jobs', {
    alias: 'j',
    type: 'number',
    describe:
      "targets planned or run at once in this process (default 1); with --queue, jobs queued at once (default: no limit but the waves' and the workers')",
  });

function jobsOf(args: { readonly jobs: number | undefined }, fallback = 1): number {
  if (args.jobs === undefined) return fallback;
  if (!Number.isInteger(args.jobs) || args.jobs < 1) throw new UsageError(`--jobs: expected a whole number of at least 1, got ${args.jobs}`);
  return args.jobs;
}

/** Queue mode's options; the URL may come from CUTOVER_QUEUE_URL (a Kubernetes Secret, say) so it stays off command lines. */
const withQueue = <T>(y: Argv<T>) =>
  y
    .option('queue', {
      type: 'string',
      describe: 'run on the PostgreSQL job queue at this URL (env CUTOVER_QUEUE_URL): workers take the targets (cutover fleet worker)',
      // Shown in --help by its name: the value may hold a password.
      ...(process.env['CUTOVER_QUEUE_URL'] !== undefined && process.env['CUTOVER_QUEUE_URL'] !== ''
        ? { default: process.env['CUTOVER_QUEUE_URL'], defaultDescription: '$CUTOVER_QUEUE_URL' }
        : {}),
    })
    .option('takeover-after', {
      type: 'number',
      default: 300,
      describe: 'queue: seconds a job may stay active (and a lease go without a heartbeat) before another worker takes the target over',
    })
    .option('maintenance-interval', { type: 'number', default: 30, describe: 'queue: seconds between looks for expired jobs' })
    .option('poll-interval', { type: 'number', default: 1, describe: "queue: seconds between an idle worker's asks for a job (at least 0.5)" })
    .option('retry-delay', { type: 'number', default: 1, describe: 'queue: seconds before a failed or expired job is offered again' });

/** Each subcommand's options; its handler's arguments are typed from its builder (ArgsOf), never written by hand. */
/** plan: the files, --jobs, --json; in this process. */
const localBuilder = (y: Argv) => withJson(withJobs(positionals(y)));
/** run, resume and rollback: the same, on the queue with --queue. */
const runBuilder = (y: Argv) => withQueue(withJson(withJobs(positionals(y))));
const statusBuilder = (y: Argv) =>
  withQueue(withJson(positionals(y))).option('watch', {
    type: 'boolean',
    default: false,
    describe: 'while the fleet runs, show the matrix again whenever it changes (redrawn on a terminal)',
  });
const approveBuilder = (y: Argv) =>
  withQueue(positionals(y))
    .positional('name', { type: 'string', demandOption: true, describe: 'a wave or a target' })
    .option('step', { type: 'string', describe: 'only this confirm step (no wave gate)' });
const reportBuilder = (y: Argv) =>
  withQueue(positionals(y)).option('out', {
    type: 'string',
    default: 'fleet-report.html',
    describe: 'the page; target reports go beside it in <name>-targets/',
  });
const workerBuilder = (y: Argv) =>
  withQueue(y)
    .option('concurrency', { type: 'number', default: 1, describe: 'targets this worker runs at once' })
    .check((a) => {
      if (a.queue === undefined) throw new UsageError('fleet worker needs --queue <postgres-url> (or CUTOVER_QUEUE_URL)');
      return true;
    });
const schemaBuilder = (y: Argv) => y.option('out', { type: 'string', describe: 'write it to this file instead' });

type QueueArgs = ArgsOf<(y: Argv) => ReturnType<typeof withQueue<object>>>;
type RunArgs = ArgsOf<typeof runBuilder>;

/** A subcommand whose handler's arguments are inferred from its builder. */
const subcommand = <Args>(module: CommandModule<object, Args>): CommandModule<object, Args> => module;

function timingOf(args: QueueArgs): QueueTiming {
  return {
    takeoverAfterSeconds: args['takeover-after'],
    maintenanceSeconds: args['maintenance-interval'],
    pollingSeconds: args['poll-interval'],
    retryDelaySeconds: args['retry-delay'],
  };
}

/** The fleet store: the queue's database with --queue, files under --state-dir otherwise. Close with the returned function. */
function storeFor(
  args: { readonly queue: string | undefined; readonly runbook: string; readonly 'takeover-after': number },
  inventory: ReturnType<typeof loadInventory>,
): { store?: FleetStore; close: () => void } {
  if (args.queue === undefined) return { close: () => {} };
  const store: PgFleetStore = queueFleetStore(args.queue, inventory, args.runbook, args['takeover-after']);
  return {
    store,
    close: () => {
      store.dispose();
      store.db.close();
    },
  };
}

// ------------------------------------------------------------------ output

const color = () => process.stdout.isTTY && process.env['NO_COLOR'] === undefined;
const red = (text: string) => (color() ? `\x1b[1;31m${text}\x1b[0m` : text);
const yellow = (text: string) => (color() ? `\x1b[33m${text}\x1b[0m` : text);

const CELL: Record<CellStatus, string> = {
  ok: 'ok',
  blocked: 'BLOCKED',
  failed: 'FAILED',
  'not-planned': '-',
  pending: '-',
  planned: 'planned',
  applying: 'applying',
  applied: 'applied',
  completed: 'done',
  'rolling-back': 'undoing',
  'rolled-back': 'undone',
  'rollback-failed': 'UNDO-FAILED',
  'rollback-skipped': 'kept',
  waiting: 'WAITING',
};
const LOUD = new Set(['BLOCKED', 'FAILED', 'UNDO-FAILED', 'needs-attention', 'failed', 'unreadable', 'refused', 'error']);

/** Targets x steps: the one table renderer pads by terminal width, which colour codes do not take, so cells are coloured first. */
function matrix(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const paint = (cell: string) => (LOUD.has(cell) ? red(cell) : cell === 'WAITING' || cell === 'waiting-approval' ? yellow(cell) : cell);
  return table(
    head,
    rows.map((r) => r.map(paint)),
  );
}

function waveCounts(waves: readonly { name: string; targets: readonly string[] }[]): string {
  return waves.map((w) => `${w.name} ${w.targets.length}`).join(', ');
}

function formatPlan(plan: FleetPlan): string {
  const rows = plan.targets.map((t) => [t.name, t.wave, t.status === 'planned' ? 'ready' : t.status, ...t.steps.map((s) => CELL[s.status])]);
  const lines = [`Plan of ${plan.runbook} on ${plan.summary.targets} targets (nothing was changed):`, matrix(['target', 'wave', 'plan', ...plan.steps], rows)];
  const problems = plan.targets.flatMap((t) => [
    ...(t.error !== undefined ? [`  ${t.name}: ${t.error}`] : []),
    ...t.steps.flatMap((s) => s.reasons.map((r) => `  ${t.name} ${s.id}: ${r}`)),
  ]);
  if (problems.length > 0) lines.push('', red('Blockers and failures:'), ...problems);
  lines.push(
    '',
    `Summary: ${plan.summary.targets} targets in ${plan.waves.length} wave(s) (${waveCounts(plan.waves)}): ${plan.summary.planned} ready, ${plan.summary.blocked} blocked, ${plan.summary.failed} failed to plan`,
  );
  return lines.join('\n');
}

export function formatStatus(status: FleetStatus): string {
  const rows = status.targets.map((t) => [t.name, t.wave, t.status, ...status.steps.map((id) => CELL[t.steps[id] ?? 'pending'])]);
  const waves = status.waves.map((w) => `${w.name} (${w.targets.length}): ${w.status}`).join(', ');
  const lines = [
    `fleet ${status.name}, runbook ${status.runbook}`,
    `state: ${status.location}${status.runningPid !== undefined ? `; running now (pid ${status.runningPid})` : status.lastOutcome !== undefined ? `; last ${status.lastCommand ?? 'run'}: ${status.lastOutcome}` : ''}`,
    `waves: ${waves}`,
    matrix(['target', 'wave', 'status', ...status.steps], rows),
  ];
  const notes = status.targets.flatMap((t) => [
    ...(t.waiting !== undefined ? [`  ${t.name} waits at ${t.waiting.stepId}: ${t.waiting.question}`] : []),
    ...(t.message !== undefined && t.status !== 'succeeded' ? [`  ${t.name}: ${t.message.replace(/\n/g, '\n    ')}`] : []),
  ]);
  if (notes.length > 0) lines.push('', ...notes);
  lines.push(
    '',
    `Summary: ${Object.entries(status.summary)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}`,
  );
  return lines.join('\n');
}

/** A message of several lines (a plan's blockers) stays under its target. */
const indented = (text: string) => text.replace(/\n/g, '\n      ');

function progressLine(event: FleetEvent, approveHint: (name: string) => string, what: string): string | undefined {
  switch (event.type) {
    case 'fleet.started':
      return `fleet ${event.command}: ${what}, --jobs ${event.jobs}`;
    case 'wave.waiting':
      return yellow(`wave ${event.wave} waits for approval: ${approveHint(event.wave)}`);
    case 'wave.approved':
      return `wave ${event.wave} approved by ${event.operator}`;
    case 'wave.started':
      return `wave ${event.wave}: started`;
    case 'wave.finished':
      return event.outcome === 'halted'
        ? red(`wave ${event.wave}: HALTED: ${event.failures} failed, ${event.allowed} allowed (maxFailures); no new target starts`)
        : `wave ${event.wave}: ${event.outcome} (${event.failures} failed, ${event.allowed} allowed)`;
    case 'target.started':
      return `  ${event.target}: ${event.action === 'resume' ? 'resuming' : 'started'} run ${event.runId}`;
    case 'target.waiting':
      return yellow(
        `  ${event.target}: waits at step "${event.stepId}": ${event.question}\n    approve: ${approveHint(event.target)} (or the wave, or --step ${event.stepId})`,
      );
    case 'target.approved':
      return `  ${event.target}: step "${event.stepId}" approved (${event.approval}, by ${event.operator})`;
    case 'target.finished': {
      const text = `  ${event.target}: ${event.status}${event.durationMs > 0 ? ` [${formatDuration(event.durationMs)}]` : ''}${event.message !== undefined && event.status !== 'succeeded' ? `: ${indented(event.message)}` : ''}`;
      return event.status === 'succeeded' ? text : red(text);
    }
    case 'fleet.finished':
    case 'rollback.started':
    case 'rollback.finished':
      return undefined;
  }
}

const OUTCOME_CODE: Record<FleetRunResult['outcome'], number> = {
  succeeded: ExitCode.ok,
  'completed-with-failures': ExitCode.rolledBack,
  halted: ExitCode.stopped,
  stopped: ExitCode.stopped,
  'needs-attention': ExitCode.needsAttention,
};

/** Exit code of a second Ctrl-C: out at once. */
const EXIT_AT_ONCE = 130;

async function runOrResume(args: RunArgs, command: 'run' | 'resume'): Promise<number> {
  const jobs = jobsOf(args, args.queue !== undefined ? 1000 : 1);
  const inventory = loadInventory(args.inventory);
  io.protect(inventory.targets.flatMap((t) => Object.values(t.secrets)));
  const controller = new AbortController();
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received > 1) {
      io.err(`\n${signal} again: exiting now. Every journal is consistent; cutover fleet status shows where each target is.`);
      process.exit(EXIT_AT_ONCE);
    }
    io.err(
      args.queue !== undefined
        ? // The scheduler cannot reach into a worker: queued jobs are withdrawn, started ones run on (a worker's own Ctrl-C stops them).
          `\n${signal}: no new target is handed out and queued jobs are withdrawn; targets a worker already started run to their end (Ctrl-C in a worker stops its targets after the step in flight). Ctrl-C again to exit at once`
        : `\n${signal}: no new target starts; running targets stop after the step in flight (at once while waiting for approval). Ctrl-C again to exit at once`,
    );
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const what = `${inventory.targets.length} targets in ${inventory.waves.length} wave(s) (${waveCounts(inventory.waves)})`;
  // The queue's URL may hold a password: the hint names it, it does not print it.
  const hint = (name: string) =>
    `cutover fleet approve ${args.queue !== undefined ? '--queue <the same queue URL> ' : ''}${args.inventory} ${args.runbook} ${name}`;
  let result: FleetRunResult;
  try {
    const options = {
      registry,
      stateDir: args['state-dir'],
      jobs,
      signal: controller.signal,
      protect: (secrets: readonly string[]) => {
        io.protect(secrets);
      },
      ...(journalKeyFromEnv() !== undefined ? { journalKey: journalKeyFromEnv() as Buffer } : {}),
      onEvent: (event: FleetEvent) => {
        if (args.json) return;
        const line = progressLine(event, hint, what);
        if (line !== undefined) io.progress(line);
      },
    };
    if (args.queue !== undefined) {
      io.progress(`queue ${redactUrl(args.queue)}: a worker's death is taken over within ${takeoverBoundSeconds(timingOf(args))} s`);
      result = await runFleetOnQueue(inventory, args.runbook, command, { ...options, queue: { url: args.queue, ...timingOf(args) } });
    } else {
      result = await runFleet(inventory, args.runbook, command, options);
    }
  } catch (error) {
    if (error instanceof FleetBusyError || error instanceof FleetAlreadyStartedError) {
      io.err(error.message);
      return ExitCode.locked;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const { store, close } = storeFor(args, inventory);
  let status: FleetStatus;
  try {
    status = fleetStatus(inventory, args.runbook, { registry, stateDir: args['state-dir'], ...(store !== undefined ? { store } : {}) });
  } finally {
    close();
  }
  if (args.json) {
    io.out(JSON.stringify({ ...result, status }, null, 2));
    return OUTCOME_CODE[result.outcome];
  }
  io.out(`\n${formatStatus(status)}`);
  const next: Record<FleetRunResult['outcome'], string> = {
    succeeded: 'every target succeeded',
    'completed-with-failures': 'every wave ran; some targets failed within maxFailures (see above)',
    halted: `wave ${result.haltedWave ?? ''} went beyond maxFailures: ${
      args.queue !== undefined
        ? 'no target was handed out after that (a job a worker had fetched ahead may still have started: its line above says)'
        : 'no target started after that'
    }. Fix the failed targets, then: cutover fleet resume ${args.inventory} ${args.runbook}`,
    stopped: `running targets stopped at a safe point (journaled, resumable); no new target started. Continue: cutover fleet resume ${args.inventory} ${args.runbook}`,
    'needs-attention': needsAttention(result, status),
  };
  io.out(`\nfleet ${result.outcome}: ${next[result.outcome]}`);
  return OUTCOME_CODE[result.outcome];
}

/** Which targets need a person, why (their own message), and the command that shows each run. */
function needsAttention(result: FleetRunResult, status: FleetStatus): string {
  const lines = result.targets
    .filter((t) => t.status === 'needs-attention')
    .map((t) => {
      const where = status.targets.find((st) => st.name === t.name);
      const show = t.runId !== undefined && where !== undefined ? `; cutover status ${t.runId} --state-dir ${where.stateDir}` : '';
      return `  ${t.name}: ${(t.message ?? 'needs attention').split('\n')[0] ?? ''}${show}`;
    });
  return ['a target needs a person before the fleet can go on:', ...lines].join('\n');
}

const sub = {
  plan: subcommand({
    command: 'plan <inventory> <runbook>',
    describe: 'Plan every target (read-only, --jobs at a time): one matrix of targets x steps, blockers highlighted',
    builder: localBuilder,
    handler: async (args) => {
      const jobs = jobsOf(args);
      const inventory = loadInventory(args.inventory);
      io.protect(inventory.targets.flatMap((t) => Object.values(t.secrets)));
      const plan = await planFleet(inventory, args.runbook, {
        registry,
        stateDir: args['state-dir'],
        jobs,
        protect: (secrets) => {
          io.protect(secrets);
        },
      });
      if (args.json) io.out(JSON.stringify(plan, null, 2));
      else io.out(formatPlan(plan));
      process.exitCode = plan.summary.planned === plan.summary.targets ? ExitCode.ok : ExitCode.rolledBack;
    },
  }),
  run: subcommand({
    command: 'run <inventory> <runbook>',
    describe: 'Run the runbook on every target, wave by wave; each target is an ordinary run with its own journal',
    builder: runBuilder,
    handler: async (args) => {
      process.exitCode = await runOrResume(args, 'run');
    },
  }),
  resume: subcommand({
    command: 'resume <inventory> <runbook>',
    describe: 'Continue a stopped or halted fleet: succeeded targets are skipped, stopped ones resumed, rolled-back ones run again',
    builder: runBuilder,
    handler: async (args) => {
      process.exitCode = await runOrResume(args, 'resume');
    },
  }),
  status: subcommand({
    command: 'status <inventory> <runbook>',
    describe: 'Where every target stands, from the journals (needs no secret, no database)',
    builder: statusBuilder,
    handler: async (args) => {
      const inventory = loadInventory(args.inventory, { resolveSecrets: false });
      const key = journalKeyFromEnv();
      const { store, close } = storeFor(args, inventory);
      try {
        const read = () =>
          fleetStatus(inventory, args.runbook, {
            registry,
            stateDir: args['state-dir'],
            ...(key !== undefined ? { journalKey: key } : {}),
            ...(store !== undefined ? { store } : {}),
          });
        if (!args.watch) {
          const status = read();
          io.out(args.json ? JSON.stringify(status, null, 2) : formatStatus(status));
          return;
        }
        // Until the fleet's process is gone: a compact redraw on a terminal, a new block per change otherwise.
        let last = '';
        for (;;) {
          const status = read();
          const text = args.json ? JSON.stringify(status) : formatStatus(status);
          if (text !== last) {
            if (process.stdout.isTTY && !args.json) process.stdout.write('\x1b[H\x1b[2J');
            io.out(args.json || last === '' || process.stdout.isTTY ? text : `\n${text}`);
            last = text;
          }
          if (status.runningPid === undefined) return;
          await sleep(1_000);
        }
      } finally {
        close();
      }
    },
  }),
  approve: subcommand({
    command: 'approve <inventory> <runbook> <name>',
    describe: "Approve a wave (its gate and its targets' confirm steps) or a target (its confirm steps)",
    builder: approveBuilder,
    handler: (args) => {
      const inventory = loadInventory(args.inventory, { resolveSecrets: false });
      const { store, close } = storeFor(args, inventory);
      let approval;
      try {
        approval = approveFleet(inventory, args.runbook, args.name, {
          registry,
          stateDir: args['state-dir'],
          ...(args.step !== undefined ? { step: args.step } : {}),
          ...(store !== undefined ? { store } : {}),
        });
      } finally {
        close();
      }
      const what = inventory.waves.some((w) => w.name === args.name) ? `wave ${args.name}` : `target ${args.name}`;
      io.out(
        `approved ${what}${approval.step !== undefined ? `, step ${approval.step}` : ''} as ${approval.operator} at ${approval.at}; a running fleet picks it up within a second, one started or resumed later finds it`,
      );
      // Seen in use: --step on a wave answers its confirms but leaves its gate shut, which surprised.
      const first = inventory.waves[0]?.name;
      if (approval.step !== undefined && what.startsWith('wave') && inventory.approval === 'between-waves' && args.name !== first) {
        io.out(`the wave's gate stays closed: open it with cutover fleet approve ${args.inventory} ${args.runbook} ${args.name}`);
      }
    },
  }),
  report: subcommand({
    command: 'report <inventory> <runbook>',
    describe: "One HTML page for the fleet (summary, waves, every target's outcome), linking each target's own report",
    builder: reportBuilder,
    handler: (args) => {
      const inventory = loadInventory(args.inventory, { resolveSecrets: false });
      const key = journalKeyFromEnv();
      const { store, close } = storeFor(args, inventory);
      try {
        const options = { registry, stateDir: args['state-dir'], ...(key !== undefined ? { journalKey: key } : {}), ...(store !== undefined ? { store } : {}) };
        const status = fleetStatus(inventory, args.runbook, options);
        const folder = `${path.basename(args.out).replace(/\.html?$/i, '')}-targets`;
        const links = new Map<string, string>();
        for (const t of status.targets) {
          if (t.runId === undefined || t.status === 'unreadable') continue;
          makeDirs(path.join(path.dirname(args.out), folder));
          const file = `${folder}/${t.name}.html`;
          io.writeFile(path.join(path.dirname(args.out), file), reportHtml(buildReport(path.join(runsDir(t.stateDir), t.runId), { key })));
          links.set(t.name, file);
        }
        io.writeFile(args.out, fleetReportHtml(status, fleetLog(inventory, args.runbook, options), links));
        io.out(`wrote ${args.out} and ${links.size} target report(s) in ${path.join(path.dirname(args.out), folder)}`);
      } finally {
        close();
      }
    },
  }),
  rollback: subcommand({
    command: 'rollback <inventory> <runbook>',
    describe:
      "Roll back every target's newest run, the last wave first (the canary last), --jobs at a time in this process; with --queue, from the journals in the queue database",
    builder: runBuilder,
    handler: async (args) => {
      const inventory = loadInventory(args.inventory);
      io.protect(inventory.targets.flatMap((t) => Object.values(t.secrets)));
      const controller = new AbortController();
      const onSignal = () => {
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      const { store, close } = storeFor(args, inventory);
      let results;
      try {
        const key = journalKeyFromEnv();
        results = await rollbackFleet(inventory, args.runbook, {
          registry,
          stateDir: args['state-dir'],
          ...(store !== undefined ? { store } : {}),
          jobs: jobsOf(args),
          signal: controller.signal,
          protect: (secrets) => {
            io.protect(secrets);
          },
          ...(key !== undefined ? { journalKey: key } : {}),
          onTarget: (r) => {
            if (args.json) return;
            const line = `  ${r.name} (${r.wave}): ${r.status}${r.runId !== undefined ? ` run ${r.runId}` : ''}${r.message !== undefined ? `: ${indented(r.message)}` : ''}`;
            io.progress(r.status === 'rolled-back' || r.status === 'nothing-to-undo' ? line : red(line));
          },
        });
      } catch (error) {
        if (error instanceof FleetBusyError) {
          io.err(error.message);
          process.exitCode = ExitCode.locked;
          return;
        }
        throw error;
      } finally {
        process.off('SIGINT', onSignal);
        close();
      }
      if (args.json) io.out(JSON.stringify(results, null, 2));
      const count = (s: string) => results.filter((r) => r.status === s).length;
      if (!args.json)
        io.out(
          `fleet rollback: ${[
            `${count('rolled-back')} rolled back`,
            `${count('nothing-to-undo')} had nothing to undo`,
            // A step that cannot be undone, or whose undo failed: each target's line says what it undid and what is left.
            ...(count('needs-attention') > 0 ? [`${count('needs-attention')} need attention (see each above)`] : []),
            `${results.length - count('rolled-back') - count('nothing-to-undo') - count('needs-attention')} not rolled back`,
          ].join(', ')}`,
        );
      process.exitCode = results.some((r) => r.status === 'needs-attention')
        ? ExitCode.needsAttention
        : results.every((r) => r.status === 'rolled-back' || r.status === 'nothing-to-undo') && results.length === inventory.targets.length
          ? ExitCode.ok
          : ExitCode.stopped;
    },
  }),
  worker: subcommand({
    command: 'worker',
    describe: 'Take target jobs from the queue (--queue) until stopped; run any number, on any machines that see the inventory, the runbook and the targets',
    builder: workerBuilder,
    handler: async (args) => {
      const key = journalKeyFromEnv();
      const worker = await startQueueWorker({
        url: args.queue as string,
        ...timingOf(args),
        registry,
        concurrency: args.concurrency,
        protect: (secrets) => {
          io.protect(secrets);
        },
        ...(key !== undefined ? { journalKey: key } : {}),
        log: (line) => {
          io.progress(line);
        },
      });
      const onSignal = (signal: NodeJS.Signals) => {
        io.err(`${signal}: taking no new job; running targets stop after the step in flight and go back to the queue`);
        void worker.stop();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      await worker.stopped;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  }),
  schema: subcommand({
    command: 'schema',
    describe: 'Print the JSON Schema of the inventory format',
    builder: schemaBuilder,
    handler: (args) => {
      const text = `${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`;
      if (args.out !== undefined) {
        writeFileSync(args.out, text);
        io.out(`wrote ${args.out}`);
      } else io.out(text);
    },
  }),
};

const DESCRIBE = 'One runbook across many databases: waves, maxFailures, approvals (see README, Fleet)';
const FLEET_COMMANDS = Object.values(sub).map((c) => String(c.command).split(' ')[0] ?? '');

export const fleetCommand: CommandModule = {
  // [command] and [rest..]: an unknown fleet command reaches the handler below, not yargs' "Unknown arguments" about what follows it.
  command: 'fleet [command] [rest..]',
  describe: DESCRIBE,
  builder: (y) =>
    y
      .usage(`$0 fleet <command>\n\n${DESCRIBE}`)
      .command(sub.plan)
      .command(sub.run)
      .command(sub.resume)
      .command(sub.status)
      .command(sub.approve)
      .command(sub.report)
      .command(sub.rollback)
      .command(sub.worker)
      .command(sub.schema),
  handler: (args) => {
    const named = args['command'];
    throw new UsageError(
      typeof named === 'string'
        ? `no fleet command "${named}"${suggest(named, FLEET_COMMANDS)}; the fleet commands: ${FLEET_COMMANDS.join(', ')}`
        : `name a fleet command: ${FLEET_COMMANDS.join(', ')} (cutover fleet --help)`,
    );
  },
};
