/** Human-readable plans and run summaries. */
import {
  describeFileEdit,
  displayCommand,
  formatDuration,
  formatPhases,
  type Action,
  type Json,
  type PlanTable,
  type RunResult,
  type RunState,
  type RollbackPlan,
  type StepPlan,
} from '../index.js';
import { formatSerialized } from './format-error.js';
import { tableLines } from './table.js';

const show = (value: Json): string => (typeof value === 'string' ? value : JSON.stringify(value));

const PARAMS_SHOWN = 400;

/** Set-based statements bind arrays of thousands of values: the table lists them, the line says how many. */
function showParams(params: readonly Json[]): string {
  const full = JSON.stringify(params);
  if (full.length <= PARAMS_SHOWN) return full;
  return params.map((p, i) => `$${i + 1} ${Array.isArray(p) ? `[${p.length} values]` : JSON.stringify(p).slice(0, 60)}`).join(', ') + ' (all values: --json)';
}

function formatAction(action: Action): string[] {
  switch (action.type) {
    case 'sql': {
      const where = `[${action.connection}${action.transaction === false ? ', no transaction' : ''}]`;
      const params = action.params?.length ? `  -- params: ${showParams(action.params)}` : '';
      return [`${where} ${action.sql.trim().split('\n').join('\n    ')}${params}`];
    }
    case 'command':
      return [
        `$ ${displayCommand(action.argv)}${action.cwd ? `   (in ${action.cwd})` : ''}${action.envKeys?.length ? `   (env: ${action.envKeys.join(', ')})` : ''}`,
      ];
    case 'prompt':
      return [`? ${action.question}`];
    case 'file':
      return [`~ rewrite ${action.path} (read with sha256 ${action.sha256.slice(0, 12)}):`, ...action.edits.map((e) => `    ${describeFileEdit(e)}`)];
    case 'http':
      return [
        `[${action.connection}] ${action.method} ${action.url}${action.body === undefined ? '' : ` ${JSON.stringify(action.body)}`}`,
        ...(action.then === undefined ? [] : [`  then ${action.then}`]),
      ];
    case 'poll':
      return [
        `[${action.connection}] poll every ${formatDuration(action.intervalMs)} for up to ${formatDuration(action.timeoutMs)} until = ${show(action.expect)}:`,
        `  ${action.sql.trim()}`,
      ];
  }
}

export function formatPlan(plan: RollbackPlan | StepPlan): string[] {
  const lines: string[] = [];
  for (const action of plan.actions) lines.push(...formatAction(action));
  for (const change of plan.changes ?? []) lines.push(`~ ${change.subject}: ${show(change.current)} -> ${show(change.desired)}`);
  for (const table of plan.tables ?? []) lines.push(...formatTable(table));
  for (const note of plan.notes ?? []) lines.push(`# ${note}`);
  for (const blocker of plan.blockers ?? []) lines.push(`! blocked: ${blocker}`);
  if (plan.output)
    lines.push(
      'output:',
      ...plan.output
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
    );
  return lines;
}

export function formatTable(table: PlanTable): string[] {
  const cell = (value: Json | undefined): string => (value === undefined || value === null ? '' : show(value));
  return [
    `${table.title}:`,
    ...tableLines(
      table.columns.map((c) => c.title),
      table.rows.map((row) => table.columns.map((c) => cell(row[c.key]))),
      { align: table.columns.map((c) => c.align ?? 'left') },
    ),
    ...(table.footer !== undefined ? [`  ${table.footer}`] : []),
  ];
}

