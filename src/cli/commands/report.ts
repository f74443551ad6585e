import path from 'node:path';
import type { CommandModule } from 'yargs';
import { UsageError, buildReport, compareRuns, findRun, listRuns, runsDir, journalKeyFromEnv, trustJournal } from '../../index.js';
import { ExitCode } from '../exit-codes.js';
import { io } from '../io.js';
import { tableLines } from '../table.js';
import { withJson, withStateDir } from '../options.js';
import { comparisonHtml, reportHtml } from '../report/html.js';
import { comparisonMarkdown, reportMarkdown } from '../report/markdown.js';

interface ReportArgs {
  runIds: string[] | undefined;
  compare: boolean;
  format: 'md' | 'html' | 'json';
  out: string | undefined;
  'slower-than': number;
  'state-dir': string;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report [runIds..]',
  describe: 'A run for change review (Markdown, one self-contained HTML page, or JSON), or --compare rehearsals',
  builder: (y) =>
    withStateDir(y)
      .positional('runIds', { type: 'string', array: true, describe: 'run id(s); default: the newest run' })
      .option('compare', { type: 'boolean', default: false, describe: 'compare the given runs step by step' })
      .option('format', {
        choices: ['md', 'html', 'json'] as const,
        default: 'md' as const,
        describe: 'md for the change ticket, html for one self-contained page (phone and print), json for programs',
      })
      .example('$0 report --format html --out report.html', 'the newest run as one HTML page')
      .example('$0 report --compare <run1> <run2>', 'two rehearsals step by step, with the projected window')
      .option('out', { type: 'string', describe: 'write to this file instead of standard output' })
      .option('slower-than', { type: 'number', default: 20, describe: 'with --compare: flag steps slower by more than this percentage' }),
  handler: (args) => {
    const stateDir = args['state-dir'];
    const ids = args.runIds?.length ? args.runIds : [findRun(stateDir, undefined)];
    const key = journalKeyFromEnv();
    const reports = ids.map((given) => {
      const id = findRun(stateDir, given);
      const runDir = path.join(runsDir(stateDir), id);
      trustJournal(runDir, id, key);
      return buildReport(runDir, { key });
    });
    let output: string;
    if (args.compare) {
      if (reports.length < 2) throw new UsageError('--compare needs at least two run ids');
      const comparison = compareRuns(reports);
      const threshold = args['slower-than'] / 100;
      output =
        args.format === 'json'
          ? JSON.stringify(comparison, null, 2)
          : args.format === 'html'
            ? comparisonHtml(comparison, threshold)
            : comparisonMarkdown(comparison, threshold);
    } else {
      if (reports.length !== 1) throw new UsageError('one run id at a time, or --compare');
      const report = reports[0];
      if (report === undefined) throw new UsageError('no run');
      output = args.format === 'json' ? JSON.stringify(report, null, 2) : args.format === 'html' ? reportHtml(report) : reportMarkdown(report);
    }
    if (args.out !== undefined) {
      io.writeFile(args.out, output);
      io.err(`report written to ${args.out}`);
    } else io.out(output);
    process.exitCode = ExitCode.ok;
  },
};

interface RunsArgs {
  json: boolean;
  all: boolean;
  label: string | undefined;
  environment: string | undefined;
  'state-dir': string;
}

export const runsCommand: CommandModule<object, RunsArgs> = {
  command: 'runs',
  describe: 'List past runs, newest first: id, label, environment, runbook, start, outcome, duration',
  builder: (y) =>
    withJson(withStateDir(y))
      .option('all', { type: 'boolean', default: false, describe: 'also list plans (dry runs) and runs refused before any step ran' })
      .option('label', { type: 'string', describe: 'only runs with this label (cutover run --label)' })
      .option('environment', { type: 'string', describe: 'only runs in this environment (cutover run --environment)' })
      .example('$0 runs --environment staging', 'the staging rehearsals'),
  handler: (args) => {
    const every = listRuns(args['state-dir']);
    // Plans and refused runs never got past planning: dozens of them would hide the runs that did something.
    const runs = every.filter(
      (r) =>
        (args.all || (r.mode === 'run' && r.status !== 'refused')) &&
        (args.label === undefined || r.label === args.label) &&
        (args.environment === undefined || r.environment === args.environment),
    );
    const hidden = every.length - runs.length;
    const note =
      !args.all && hidden > 0
        ? `(${hidden} more not shown: plans, refused runs${args.label !== undefined || args.environment !== undefined ? ', other labels or environments' : ''}; --all lists plans and refused runs)`
        : '';
    if (args.json) io.out(JSON.stringify(runs, null, 2));
    else if (runs.length === 0) io.out(every.length === 0 ? 'no runs yet' : `no run matches ${note}`);
    else {
      const rows = runs.map((r) => [
        r.runId,
        r.mode,
        r.label ?? '',
        r.environment ?? '',
        r.runbook,
        r.startedAt,
        r.status,
        r.durationMs === undefined ? '' : `${(r.durationMs / 1000).toFixed(1)}s`,
      ]);
      const head = ['run', 'mode', 'label', 'environment', 'runbook', 'started', 'outcome', 'duration'];
      for (const line of tableLines(head, rows, { indent: '' })) io.out(line);
      if (note !== '') io.out(note);
    }
    process.exitCode = ExitCode.ok;
  },
};
