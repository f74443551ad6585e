/**
 * Durations in runbooks are written in PostgreSQL's units (`250us`, `500ms`,
 * `30s`, `2min`, `1h`, `1d`), also `m` for minutes, with or without a space
 * (`5 min`), or as a bare integer of milliseconds (what lock_timeout and
 * statement_timeout take). They are converted once, at validation, and
 * bounded by what a Node.js timer and PostgreSQL's timeouts accept.
 */
const UNIT_MS = { us: 0.001, ms: 1, s: 1000, min: 60_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** 2^31-1 ms (24.8 days): the largest timeout setTimeout and PostgreSQL's *_timeout accept. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export const DURATION_PATTERN = /^(\d{1,15}(?:\.\d{1,9})?)\s?(us|ms|s|min|m|h|d)$/;

/** Milliseconds, or undefined when `text` is not a duration. A nonzero value below 1ms becomes 1ms, never 0 ("no timeout"). */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const [, amount, unit] = match;
  const ms = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  return ms > 0 && ms < 1 ? 1 : Math.round(ms);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}
