import type { Argv, CommandModule } from 'yargs';
import { loadRunState, pickRun, previewRollback, registry, resumeRun, rollbackRun, type RollbackPreview, type RunResult } from '../../index.js';
import { formatPlan } from '../format-plan.js';
import { formatSerialized } from '../format-error.js';
import { io } from '../io.js';
import { ExitCode } from '../exit-codes.js';
import { withJson, withRunId, withStateDir, withYes, type ArgsOf } from '../options.js';
import { runWithUi } from '../ui.js';

const builder = (y: Argv) =>
  withJson(withYes(withStateDir(withRunId(y)))).option('notify', {
    type: 'string',
    array: true,
    describe: "webhook URL(s) to POST run events to, besides the runbook's notify:",
  });

const rollbackBuilder = (y: Argv) =>
  builder(y)
    .option('force', {
      type: 'boolean',
      default: false,
      describe: 'restore even where a step refuses (e.g. sequence values consumed since the run); read why first',
    })
    .option('dry-run', {
      type: 'boolean',
      default: false,
      describe: 'print what the rollback would do (statements, irreversible steps and why), read-only; change nothing',
    })
    .example('$0 rollback --dry-run --last', 'what undoing the newest run would do')
    .example('$0 rollback 20260301T020000Z-ab12', 'undo that run');

type ResumeArgs = ArgsOf<typeof builder>;
type RollbackArgs = ArgsOf<typeof rollbackBuilder>;

async function reopen(args: ResumeArgs & Partial<RollbackArgs>, command: 'resume' | 'rollback'): Promise<{ result: RunResult; code: number }> {
  const picked = pickRun(args['state-dir'], args.runId, command);
  if (args.runId === undefined) io.err(`${command}: run ${picked.runId}: ${picked.reason}`);
  const { state } = loadRunState(picked.runId, args['state-dir']);
  const call = command === 'resume' ? resumeRun : rollbackRun;
  // Reopen the run loadRunState found, so --last means the same run for both.
  // Steps already done stay off the live list; it shows what this command will do.
  const remaining = state.order.filter((id) => state.steps.get(id)?.status !== 'completed');
  return runWithUi(command, remaining, args.json, (hooks) =>
    call(state.runId, {
      registry,
      stateDir: args['state-dir'],
      yes: args.yes,
      force: args.force ?? false,
      ...(args.notify !== undefined ? { notify: args.notify } : {}),
      ...hooks,
    }),
  );
}

export const resumeCommand: CommandModule<object, ResumeArgs> = {
  command: 'resume [runId]',
  describe: 'Continue a stopped or crashed run from its journal; no completed step runs twice',
  builder,
  handler: async (args) => {
    process.exitCode = (await reopen(args, 'resume')).code;
  },
};

export const rollbackCommand: CommandModule<object, RollbackArgs> = {
  command: 'rollback [runId]',
  describe: "Undo a run's applied steps, newest first, from their recorded before-state",
  builder: rollbackBuilder,
  handler: async (args) => {
    if (args['dry-run']) {
      const picked = pickRun(args['state-dir'], args.runId, 'rollback');
      if (args.runId === undefined) io.err(`rollback --dry-run: run ${picked.runId}: ${picked.reason}`);
      const preview = await previewRollback(picked.runId, {
        registry,
        stateDir: args['state-dir'],
        force: args.force,
        protect: (secrets) => {
          io.protect(secrets);
        },
      });
      io.out(args.json ? JSON.stringify(preview, null, 2) : formatPreview(preview, args.force));
      process.exitCode = ExitCode.ok;
      return;
    }
    const { result, code } = await reopen(args, 'rollback');
    process.exitCode = result.status === 'rolled-back' ? ExitCode.ok : code;
  },
};

/** The preview as a person reads it: newest step first, as the rollback would go. */
export function formatPreview(preview: RollbackPreview, force = false): string {
  const lines = [`Rollback of run ${preview.runId} would (nothing was changed):`];
  if (preview.steps.length === 0) lines.push('  nothing: no step of this run is applied');
  preview.steps.forEach((s, i) => {
    const head = `${String(i + 1).padStart(2)}. ${s.id} [${s.kind}]`;
    const flying = s.inFlight === true ? ' (in flight when its process stopped: first finds out whether it took effect)' : '';
    if (s.action === 'irreversible') lines.push(`${head} IRREVERSIBLE, left as it is: ${s.reason ?? ''}${flying}`);
    else if (s.action === 'nothing-to-undo') lines.push(`${head} skipped: ${s.reason ?? 'nothing to undo'}${flying}`);
    else {
      lines.push(`${head} undo${flying}${s.plan === undefined && s.reason !== undefined ? `: ${s.reason}` : ''}`);
      if (s.plan !== undefined) lines.push(...formatPlan(s.plan).map((l) => `      ${l.split('\n').join('\n      ')}`));
      if (s.error !== undefined)
        lines.push(
          ...formatSerialized(s.error)
            .split('\n')
            .map((l) => `      ! could not preview: ${l}`),
        );
    }
  });
  if (preview.outcome === 'needs-attention') {
    const why = preview.steps.flatMap((s) =>
      s.action === 'irreversible'
        ? [`${s.id} cannot be rolled back (${s.reason ?? ''})`]
        : (s.plan?.blockers?.length ?? 0) > 0
          ? [`${s.id}'s rollback would refuse part of its undo (above)`]
          : [],
    );
    lines.push('', `It would end needs-attention (exit 3): ${why.join('; ')}.`);
  } else if (preview.outcome === 'rolled-back') lines.push('', 'It would end rolled-back, if every undo succeeds.');
  lines.push(`To do it: cutover rollback ${preview.runId}${force ? ' --force' : ''}`);
  return lines.join('\n');
}
