import path from 'node:path';
import type { CommandModule } from 'yargs';
import { findRun, journalKeyFromEnv, runsDir, verifyJournal } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { withJson, withRunId, withStateDir } from '../options.js';

interface AuditArgs {
  runId: string | undefined;
  last: boolean;
  json: boolean;
  head: string | undefined;
  'state-dir': string;
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
          withJson(withStateDir(withRunId(v))).option('head', {
            type: 'string',
            describe: 'the head hash recorded elsewhere (ticket, report): the journal must end exactly there',
          }) as never,
        handler: (args) => {
          const id = findRun(args['state-dir'], args.runId);
          const key = journalKeyFromEnv();
          const result = verifyJournal(path.join(runsDir(args['state-dir']), id), { key, head: args.head });
          if (args.json) io.out(JSON.stringify({ runId: id, ...result }, null, 2));
          else if (result.ok) {
            const anchored = args.head !== undefined ? ', ends exactly at the given head' : '';
            io.out(`run ${id}: journal verifies: ${result.records} records, head ${result.head} (${result.chain} chain${anchored})`);
          } else {
            io.err(`run ${id}: journal does NOT verify:`);
            for (const p of result.problems) io.err(`  line ${p.line}: ${p.problem}`);
          }
          process.exitCode = result.ok ? ExitCode.ok : ExitCode.needsAttention;
        },
      })
      .demandCommand(1),
  handler: () => {},
};