export function formatRunResult(result: RunResult, title: string): string {
  const lines = [title];
  result.steps.forEach((step, index) => {
    const phases = step.phases !== undefined ? formatPhases(step.phases) : undefined;
    const duration = phases !== undefined ? ` [${phases}]` : '';
    lines.push(`${String(index + 1).padStart(2)}. ${step.id} [${step.kind}] ${step.status}${step.verified === true ? ' (verified)' : ''}${duration}`);
    if (step.plan) lines.push(...formatPlan(step.plan).map((l) => `      ${l.split('\n').join('\n      ')}`));
    // A blocked plan's error only repeats the `! blocked:` lines of its plan.
    if (step.error && !(step.error.name === 'PlanBlockedError' && step.plan?.blockers?.length)) {
      lines.push(
        ...formatSerialized(step.error)
          .split('\n')
          .map((l) => `      ! ${l}`),
      );
    }
  });
  return lines.join('\n');
}

/** Tables longer than this show their title and footer only after a run: the whole table is in the report. */
const FINDINGS_ROWS = 20;

/**
 * After a run: what its read-only steps found (a precheck's warnings, a plan
 * check's regressions, a comparison), which a tick in the live list does not
 * say. `plan` prints whole plans instead.
 */
export function formatFindings(result: RunResult): string | undefined {
  const lines: string[] = [];
  const long = (table: PlanTable) => table.rows.length > FINDINGS_ROWS;
  for (const [index, step] of result.steps.entries()) {
    const plan = step.plan;
    // Only where the plan did all the work: a wait's or a lag check's plan is from before it waited.
    if (step.readsOnly !== true || plan === undefined || plan.actions.length > 0) continue;
    const found = [
      ...(plan.tables ?? []).flatMap((table) => {
        if (table.rows.length === 0) return [`${table.title}: none`, ...(table.footer !== undefined ? [`  ${table.footer}`] : [])];
        if (!long(table)) return formatTable(table);
        return [`${table.title}: ${table.rows.length} rows, in the report`, ...(table.footer !== undefined ? [`  ${table.footer}`] : [])];
      }),
      ...(plan.notes ?? []).map((note) => `# ${note}`),
    ];
    if (found.length > 0) lines.push(`${String(index + 1).padStart(2)}. ${step.id} [${step.kind}] ${step.status}`, ...found.map((l) => `      ${l}`));
  }
  if (lines.length === 0) return undefined;
  const cut = result.steps.some((s) => s.readsOnly === true && s.plan?.actions.length === 0 && s.plan.tables?.some(long) === true);
  return ['', 'What the read-only steps found:', ...lines, ...(cut ? [`(every row: cutover report ${result.runId})`] : [])].join('\n');
}

export function formatState(state: RunState): string {
  const lines = [
    `run ${state.runId} (${state.mode}) of "${state.runbookName}"${state.ticket ? `, ticket ${state.ticket}` : ''}`,
    `  runbook ${state.runbookFile} sha256 ${state.runbookSha256}`,
    `  started ${state.startedAt} by ${state.operator}; status ${state.status}${state.finishedAt ? ` at ${state.finishedAt}` : ''}`,
    ...(state.status === 'running' || state.status === 'rolling-back' || state.status === 'interrupted'
      ? [`  process: pid ${state.process.pid} on ${state.process.host}${state.status === 'interrupted' ? ' (gone, without a run end)' : ''}`]
      : []),
    ...(state.abandoned !== undefined
      ? [`  abandoned at ${state.abandoned.at} by ${state.abandoned.operator}: ${state.abandoned.reason} (cutover rollback ${state.runId} can still undo it)`]
      : []),
  ];
  for (const id of state.order) {
    const step = state.steps.get(id);
    if (!step) continue;
    const phases = formatPhases(step.phases);
    const duration = phases !== undefined ? ` [${phases}]` : '';
    const undo = step.rollbackMs !== undefined ? `, rollback ${formatDuration(step.rollbackMs)}` : '';
    lines.push(
      `  ${id}: ${step.status}${step.verified === true && step.status === 'completed' ? ' (verified)' : ''}${duration}${undo}${step.attempts > 1 ? `, ${step.attempts} attempts` : ''}`,
    );
    if (step.error)
      lines.push(
        ...formatSerialized(step.error)
          .split('\n')
          .map((l) => `      ! ${l}`),
      );
  }
  return lines.join('\n');
}
