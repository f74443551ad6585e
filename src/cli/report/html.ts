/**
 * Reports as one self-contained HTML page: inline CSS and SVG, one small
 * inline script (sortable tables), no network. Readable on a phone,
 * printable. A timeline has one bar per step on a time axis; failed and
 * rolled-back steps are marked; SQL is collapsible.
 */
import { describeWindow, formatDuration, type Comparison, type PlanTable, type RunReport, type StepReport } from '../../index.js';
import { actionText } from './markdown.js';

const esc = (value: unknown): string =>
  String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
const text = (value: unknown) => esc(value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value));
const ms = (value: number | null | undefined) => (value === null || value === undefined ? '–' : formatDuration(value));

const STYLE = `
:root { --ok: #2e7d32; --bad: #c62828; --undo: #ef6c00; --muted: #666; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; line-height: 1.4; color: #111; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th.sortable { cursor: pointer; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
.status-completed, .status-succeeded, .status-planned { color: var(--ok); }
.status-failed, .status-rollback-failed, .status-needs-attention { color: var(--bad); }
.status-rolled-back { color: var(--undo); }
.error { border-left: 4px solid var(--bad); padding-left: .5rem; }
svg { width: 100%; height: auto; } svg text { font-size: 11px; fill: #333; }
.bar { fill: var(--ok); } .bar.failed { fill: var(--bad); } .bar.pending { fill: #bbb; } .bar.rolled-back { fill: var(--ok); stroke: var(--undo); stroke-width: 2; }
.undo { fill: var(--undo); opacity: .7; }
@media print { details { display: block; } details > * { display: block; } body { max-width: none; } }
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

function table(t: PlanTable): string {
  return `<h4>${esc(t.title)}</h4><table><thead><tr>${t.columns.map((c) => `<th class="sortable">${esc(c.title)}</th>`).join('')}</tr></thead><tbody>${t.rows
    .map((r) => `<tr>${t.columns.map((c) => `<td${c.align === 'right' ? ' class="num"' : ''}>${text(r[c.key])}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>${t.footer ? `<p>${esc(t.footer)}</p>` : ''}`;
}

/** One row per step: its bar from start to end, and its rollback after it. */
function timeline(r: RunReport): string {
  const start = Date.parse(r.startedAt);
  const ends = r.steps.flatMap((s) => [s.endedAt, s.rollback?.endedAt].filter((x): x is string => x !== undefined).map(Date.parse));
  const end = Math.max(start + 1, Date.parse(r.finishedAt ?? r.startedAt), ...ends);
  const [left, width, row] = [160, 600, 22];
  const x = (t: number) => left + ((t - start) / (end - start)) * width;
  const bar = (s: StepReport, i: number) => {
    const y = i * row + 4;
    const kind = s.status === 'failed' || s.status === 'rollback-failed' ? 'failed' : s.startedAt === undefined ? 'pending' : s.rollback ? 'rolled-back' : 'done';
    const [from, to] = s.startedAt !== undefined ? [x(Date.parse(s.startedAt)), x(Date.parse(s.endedAt ?? s.startedAt))] : [left, left];
    const undo = s.rollback && s.rollback.outcome !== 'skipped' && s.rollback.endedAt !== undefined
      ? `<rect class="undo" x="${x(Date.parse(s.rollback.startedAt)).toFixed(1)}" y="${y}" width="${Math.max(2, x(Date.parse(s.rollback.endedAt)) - x(Date.parse(s.rollback.startedAt))).toFixed(1)}" height="${row - 8}"><title>rollback of ${esc(s.id)}</title></rect>`
      : '';
    return `<text x="4" y="${y + 11}">${esc(s.id.slice(0, 24))}</text><rect class="bar ${kind}" data-step="${esc(s.id)}" x="${from.toFixed(1)}" y="${y}" width="${Math.max(2, to - from).toFixed(1)}" height="${row - 8}"><title>${esc(s.id)}: ${esc(s.status)}, ${ms(s.durationMs)}</title></rect>${undo}`;
  };
  const height = r.steps.length * row + 24;
  const axis = `<line x1="${left}" x2="${left + width}" y1="${height - 18}" y2="${height - 18}" stroke="#999"/><text x="${left}" y="${height - 4}">0s</text><text x="${left + width - 40}" y="${height - 4}">${esc(formatDuration(end - start))}</text>`;
  return `<svg viewBox="0 0 ${left + width + 10} ${height}" role="img" aria-label="timeline of the steps">${r.steps.map(bar).join('')}${axis}</svg>`;
}

export function reportHtml(r: RunReport): string {
  const header = `<h1>${esc(r.runbook.name)}: run ${esc(r.runId)}</h1>
<table><tbody>
<tr><th>outcome</th><td class="status-${esc(r.status)}"><strong>${esc(r.status)}</strong> (${esc(r.mode)})</td></tr>
${r.runbook.ticket ? `<tr><th>ticket</th><td>${esc(r.runbook.ticket)}</td></tr>` : ''}
${r.label ? `<tr><th>label</th><td>${esc(r.label)}</td></tr>` : ''}
${r.environment ? `<tr><th>environment</th><td>${esc(r.environment)}</td></tr>` : ''}
<tr><th>runbook</th><td>${esc(r.runbook.file)}<br><code>${esc(r.runbook.sha256)}</code></td></tr>
<tr><th>operator</th><td>${esc(r.operator)} on ${esc(r.host)}, cutover ${esc(r.toolVersion)}</td></tr>
<tr><th>started</th><td>${esc(r.startedAt)}</td></tr><tr><th>finished</th><td>${esc(r.finishedAt ?? '(not finished)')}</td></tr>
<tr><th>journal</th><td>${r.chain.ok ? 'hash chain verifies' : `<strong class="status-failed">does not verify</strong>: ${esc(r.chain.problems.join('; '))}`}<br><code>${esc(r.chain.head)}</code></td></tr>
</tbody></table>`;
  const steps = r.steps
    .map(
      (s) => `<section><h3>${esc(s.id)} <span class="status-${esc(s.status)}">${esc(s.status)}</span> ${ms(s.durationMs)}${s.attempts > 1 ? `, ${s.attempts} attempts` : ''}${s.window ? ' (window)' : ''}</h3>
${s.actions.length > 0 ? `<details><summary>SQL and commands (${s.actions.length})</summary><pre>${esc(s.actions.map(actionText).join('\n\n'))}</pre></details>` : ''}
${s.tables.map(table).join('')}
${s.notes.length > 0 ? `<ul>${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
${s.output ? `<details><summary>output</summary><pre>${esc(s.output)}</pre></details>` : ''}
${s.errors.map((e) => `<p class="error"><strong>${esc(e.name)}${e.sqlstate ? ` ${esc(e.sqlstate)}` : ''}</strong>: ${esc(e.message)}${e.detail ? `<br>DETAIL: ${esc(e.detail)}` : ''}${e.hint ? `<br>HINT: ${esc(e.hint)}` : ''}</p>`).join('')}
${s.rollback ? `<p class="status-rolled-back">rollback: ${esc(s.rollback.outcome)}${s.rollback.reason ? ` (${esc(s.rollback.reason)})` : ''}</p>` : ''}
</section>`,
    )
    .join('');
  return page(`${r.runbook.name}: ${r.runId}`, `${header}<h2>Timeline</h2>${timeline(r)}<h2>Steps</h2>${steps}`);
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
