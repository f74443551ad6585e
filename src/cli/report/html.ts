/**
 * Reports as one self-contained HTML page: inline CSS and SVG, one small
 * inline script (sortable tables), no network. Readable on a phone,
 * printable. A timeline has one bar per step on a time axis; failed and
 * rolled-back steps are marked; SQL is collapsible.
 */
import { describeWindow, formatDuration, type Action, type Comparison, type Json, type PlanTable, type RunReport, type StepReport } from '../../index.js';
import { actionText, failureText, statusCounts, stepTime, windowText } from './markdown.js';
import { esc } from './escape.js';

const text = (value: unknown) => esc(value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value));
const ms = (value: number | null | undefined) => (value === null || value === undefined ? '–' : formatDuration(value));

const STYLE = `
:root { --ok: #2e7d32; --bad: #c62828; --undo: #ef6c00; --muted: #666; --line: #ddd; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; line-height: 1.4; color: #111; }
h1 { font-size: 1.4rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 2px solid #333; padding-bottom: .2rem; }
h4 { font-size: .9rem; margin: .8rem 0 .3rem; color: #333; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #333; background: #fafafa; }
th.sortable { cursor: pointer; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
.status-completed, .status-succeeded, .status-planned { color: var(--ok); }
.status-failed, .status-rollback-failed, .status-needs-attention { color: var(--bad); }
.status-rolled-back, .status-stopped, .status-interrupted { color: var(--undo); }
.summary { border: 2px solid var(--muted); border-radius: 8px; padding: .8rem 1rem; margin: 1rem 0; }
.summary.outcome-succeeded { border-color: var(--ok); } .summary.outcome-failed, .summary.outcome-needs-attention { border-color: var(--bad); }
.summary.outcome-rolled-back, .summary.outcome-stopped, .summary.outcome-interrupted { border-color: var(--undo); }
.summary .outcome { font-size: 1.3rem; font-weight: 700; margin: 0 0 .3rem; }
.summary .reason { margin: .2rem 0 .6rem; }
.summary dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
.summary dt { color: var(--muted); } .summary dd { margin: 0; }
.card { border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px; padding: .5rem 1rem .8rem; margin: 1rem 0; background: #fff; }
.card.done { border-left-color: var(--ok); } .card.failed { border-left-color: var(--bad); background: #fff8f8; }
.card.undone { border-left-color: var(--undo); } .card.pending { border-left-color: #bbb; background: #fafafa; }
.card h3 { font-size: 1.05rem; margin: .2rem 0 .4rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: baseline; }
.badge { font-size: .8rem; font-weight: 600; padding: .05rem .5rem; border-radius: 1rem; background: #eee; color: #333; }
.badge.done { background: #e8f5e9; color: var(--ok); } .badge.failed { background: #ffebee; color: var(--bad); }
.badge.undone { background: #fff3e0; color: #b54d00; } .badge.pending { background: #eee; color: var(--muted); }
.time { color: var(--muted); font-size: .85rem; font-weight: 400; }
.error { border-left: 4px solid var(--bad); padding-left: .5rem; }
svg { width: 100%; height: auto; } svg text { font-size: 11px; fill: #333; } svg .label { fill: var(--muted); }
.seg.plan { fill: #90caf9; } .seg.apply { fill: var(--ok); } .seg.verify { fill: #66bb6a; } .seg.rollback { fill: var(--undo); }
.seg.failed { fill: var(--bad); }
.legend { font-size: .85rem; color: #333; display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .3rem 0; }
.legend span::before { content: ''; display: inline-block; width: .9rem; height: .7rem; margin-right: .3rem; vertical-align: middle; }
.legend .plan::before { background: #90caf9; } .legend .apply::before { background: var(--ok); } .legend .verify::before { background: #66bb6a; }
.legend .failed::before { background: var(--bad); } .legend .rollback::before { background: var(--undo); } .legend .gap::before { border-bottom: 1px dashed #999; height: 0; }
.params { margin: .2rem 0 .5rem; font-size: .85rem; } .params code { background: #f6f6f6; padding: 0 .2rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; } details { display: block; } details > * { display: block; } details > summary { list-style: none; font-weight: 600; }
  details.raw { display: none; } .card, .summary { break-inside: avoid; } th.sortable { cursor: auto; } a { color: inherit; text-decoration: none; }
}
`;

