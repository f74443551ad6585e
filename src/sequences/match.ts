/**
 * Pairs source sequences with target sequences: schema map, Oracle's
 * UPPER -> lower folding (unless the target has the exact, quoted name), and
 * sequences owned by a column (serial, identity) matched by table and column
 * when their names differ, e.g. Oracle's ISEQ$$_nnn and PostgreSQL's
 * orders_id_seq.
 */
import type { PgSequence, SourceValue } from './model.js';
import { globMatcher } from '../runbook/patterns.js';

export interface Scope {
  /** source schema -> target schema */
  readonly schemas?: Readonly<Record<string, string>> | undefined;
  readonly include?: readonly string[] | undefined;
  readonly exclude?: readonly string[] | undefined;
}

export interface Pair {
  readonly target?: PgSequence;
  readonly source?: SourceValue;
  /** The target's schema and name (for a source-only sequence: where it would be). */
  readonly schema: string;
  readonly name: string;
  /** A mapping problem, e.g. two source sequences for one target. */
  readonly conflict?: string;
}

const key = (...parts: readonly string[]) => parts.join('\u0000');

/** Target sequences this step may touch: the mapped schemas (if any), include/exclude by `schema.name`. */
export function inScope(scope: Scope): (schema: string, name: string) => boolean {
  const schemas = scope.schemas === undefined ? undefined : new Set(Object.values(scope.schemas));
  const include = scope.include?.length ? globMatcher(scope.include) : () => true;
  const exclude = scope.exclude?.length ? globMatcher(scope.exclude) : () => false;
  return (schema, name) => (schemas === undefined || schemas.has(schema)) && include(`${schema}.${name}`) && !exclude(`${schema}.${name}`);
}

export function matchSequences(targets: readonly PgSequence[], sources: readonly SourceValue[], scope: Scope, options: { readonly foldCase: boolean }): Pair[] {
  const byName = new Map(targets.map((t) => [key(t.schema, t.name), t]));
  const byOwner = new Map(targets.flatMap((t) => (t.owner ? [[key(t.owner.schema, t.owner.table, t.owner.column), t] as const] : [])));
  const schemasOnTarget = new Set(targets.map((t) => t.schema));
  // Oracle names are upper case unless created quoted; PostgreSQL folds to lower.
  const fold = (name: string, exists: (candidate: string) => boolean) => (!options.foldCase || exists(name) ? name : name.toLowerCase());
  const targetSchema = (schema: string) => scope.schemas?.[schema] ?? fold(schema, (s) => schemasOnTarget.has(s));

  const claimed = new Map<PgSequence, SourceValue>();
  const pairs: Pair[] = [];
  for (const source of sources) {
    if (scope.schemas !== undefined && !(source.schema in scope.schemas)) continue;
    const schema = targetSchema(source.schema);
    let target: PgSequence | undefined;
    if (source.owner !== undefined) {
      const ownerSchema = targetSchema(source.owner.schema);
      target =
        byOwner.get(key(ownerSchema, source.owner.table, source.owner.column)) ??
        (options.foldCase ? byOwner.get(key(ownerSchema, source.owner.table.toLowerCase(), source.owner.column.toLowerCase())) : undefined);
    }
    const name = target?.name ?? fold(source.name, (n) => byName.has(key(schema, n)));
    target ??= byName.get(key(schema, name));
    const earlier = target === undefined ? undefined : claimed.get(target);
    if (target !== undefined && earlier !== undefined) {
      pairs.push({
        target,
        source,
        schema,
        name,
        conflict: `both ${earlier.schema}.${earlier.name} and ${source.schema}.${source.name} map to it`,
      });
      continue;
    }
    if (target !== undefined) claimed.set(target, source);
    // Two literals, not a spread of an optional field: at 10,000 sequences the spread cost more than the rest of the match.
    pairs.push(target !== undefined ? { target, source, schema: target.schema, name } : { source, schema, name });
  }
  for (const target of targets) {
    if (!claimed.has(target)) pairs.push({ target, schema: target.schema, name: target.name });
  }
  const wanted = inScope(scope);
  return pairs.filter((p) => wanted(p.schema, p.name));
}
