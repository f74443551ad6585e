/** Reports as Markdown: for the change ticket and for diffing rehearsals. */
import {
  describeFileEdit,
  describeWindow,
  displayCommand,
  formatDuration,
  formatPhases,
  type Action,
  type Comparison,
  type PlanTable,
  type RunReport,
  type StepReport,
  type WindowSize,
} from '../../index.js';

const ms = (value: number | null | undefined) => (value === null || value === undefined ? '–' : formatDuration(value));
/** `12.4s (plan 12.1s, apply 0.3s)`: the step's duration and what it was spent on. */
export const stepTime = (s: Pick<StepReport, 'phases'>): string => {
  const text = formatPhases(s.phases);
  if (text === undefined) return '–';
  const [total, parts] = text.split(': ');
  return `${total ?? ''} (${parts ?? ''})`;
};

/** The projected window as one phrase, with the measured one beside it. */
export function windowText(w: WindowSize | null): string {
  const projected = describeWindow(w, formatDuration) ?? 'no step is marked `window: true`';
  return w?.elapsedMs !== null && w?.elapsedMs !== undefined
    ? `${projected} (measured ${formatDuration(w.elapsedMs)} from the first window step's planning to the last one's end)`
    : projected;
}

const cell = (value: unknown) =>
  (value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value)).replaceAll('|', '\\|').replaceAll('\n', ' ');

/** One action as a reader sees it in a report: SQL with its connection and parameters, or the command line. */
export function actionText(a: Action): string {
  switch (a.type) {
    case 'sql':
      return `-- [${a.connection}]${a.params?.length ? ` params: ${JSON.stringify(a.params).slice(0, 300)}` : ''}\n${a.sql.trim()};`;
    case 'command':
      return `$ ${displayCommand(a.argv)}`;
    case 'prompt':
      return `? ${a.question}`;
    case 'file':
      return `-- rewrite ${a.path} (read with sha256 ${a.sha256})\n${a.edits.map((e) => `--   ${describeFileEdit(e)}`).join('\n')}`;
    case 'http':
      return `-- [${a.connection}] ${a.method} ${a.url}${a.body === undefined ? '' : ` ${JSON.stringify(a.body)}`}${a.then === undefined ? '' : `\n--   then ${a.then}`}`;
    case 'poll':
      return `-- [${a.connection}] poll every ${formatDuration(a.intervalMs)} for up to ${formatDuration(a.timeoutMs)}\n${a.sql.trim()};`;
  }
}

function table(t: PlanTable): string[] {
  return [
    `**${t.title}**`,
    '',
    `| ${t.columns.map((c) => c.title).join(' | ')} |`,
    `| ${t.columns.map((c) => (c.align === 'right' ? '---:' : '---')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${t.columns.map((c) => cell(r[c.key])).join(' | ')} |`),
    ...(t.footer ? ['', t.footer] : []),
    '',
  ];
}