/** Click a header to sort by it; numbers numerically. */
const SCRIPT = `
document.querySelectorAll('th.sortable').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('data-order') !== 'asc';
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].textContent, y = b.cells[index].textContent, nx = parseFloat(x), ny = parseFloat(y);
      var c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body>${body}<script>${SCRIPT}</script></body></html>
`;
}

/** `1.4 GiB` for a byte count, so sizes read in one unit next to human ones; the exact value stays in the tooltip. */
function bytes(value: Json | undefined): string | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined;
  if (n === undefined) return undefined;
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) [v, u] = [v / 1024, u + 1];
  return `<span title="${n} bytes">${u === 0 ? v : v.toFixed(1)} ${units[u]}</span>`;
}

function cellHtml(key: string, title: string, value: Json | undefined): string {
  const sized = /bytes|size/i.test(`${key} ${title}`) ? bytes(value) : undefined;
  return sized ?? text(value);
}

function table(t: PlanTable): string {
  return `<h4>${esc(t.title)}</h4><table><thead><tr>${t.columns.map((c) => `<th class="sortable">${esc(c.title)}</th>`).join('')}</tr></thead><tbody>${t.rows
    .map((r) => `<tr>${t.columns.map((c) => `<td${c.align === 'right' ? ' class="num"' : ''}>${cellHtml(c.key, c.title, r[c.key])}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>${t.footer ? `<p>${esc(t.footer)}</p>` : ''}`;
}

/** How a step's outcome reads (and is coloured): `rollback-skipped` of a step with nothing to undo is a completed step. */
function outcomeOf(s: StepReport): { readonly text: string; readonly tone: 'done' | 'failed' | 'undone' | 'pending' } {
  switch (s.status) {
    case 'completed':
    case 'applied':
      return { text: s.status, tone: 'done' };
    case 'failed':
    case 'rollback-failed':
      return { text: s.status, tone: 'failed' };
    case 'rolled-back':
      return { text: 'rolled back', tone: 'undone' };
    case 'rollback-skipped':
      return s.rollback?.irreversible === true
        ? { text: 'completed, not rolled back (irreversible)', tone: 'failed' }
        : { text: s.completed ? 'completed, nothing to undo' : 'nothing to undo', tone: 'done' };
    case 'pending':
    case 'planned':
      return { text: s.status === 'pending' ? 'not run' : 'planned, not applied', tone: 'pending' };
    default:
      return { text: s.status, tone: 'undone' };
  }
}

const TIMELINE = { left: 170, width: 560, right: 160, row: 24 };

/**
 * Each step on its row at its true times: planning, applying and verifying
 * as segments (a failed one red, at its real length), its rollback after it
 * on the same axis, and its duration at the end. The axis spans from the run's
 * start to the last thing that happened.
 */
function timeline(r: RunReport): string {
  const start = Date.parse(r.startedAt);
  const ends = r.steps.flatMap((s) => s.segments.map((g) => Date.parse(g.endedAt)));
  const end = Math.max(start + 1, Date.parse(r.finishedAt ?? r.startedAt), ...ends);
  const { left, width, row } = TIMELINE;
  const x = (t: number) => left + ((t - start) / (end - start)) * width;
  const bar = (s: StepReport, i: number) => {
    const y = i * row + 4;
    const segments = s.segments
      .map((g) => {
        const [from, to] = [x(Date.parse(g.startedAt)), x(Date.parse(g.endedAt))];
        const ms = Date.parse(g.endedAt) - Date.parse(g.startedAt);
        return `<rect class="seg ${g.phase}${g.failed ? ' failed' : ''}" data-phase="${g.phase}" data-ms="${ms}" x="${from.toFixed(2)}" y="${y}" width="${Math.max(1, to - from).toFixed(2)}" height="${row - 10}"><title>${esc(s.id)}: ${g.phase}${g.failed ? ' (failed)' : ''}, ${esc(formatDuration(ms))}</title></rect>`;
      })
      .join('');
    const last = Math.max(...s.segments.map((g) => x(Date.parse(g.endedAt))), left);
    const label = s.durationMs !== undefined ? esc(formatDuration(s.durationMs)) : 'not run';
    const undo = s.rollback?.durationMs !== undefined ? ` + undo ${esc(formatDuration(s.rollback.durationMs))}` : '';
    return `<g class="step" data-step="${esc(s.id)}" data-status="${esc(s.status)}"><text x="4" y="${y + 10}">${esc(s.id.length > 26 ? `${s.id.slice(0, 25)}…` : s.id)}</text>${segments}<text class="label" x="${(last + 4).toFixed(1)}" y="${y + 10}">${label}${undo}</text></g>`;
  };
  const height = r.steps.length * row + 28;
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) =>
        `<line x1="${left + f * width}" x2="${left + f * width}" y1="0" y2="${height - 22}" stroke="#eee"/><text class="label" x="${left + f * width - (f === 1 ? 30 : f === 0 ? 0 : 15)}" y="${height - 6}">${esc(formatDuration(f * (end - start)))}</text>`,
    )
    .join('');
  const axis = `<line x1="${left}" x2="${left + width}" y1="${height - 20}" y2="${height - 20}" stroke="#999"/>`;
  return `<svg viewBox="0 0 ${left + width + TIMELINE.right} ${height}" role="img" aria-label="timeline of the steps" data-start="${start}" data-end="${end}" data-left="${left}" data-width="${width}">${ticks}${r.steps.map(bar).join('')}${axis}</svg>
<p class="legend"><span class="plan">planning</span><span class="apply">applying</span><span class="verify">verifying</span><span class="failed">failed</span><span class="rollback">rolling back</span><span class="gap">gaps: between steps (locks checked, sessions opened and closed, confirmations awaited)</span></p>`;
}

