/**
 * The one wait loop: look, and if not done, wait and look again until the
 * time is up. Every step and helper that waits for the server (a worker to
 * exit, a slot to be released, replication to catch up, Patroni to settle)
 * uses it, so they all stop at their deadline and on the run's signal alike.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** Pause between looks. */
  readonly intervalMs: number;
  /** No pause starts that would end past this much time after the first look. */
  readonly timeoutMs: number;
  /** Aborts the pause (an interrupt, a step's ceiling): the abort reason is thrown. */
  readonly signal?: AbortSignal | undefined;
}

/** One look: done with a value, or not yet with what it saw (for progress and the timeout message). */
export type Look<T, Seen> = { readonly done: true; readonly value: T } | { readonly done: false; readonly seen: Seen };

/** Looks until `look` says done. Out of time, returns the last look (`done: false`): the caller decides what that means. */
export async function poll<T, Seen>(look: (attempt: number) => Promise<Look<T, Seen>>, options: PollOptions): Promise<Look<T, Seen>> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    const result = await look(attempt);
    if (result.done || Date.now() - started + options.intervalMs > options.timeoutMs) return result;
    await sleep(options.intervalMs, undefined, options.signal !== undefined ? { signal: options.signal } : {});
  }
}

export const done = <T>(value: T): Look<T, never> => ({ done: true, value });
export const notYet = <Seen>(seen: Seen): Look<never, Seen> => ({ done: false, seen });
