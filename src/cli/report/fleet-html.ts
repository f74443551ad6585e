/**
 * The fleet's report: one self-contained HTML page (inline CSS and SVG, no
 * script, no network): the summary, each wave with a timeline of its
 * targets, and every target's outcome linking to the target's own report.
 */
import { formatDuration, type FleetEvent, type FleetStatus } from '../../index.js';
import { esc } from './escape.js';

const STYLE = `
:root { --ok: #2e7d32; --bad: #c62828; --undo: #ef6c00; --wait: #f9a825; --muted: #666; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; line-height: 1.4; color: #111; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-succeeded, .status-done { color: var(--ok); }
.status-failed, .status-needs-attention, .status-halted, .status-refused, .status-unreadable { color: var(--bad); }
.status-rolled-back, .status-partly-rolled-back, .status-not-rolled-back, .status-stopped, .status-interrupted { color: var(--undo); }
svg { width: 100%; height: auto; } svg text { font-size: 11px; fill: #333; }
.bar { fill: var(--ok); } .bar.bad { fill: var(--bad); } .bar.undo { fill: var(--undo); } .bar.wait { fill: var(--wait); }
`;

const BAD = new Set(['failed', 'needs-attention', 'refused', 'error', 'unreadable']);
const UNDONE = new Set(['rolled-back', 'stopped', 'interrupted']);

interface Span {
  readonly target: string;
  readonly start: number;
  readonly end: number;
  readonly status: string;
}

/** Each target's attempts, from target.started to target.finished, over every run and resume of the fleet. */
function spans(events: readonly FleetEvent[], wave: string): Span[] {
  const open = new Map<string, number>();
  const out: Span[] = [];
  for (const e of events) {
    if (e.type === 'target.started' && e.wave === wave) open.set(e.target, Date.parse(e.ts));
    if (e.type === 'target.finished' && e.wave === wave) {
      const end = Date.parse(e.ts);
      out.push({ target: e.target, start: open.get(e.target) ?? end - e.durationMs, end, status: e.status });
      open.delete(e.target);
    }
  }
  return out;
}

function timeline(list: readonly Span[], wave: string): string {
  if (list.length === 0) return '<p>No target of this wave has started.</p>';
  const names = [...new Set(list.map((s) => s.target))];
  const start = Math.min(...list.map((s) => s.start));
  const end = Math.max(start + 1, ...list.map((s) => s.end));
  const [left, width, row] = [140, 620, 18];
  const x = (t: number) => left + ((t - start) / (end - start)) * width;
  const bars = list
    .map((s) => {
      const y = names.indexOf(s.target) * row + 4;
      const kind = BAD.has(s.status) ? 'bad' : UNDONE.has(s.status) ? 'undo' : '';
      return `<rect class="bar ${kind}" data-target="${esc(s.target)}" x="${x(s.start).toFixed(1)}" y="${y}" width="${Math.max(2, x(s.end) - x(s.start)).toFixed(1)}" height="${row - 6}"><title>${esc(s.target)}: ${esc(s.status)}, ${esc(formatDuration(s.end - s.start))}</title></rect>`;
    })
    .join('');
  const labels = names.map((n, i) => `<text x="4" y="${i * row + 14}">${esc(n.slice(0, 22))}</text>`).join('');
  const height = names.length * row + 24;
  const axis = `<line x1="${left}" x2="${left + width}" y1="${height - 18}" y2="${height - 18}" stroke="#999"/><text x="${left}" y="${height - 4}">0s</text><text x="${left + width - 50}" y="${height - 4}">${esc(formatDuration(end - start))}</text>`;
  return `<svg viewBox="0 0 ${left + width + 10} ${height}" role="img" aria-label="timeline of wave ${esc(wave)}">${labels}${bars}${axis}</svg>`;
}

/** `links` maps a target to the relative path of its own report. */
export function fleetReportHtml(status: FleetStatus, events: readonly FleetEvent[], links: ReadonlyMap<string, string>): string {
  const first = events.find((e) => e.type === 'fleet.started');
  const last = [...events].reverse().find((e) => e.type === 'fleet.finished');
  const counts = Object.entries(status.summary)
    .map(([k, n]) => `<span class="status-${esc(k)}">${n} ${esc(k)}</span>`)
    .join(', ');
  const summary = `<h1>Fleet ${esc(status.name)}: ${esc(status.runbook)}</h1>
<table><tbody>
<tr><th>outcome</th><td class="status-${esc(status.lastOutcome ?? '')}"><strong>${esc(status.lastOutcome ?? (status.runningPid !== undefined ? 'running' : 'not run'))}</strong>${status.lastCommand !== undefined ? ` (last: fleet ${esc(status.lastCommand)})` : ''}</td></tr>
<tr><th>targets</th><td>${status.targets.length}: ${counts}</td></tr>
<tr><th>waves</th><td>${status.waves.map((w) => `${esc(w.name)} (${w.targets.length}): <span class="status-${esc(w.status)}">${esc(w.status)}</span>`).join(', ')}</td></tr>
${first?.type === 'fleet.started' ? `<tr><th>runbook</th><td>${esc(first.runbook.file)}<br><code>${esc(first.runbook.sha256)}</code></td></tr><tr><th>inventory</th><td>${esc(first.inventory.file)}<br><code>${esc(first.inventory.sha256)}</code></td></tr><tr><th>started</th><td>${esc(first.ts)} by ${esc(first.operator)} on ${esc(first.host)}</td></tr>` : ''}
${last !== undefined ? `<tr><th>last finished</th><td>${esc(last.ts)}</td></tr>` : ''}
<tr><th>state</th><td><code>${esc(status.location)}</code></td></tr>
</tbody></table>`;
  const waves = status.waves
    .map((w) => {
      const targets = status.targets.filter((t) => t.wave === w.name);
      const ok = targets.filter((t) => t.status === 'succeeded').length;
      const bad = targets.filter((t) => BAD.has(t.status) || t.status === 'rolled-back').length;
      const approvals = events.filter((e) => e.type === 'wave.approved' && e.wave === w.name);
      return `<section><h3>${esc(w.name)} <span class="status-${esc(w.status)}">${esc(w.status)}</span></h3>
<p>${targets.length} target${targets.length === 1 ? '' : 's'}: ${ok} succeeded, ${bad} failed or rolled back${approvals.length > 0 ? `; approved by ${esc([...new Set(approvals.map((a) => (a.type === 'wave.approved' ? a.operator : '')))].join(', '))}` : ''}</p>
${timeline(spans(events, w.name), w.name)}</section>`;
    })
    .join('');
  const rows = status.targets
    .map((t) => {
      const link = links.get(t.name);
      return `<tr><td>${esc(t.name)}</td><td>${esc(t.wave)}</td><td class="status-${esc(t.status)}">${esc(t.status)}</td><td>${link !== undefined ? `<a href="${esc(link)}">${esc(t.runId ?? 'report')}</a>` : esc(t.runId ?? '')}</td><td>${esc(t.message ?? '')}</td></tr>`;
    })
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fleet ${esc(status.name)}</title><style>${STYLE}</style></head>
<body>${summary}<h2>Waves</h2>${waves}<h2>Targets</h2>
<table><thead><tr><th>target</th><th>wave</th><th>status</th><th>run (its report)</th><th>note</th></tr></thead><tbody>${rows}</tbody></table>
</body></html>
`;
}