/** A statement's parameters as a person reads them: `$1 = 'public.orders'`; long arrays are counted. */
function paramsText(params: readonly Json[]): string {
  return params
    .map((p, i) => {
      const value = Array.isArray(p)
        ? p.length > 8
          ? `[${p.length} values: ${p
              .slice(0, 3)
              .map((v) => JSON.stringify(v))
              .join(', ')}, …]`
          : JSON.stringify(p)
        : typeof p === 'string'
          ? `'${p}'`
          : JSON.stringify(p);
      return `<code>$${i + 1}</code> = ${esc(value.length > 200 ? `${value.slice(0, 200)}…` : value)}`;
    })
    .join('<br>');
}

/** The actions readably (SQL with parameters spelled out), and exactly in a collapsible raw form. */
function actionsHtml(actions: readonly Action[]): string {
  if (actions.length === 0) return '';
  const readable = actions
    .map((a) =>
      a.type === 'sql' && a.params !== undefined && a.params.length > 0
        ? `<pre>-- [${esc(a.connection)}]\n${esc(a.sql.trim())};</pre><p class="params">${paramsText(a.params)}</p>`
        : `<pre>${esc(actionText(a))}</pre>`,
    )
    .join('');
  return `<details open><summary>SQL and commands (${actions.length})</summary>${readable}<details class="raw"><summary>raw, exactly as journaled</summary><pre>${esc(JSON.stringify(actions, null, 2))}</pre></details></details>`;
}

