import path from 'node:path';
import type { CommandModule } from 'yargs';
import { findRun, journalKeyFromEnv, openQueueJournals, runsDir, verifyJournal, verifyStoredJournal, UsageError, type VerifyResult } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { withJson, withRunId, withStateDir } from '../options.js';

interface AuditArgs {
  runId: string | undefined;
  last: boolean;
  json: boolean;
  head: string | undefined;
  verbose: boolean;
  'state-dir': string;
  queue: string | undefined;
  fleet: string | undefined;
  target: string | undefined;
}

/** A journal kept in a fleet's queue database (queue mode): same bytes, same check. */
function verifyInQueue(args: AuditArgs, queue: string, key: Buffer | undefined): { id: string; result: VerifyResult } {
  if (args.fleet === undefined || args.target === undefined) throw new UsageError('--queue needs --fleet <inventory name>/<runbook name> and --target <name>');
  const { journals, close } = openQueueJournals(queue, args.fleet, args.target);
  try {
    const ids = journals.runIds();
    const id = args.runId ?? ids.at(-1);
    if (id === undefined || !ids.includes(id)) {
      throw new UsageError(
        `no run ${args.runId !== undefined ? `"${args.runId}" ` : ''}in ${journals.location}${ids.length > 0 ? ` (newest: ${ids.at(-1)})` : ''}`,
      );
    }
    return { id, result: verifyStoredJournal(journals, id, { key, head: args.head }) };
  } finally {
    close();
  }
}

export const auditCommand: CommandModule = {
  command: 'audit <command>',
  describe: 'Check the tamper-evident journal of a run',
  builder: (y) =>
    y
      .command<AuditArgs>({
        command: 'verify [runId]',
        describe: "Re-compute every record's hash (HMAC with CUTOVER_JOURNAL_KEY) and link; fails on any changed, removed or reordered line",
        builder: (v) =>
          withJson(withStateDir(withRunId(v)))
            .option('head', {
              type: 'string',
              describe: 'the head hash recorded elsewhere (ticket, report): the journal must end exactly there',
            })
            .option('verbose', { type: 'boolean', default: false, describe: 'list every line that does not hold, not only the first break' })
            .option('queue', {
              type: 'string',
              describe:
                'the journal is in this fleet queue database (queue mode), not under --state-dir; with --fleet and --target, default $CUTOVER_QUEUE_URL',
            })
            .option('fleet', { type: 'string', describe: 'with --queue: the fleet, <inventory name>/<runbook file name without .yaml>' })
            .option('target', { type: 'string', describe: 'with --queue: the target whose run it is' })
            .example('$0 audit verify --last --head <hash from the ticket>', 'the newest journal, unchanged and ending where the ticket says'),
        handler: (args) => {
          const key = journalKeyFromEnv();
          let id: string;
          let result: VerifyResult;
          // --fleet and --target name a journal in a queue database: the URL may come from the environment, as for fleet commands.
          const inQueue = args.fleet !== undefined || args.target !== undefined;
          const queue = args.queue ?? (inQueue ? process.env['CUTOVER_QUEUE_URL'] || undefined : undefined);
          if (inQueue && queue === undefined) {
            throw new UsageError('--fleet and --target name a journal in a queue database: give --queue <postgres-url> (or CUTOVER_QUEUE_URL)');
          }
          if (queue !== undefined) ({ id, result } = verifyInQueue(args, queue, key));
          else {
            id = findRun(args['state-dir'], args.runId);
            result = verifyJournal(path.join(runsDir(args['state-dir']), id), { key, head: args.head });
          }
          if (args.json) io.out(JSON.stringify({ runId: id, ...result }, null, 2));
          else if (result.ok) {
            const anchored = args.head !== undefined ? ', ends exactly at the given head' : '';
            io.out(`run ${id}: journal verifies: ${result.records} records, head ${result.head} (${result.chain} chain${anchored})`);
          } else {
            io.err(`run ${id}: journal does NOT verify:`);
            if (args.verbose) for (const p of result.problems) io.err(`  line ${p.line}: ${p.problem}`);
            else io.err(summarise(result.problems, result.records));
          }
          process.exitCode = result.ok ? ExitCode.ok : ExitCode.needsAttention;
        },
      })
      .demandCommand(1),
  handler: () => {},
};

/**
 * The first break and what kind it is; the problems after it mostly follow
 * from it (one removed line shifts every sequence number after it), so they
 * are counted, not listed, unless --verbose.
 */
export function summarise(problems: readonly { readonly line: number; readonly problem: string }[], records: number): string {
  const first = problems[0];
  if (first === undefined) return '';
  const atFirst = problems.filter((p) => p.line === first.line).map((p) => p.problem);
  const sequence = atFirst.map((p) => /sequence number (\d+), expected (\d+)/.exec(p)).find((m) => m !== null);
  let kind: string;
  const everyHmac = problems.length > 1 && problems.every((p) => p.problem.includes('HMAC'));
  if (everyHmac) kind = 'no record matches its HMAC: the chain was rewritten without the key, or with another';
  else if (atFirst.some((p) => p.includes('does not match its'))) kind = 'the line was changed after it was written';
  else if (sequence && Number(sequence[1]) > Number(sequence[2])) kind = `${Number(sequence[1]) - Number(sequence[2])} line(s) before it were removed`;
  else if (sequence) kind = 'lines before it were repeated or reordered';
  else if (atFirst.some((p) => p.includes('link is broken'))) kind = 'the line before it was replaced or reordered';
  else kind = atFirst.join('; ');
  const what = atFirst.join('; ');
  const lines = [`  first break at line ${first.line}: ${kind}${kind === what ? '' : ` (${what})`}`];
  const later = problems.filter((p) => p.line !== first.line);
  if (later.length > 0) {
    const after = new Set(later.map((p) => p.line)).size;
    lines.push(`  ${after} later line(s) of ${records} do not hold either, most as a consequence of it (--verbose lists them)`);
  }
  return lines.join('\n');
}
