/**
 * Runbooks written for a kind that was split keep working: a step written
 * the old way (`kind: replication-slots` with `action: drop`) is read as the
 * kind that replaced it (`kind: slot-drop`, without `action`), before the
 * schema sees it, and each such step gets a deprecation note with its
 * position in the user's file. Which old form maps to which kind is each
 * kind's own `replaces`; nothing here names a kind.
 */
import type { ValidationIssue } from '../errors.js';
import { formatPath, type SourceMap } from './positions.js';

/** What the loader needs of a kind to map the old form to it. */
export interface Replacing {
  readonly kind: string;
  readonly replaces?: { readonly kind: string; readonly key: string; readonly value: string } | undefined;
}

export interface Mapped {
  /** The runbook as the schema validates it: replaced steps rewritten. */
  readonly raw: unknown;
  /** One note per rewritten step, at its `kind`. */
  readonly deprecations: readonly ValidationIssue[];
  /** Old-form steps whose key names no replacement (missing or unknown value). */
  readonly issues: readonly ValidationIssue[];
  /** Indexes of steps that were rewritten, with the old form they were written in. */
  readonly rewritten: ReadonlyMap<number, string>;
  /** Indexes of old-form steps that could not be mapped: their problem is in `issues`. */
  readonly unmapped: ReadonlySet<number>;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function mapReplacedKinds(raw: unknown, definitions: Iterable<Replacing>, source: SourceMap): Mapped {
  const replacements = [...definitions].flatMap((d) => (d.replaces === undefined ? [] : [{ ...d.replaces, to: d.kind }]));
  const deprecations: ValidationIssue[] = [];
  const issues: ValidationIssue[] = [];
  const rewritten = new Map<number, string>();
  const unmapped = new Set<number>();
  if (!isObject(raw) || replacements.length === 0) return { raw, deprecations, issues, rewritten, unmapped };
  const steps = Object.hasOwn(raw, 'steps') ? raw['steps'] : undefined;
  if (!Array.isArray(steps)) return { raw, deprecations, issues, rewritten, unmapped };
  const mapped = steps.map((step: unknown, index) => {
    if (!isObject(step) || !Object.hasOwn(step, 'kind')) return step;
    const kind = step['kind'];
    const candidates = replacements.filter((r) => r.kind === kind);
    const first = candidates[0];
    if (first === undefined) return step;
    const id = typeof step['id'] === 'string' ? `step "${step['id']}": ` : '';
    const key = first.key;
    const value = Object.hasOwn(step, key) ? step[key] : undefined;
    const to = candidates.find((r) => r.value === value);
    const choices = candidates.map((r) => `${r.value} (now kind: ${r.to})`).join(', ');
    if (to === undefined) {
      unmapped.add(index);
      const at = value === undefined ? ['steps', index, 'kind'] : ['steps', index, key];
      issues.push({
        position: source.valueAt(at),
        path: formatPath(at),
        message: `${id}kind: ${String(kind)} is replaced by one kind per ${key}; ${
          value === undefined ? `it needs "${key}"` : `${JSON.stringify(value)} is not one`
        } (one of: ${choices}). Write the new kind instead`,
      });
      return step;
    }
    rewritten.set(index, `kind: ${String(kind)} with ${key}: ${to.value}`);
    deprecations.push({
      position: source.valueAt(['steps', index, 'kind']),
      path: formatPath(['steps', index, 'kind']),
      message: `${id}kind: ${String(kind)} with ${key}: ${to.value} is deprecated and runs as kind: ${to.to}; write "kind: ${to.to}" without "${key}"`,
    });
    return Object.fromEntries(
      Object.entries(step)
        .filter(([k]) => k !== key)
        .map(([k, v]) => [k, k === 'kind' ? to.to : v]),
    );
  });
  return { raw: { ...raw, steps: mapped }, deprecations, issues, rewritten, unmapped };
}