/** Steps by status: `3 completed, 1 failed, 2 pending`. */
export function statusCounts(r: RunReport, label: (s: StepReport) => string = (s) => s.status): string {
  const counts = new Map<string, number>();
  for (const s of r.steps) counts.set(label(s), (counts.get(label(s)) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
}

/** The failed step and its cause, in one line (no internal error class names). */
export function failureText(r: RunReport): string | undefined {
  if (r.failure === undefined) return r.stopReason;
  const e = r.failure.error;
  return `${r.failure.stepId} (${r.failure.phase}): ${e.message}${e.sqlstate ? ` (SQLSTATE ${e.sqlstate})` : ''}${e.hint ? `; hint: ${e.hint}` : ''}`;
}

export function reportMarkdown(r: RunReport): string {
  const failure = failureText(r);
  const lines = [
    `# ${r.runbook.name}: run ${r.runId}`,
    '',
    `**${r.status}**${failure !== undefined ? `: ${failure.replaceAll('\n', ' ')}` : ''}`,
    '',
    `- window: ${windowText(r.window)}`,
    `- steps: ${statusCounts(r)}`,
    `- ${r.runbook.ticket ? `ticket ${r.runbook.ticket}, ` : ''}run by ${r.operator} on ${r.host}, ${r.startedAt} to ${r.finishedAt ?? '(not finished)'}`,
    '',
    `| | |`,
    `| --- | --- |`,
    `| outcome | **${r.status}** (${r.mode}) |`,
    ...(r.runbook.ticket ? [`| ticket | ${cell(r.runbook.ticket)} |`] : []),
    ...(r.label ? [`| label | ${cell(r.label)} |`] : []),
    ...(r.environment ? [`| environment | ${cell(r.environment)} |`] : []),
    `| runbook | ${cell(r.runbook.file)} |`,
    `| sha256 | \`${r.runbook.sha256}\` |`,
    `| operator | ${cell(r.operator)} on ${cell(r.host)} |`,
    `| tool | cutover ${r.toolVersion} |`,
    `| started | ${r.startedAt} |`,
    `| finished | ${r.finishedAt ?? '(not finished)'} |`,
    `| journal | ${r.chain.ok ? 'hash chain verifies' : `**does not verify**: ${r.chain.problems.join('; ')}`}; head \`${r.chain.head}\` |`,
    '',
    '## Steps',
    '',
    '| step | status | duration | attempts | rollback |',
    '| --- | --- | ---: | ---: | --- |',
    ...r.steps.map(
      (s) =>
        `| ${s.id}${s.window ? ' (window)' : ''} | ${s.status} | ${stepTime(s)} | ${s.attempts} | ${s.rollback ? `${s.rollback.outcome}${s.rollback.reason ? `: ${cell(s.rollback.reason)}` : ''}` : ''} |`,
    ),
    '',
  ];
  for (const s of r.steps) {
    lines.push(`### ${s.id}: ${s.status}`, '');
    if (s.actions.length > 0) lines.push('```sql', ...s.actions.map(actionText), '```', '');
    for (const t of s.tables) lines.push(...table(t));
    for (const n of s.notes) lines.push(`- ${n}`);
    if (s.notes.length > 0) lines.push('');
    if (s.output) lines.push('Output:', '', '```', s.output.trimEnd(), '```', '');
    for (const e of s.errors) {
      lines.push(
        `> **${e.sqlstate ? `SQLSTATE ${e.sqlstate}` : 'error'}**: ${e.message.replaceAll('\n', ' ')}${e.detail ? ` DETAIL: ${e.detail}` : ''}${e.hint ? ` HINT: ${e.hint}` : ''}`,
        '',
      );
    }
  }
  return lines.join('\n');
}

export function comparisonMarkdown(c: Comparison, slowerThan: number): string {
  const label = (r: RunReport) => r.label ?? r.runId;
  const base = (d: readonly (number | null)[]) => d[0] ?? null;
  const lines = [
    `# ${c.runs[0]?.runbook.name ?? ''}: ${c.runs.map(label).join(' vs ')}`,
    '',
    `| step | ${c.runs.map(label).join(' | ')} | delta | |`,
    `| --- | ${c.runs.map(() => '---:').join(' | ')} | ---: | --- |`,
  ];
  const slower: string[] = [];
  for (const s of c.steps) {
    const first = base(s.durations);
    const last = s.durations.at(-1) ?? null;
    const delta = first !== null && last !== null ? last - first : null;
    const flagged = first !== null && last !== null && first > 0 && (last - first) / first > slowerThan;
    if (flagged) slower.push(s.id);
    lines.push(
      `| ${s.id}${s.window ? ' (window)' : ''} | ${s.durations.map(ms).join(' | ')} | ${delta === null ? '–' : `${delta >= 0 ? '+' : '-'}${formatDuration(Math.abs(delta))}`} | ${flagged ? `slower by more than ${Math.round(slowerThan * 100)}%` : ''} |`,
    );
  }
  lines.push(
    '',
    `Projected window (first to last step marked \`window: true\`, sum of their plan, apply and verify times): ${c.windows.map((w, i) => `${label(c.runs[i] as RunReport)} ${describeWindow(w, formatDuration) ?? '–'}`).join(', ')}`,
    '',
    slower.length > 0 ? `Slower: ${slower.join(', ')}` : 'No step got slower by more than the threshold.',
    '',
  );
  return lines.join('\n');
}