export function reportHtml(r: RunReport): string {
  const reason = failureText(r);
  // What a failed, stopped or half-rolled-back run leaves in place: the reviewer's first question.
  const inPlace =
    r.status === 'succeeded' || r.mode === 'plan'
      ? []
      : r.steps.filter((s) => s.status === 'applied' || s.status === 'completed' || s.rollback?.irreversible === true).map((s) => s.id);
  const summary = `<section class="summary outcome-${esc(r.status)}" id="summary">
<p class="outcome status-${esc(r.status)}">${esc(r.status)}${r.mode === 'plan' ? ' (plan only)' : ''}</p>
${reason !== undefined ? `<p class="reason"><strong>${r.failure !== undefined ? 'Failed step' : 'Why'}:</strong> ${esc(reason)}</p>` : ''}
<dl>
<dt>window</dt><dd>${esc(windowText(r.window)).replaceAll(/`([^`]*)`/g, '<code>$1</code>')}</dd>
<dt>steps</dt><dd>${esc(statusCounts(r, (s) => outcomeOf(s).text))}</dd>
${inPlace.length > 0 ? `<dt>still applied</dt><dd>${esc(inPlace.join(', '))}</dd>` : ''}
${r.runbook.ticket ? `<dt>ticket</dt><dd>${esc(r.runbook.ticket)}</dd>` : ''}
<dt>who</dt><dd>${esc(r.operator)} on ${esc(r.host)}</dd>
<dt>when</dt><dd>${esc(r.startedAt)} to ${esc(r.finishedAt ?? '(not finished)')}${r.finishedAt !== undefined ? ` (${esc(formatDuration(Date.parse(r.finishedAt) - Date.parse(r.startedAt)))})` : ''}</dd>
${r.label ? `<dt>label</dt><dd>${esc(r.label)}</dd>` : ''}
${r.environment ? `<dt>environment</dt><dd>${esc(r.environment)}</dd>` : ''}
</dl></section>`;
  const details = `<h2>Run</h2><table><tbody>
<tr><th>runbook</th><td>${esc(r.runbook.file)}<br><code>${esc(r.runbook.sha256)}</code></td></tr>
<tr><th>tool</th><td>cutover ${esc(r.toolVersion)}</td></tr>
<tr><th>journal</th><td>${r.chain.ok ? 'hash chain verifies' : `<strong class="status-failed">does not verify</strong>: ${esc(r.chain.problems.join('; '))}`}<br><code>${esc(r.chain.head)}</code></td></tr>
</tbody></table>`;
  const steps = r.steps
    .map((s) => {
      const outcome = outcomeOf(s);
      return `<section class="card ${outcome.tone}" data-step="${esc(s.id)}"><h3>${esc(s.id)} <span class="badge ${outcome.tone}">${esc(outcome.text)}</span>${s.window ? ' <span class="badge">window</span>' : ''} <span class="time">${esc(stepTime(s))}${s.attempts > 1 ? `, ${s.attempts} attempts` : ''}${s.verified ? ', verified' : ''}</span></h3>
${actionsHtml(s.actions)}
${s.tables.map(table).join('')}
${s.notes.length > 0 ? `<ul>${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
${s.output ? `<details><summary>output</summary><pre>${esc(s.output)}</pre></details>` : ''}
${s.errors.map((e) => `<p class="error"><strong>${e.sqlstate ? `SQLSTATE ${esc(e.sqlstate)}` : 'error'}</strong>: ${esc(e.message)}${e.detail ? `<br>DETAIL: ${esc(e.detail)}` : ''}${e.hint ? `<br>HINT: ${esc(e.hint)}` : ''}</p>`).join('')}
${s.rollback ? `<p class="${s.rollback.outcome === 'skipped' && s.rollback.irreversible !== true ? 'time' : 'status-rolled-back'}">rollback: ${esc(s.rollback.outcome)}${s.rollback.durationMs !== undefined ? ` in ${esc(formatDuration(s.rollback.durationMs))}` : ''}${s.rollback.reason ? ` (${esc(s.rollback.reason)})` : ''}</p>` : ''}
</section>`;
    })
    .join('');
  return page(
    `${r.runbook.name}: ${r.runId}`,
    `<h1>${esc(r.runbook.name)}: run ${esc(r.runId)}</h1>${summary}<h2>Timeline</h2>${timeline(r)}<h2>Steps</h2>${steps}${details}`,
  );
}

export function comparisonHtml(c: Comparison, slowerThan: number): string {
  const label = (r: RunReport) => r.label ?? r.runId;
  const rows = c.steps
    .map((s) => {
      const first = s.durations[0] ?? null;
      const last = s.durations.at(-1) ?? null;
      const flagged = first !== null && last !== null && first > 0 && (last - first) / first > slowerThan;
      return `<tr><td>${esc(s.id)}${s.window ? ' (window)' : ''}</td>${s.durations.map((d) => `<td class="num">${ms(d)}</td>`).join('')}<td class="num">${first !== null && last !== null ? `${last >= first ? '+' : '-'}${formatDuration(Math.abs(last - first))}` : '–'}</td><td class="${flagged ? 'status-failed' : ''}">${flagged ? 'slower' : ''}</td></tr>`;
    })
    .join('');
  const body = `<h1>${esc(c.runs[0]?.runbook.name ?? '')}: ${c.runs.map((r) => esc(label(r))).join(' vs ')}</h1>
<table><thead><tr><th class="sortable">step</th>${c.runs.map((r) => `<th class="sortable">${esc(label(r))}</th>`).join('')}<th class="sortable">delta</th><th class="sortable">slower than ${Math.round(slowerThan * 100)}%</th></tr></thead><tbody>${rows}</tbody></table>
<p>Projected window (first to last step marked <code>window: true</code>, sum of their plan, apply and verify times): ${c.windows.map((w, i) => `${esc(label(c.runs[i] as RunReport))} <strong>${esc(describeWindow(w, formatDuration) ?? '–')}</strong>`).join(', ')}</p>`;
  return page(`comparison of ${c.runs.map(label).join(', ')}`, body);
}
