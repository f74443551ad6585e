/**
 * What a sequence is, what its next value is, and what to do with it. Pure
 * functions over bigints: no I/O, so every rule here is unit-tested exactly.
 *
 * The one thing to get right: a PostgreSQL sequence's next `nextval()` is
 * `last_value` when `is_called` is false and `last_value + increment` when it
 * is true (wrapping or failing at the bounds). Everything is expressed as that
 * next value; it is set with `setval(seq, next, false)`, whose next
 * `nextval()` returns exactly `next`.
 */

export interface SequenceOwner {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
}

/** A sequence in a PostgreSQL catalog. */
export interface PgSequence {
  readonly oid: string;
  readonly schema: string;
  readonly name: string;
  /** smallint, integer or bigint */
  readonly type: string;
  readonly start: bigint;
  readonly increment: bigint;
  readonly min: bigint;
  readonly max: bigint;
  readonly cycle: boolean;
  /** The column it belongs to (serial or identity), through pg_depend. */
  readonly owner?: SequenceOwner & { readonly identity: boolean };
}

export interface SequenceState {
  readonly lastValue: bigint;
  readonly isCalled: boolean;
}

/** Where the next value of one sequence comes from. */
export interface SourceValue {
  readonly schema: string;
  readonly name: string;
  /** The next value to hand out; null when the source sequence is exhausted. */
  readonly next: bigint | null;
  /** Matched by table and column when the sequence names differ (serial, identity). */
  readonly owner?: SequenceOwner;
  /** What the source said, for the plan (e.g. `last_value=41 is_called=true`). */
  readonly evidence: string;
}

/** The next value `nextval()` would return; null when it would fail (exhausted, no cycle). */
export function nextValue(seq: Pick<PgSequence, 'increment' | 'min' | 'max' | 'cycle'>, state: SequenceState): bigint | null {
  if (!state.isCalled) return state.lastValue;
  const next = state.lastValue + seq.increment;
  if (next > seq.max) return seq.cycle ? seq.min : null;
  if (next < seq.min) return seq.cycle ? seq.max : null;
  return next;
}

/** Next value of a PostgreSQL source sequence, with the evidence for the plan. */
export function sourceNext(seq: PgSequence, state: SequenceState): SourceValue {
  return {
    schema: seq.schema,
    name: seq.name,
    next: nextValue(seq, state),
    ...(seq.owner !== undefined ? { owner: seq.owner } : {}),
    evidence: `last_value=${state.lastValue} is_called=${state.isCalled} increment=${seq.increment}`,
  };
}

/** For `from: data`: one past the column's extreme value in the sequence's direction. */
export function nextAfterData(seq: PgSequence, extreme: bigint | null): bigint | null {
  if (extreme === null) return null;
  return seq.increment > 0n ? extreme + seq.increment : extreme - (seq.increment < 0n ? -seq.increment : seq.increment);
}

export type SequenceAction = 'advance' | 'unchanged' | 'decrease' | 'kept-ahead' | 'out-of-range' | 'missing-on-target' | 'missing-on-source';

export interface Decision {
  readonly action: SequenceAction;
  /** The next value after the step (the value the first nextval() will return). */
  readonly next: bigint | null;
  readonly reason?: string;
}

export interface DecideOptions {
  readonly allowDecrease: boolean;
  /** Headroom added in the sequence's direction. */
  readonly margin: bigint;
}

/**
 * What to do with one target sequence, given its current next value and the
 * source's. Never moves a sequence backwards unless allowed; a cycling
 * sequence has no "backwards", so it is set whenever it differs.
 */
export function decide(seq: PgSequence, current: bigint | null, source: bigint | null, options: DecideOptions): Decision {
  const ascending = seq.increment > 0n;
  if (source === null) {
    return { action: 'out-of-range', next: null, reason: 'the source sequence is exhausted (its next nextval would fail)' };
  }
  const desired = ascending ? source + options.margin : source - options.margin;
  if (desired > seq.max || desired < seq.min) {
    return {
      action: 'out-of-range',
      next: desired,
      reason: `${desired} is outside ${seq.type} sequence bounds [${seq.min}, ${seq.max}]`,
    };
  }
  if (current === desired) return { action: 'unchanged', next: desired };
  if (seq.cycle) return { action: 'advance', next: desired };
  // An exhausted target (current null) is past every value in its direction.
  const behind = current !== null && (ascending ? desired > current : desired < current);
  if (behind) return { action: 'advance', next: desired };
  if (options.allowDecrease) return { action: 'decrease', next: desired };
  return {
    action: 'kept-ahead',
    next: current,
    reason: `the target is already at ${current ?? 'its bound'}; moving it to ${desired} would hand out values again (allowDecrease: true permits it)`,
  };
}

export { displayQualified as displayName } from '../db/quote.js';
