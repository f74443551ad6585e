/**
 * Reads a runbook file into a validated `Runbook`: YAML with positions, env
 * interpolation, schema validation, then the checks that need the whole file
 * (unique ids, connection references). Every problem is collected and thrown
 * at once as a RunbookValidationError.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { LineCounter, isAlias, isCollection, isPair, type Document } from 'yaml';
import { parseYaml, yamlMessage } from './yaml.js';
import { z } from 'zod';
import { RunbookValidationError, type SourcePosition, type ValidationIssue } from '../errors.js';
import type { KindRulesRegistry, Step } from './kind.js';
import { ConnectionSpecError, resolveConnection } from '../db/connections.js';
import { connectionSchema } from '../db/connection-spec.js';
import { FileRefusal, checkRegularFile, readRegularFile, valueFileLimit } from '../files.js';
import { MIN_SECRET_LENGTH, interpolateEnv } from './interpolate.js';
import { formatPath, SourceMap, type PathKey } from './positions.js';
import { suggest } from './suggest.js';
import { mapReplacedKinds } from './replaced-kinds.js';
import {
  oracleConnectionSchema,
  pgbouncerConnectionSchema,
  patroniConnectionSchema,
  postgresConnectionSchema,
  type ConnectionSpec,
} from '../db/connection-spec.js';
import { baseStepShape, defaultsSchema, runbookSchema } from './schema.js';

export interface Runbook {
  readonly file: string;
  /** Directory the runbook's relative paths (passwordFile, cwd) are resolved against. */
  readonly dir: string;
  /** sha256 of the file's bytes, as read. */
  readonly sha256: string;
  readonly name: string;
  readonly description?: string;
  readonly ticket?: string;
  /** Webhook URLs for run notifications (may hold secrets: `${secret:NAME}`). */
  readonly notify: readonly string[];
  readonly connections: Readonly<Record<string, ConnectionSpec>>;
  readonly defaults: {
    readonly lockTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly onFailure: 'rollback' | 'stop';
  };
  readonly steps: readonly Step[];
  /**
   * Every secret the runbook brings: connection passwords (as written and
   * percent-decoded), passwordFile contents, `${secret:NAME}` values. The
   * redactor masks them in every output.
   */
  readonly secrets: readonly string[];
  /** Problems that do not stop a run (a password file others can read). */
  readonly warnings: readonly string[];
  /**
   * Steps written in a form that still works but is deprecated (`kind:
   * replication-slots` with `action:`), each at its position in the file,
   * naming the kind it runs as.
   */
  readonly deprecations: readonly ValidationIssue[];
}

export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 15 * 60_000;
/** Deeper YAML is refused before anything recursive walks it (runbooks need about 8). */
export const MAX_NESTING_DEPTH = 64;
const TOO_DEEP = `nested more than ${MAX_NESTING_DEPTH} levels deep; a runbook needs far fewer`;
/** Alias expansions allowed in one file (yaml's guard against alias bombs). */
export const MAX_ALIAS_COUNT = 100;
/** Names that would collide with JavaScript object internals. */
const RESERVED_NAMES = new Set(['__proto__', 'constructor', 'prototype', ...Object.getOwnPropertyNames(Object.prototype)]);

const BASE_KEYS = new Set(['kind', ...Object.keys(baseStepShape)]);

/** One schema per kind, joined on `kind`; also the source of the JSON Schema. */
export function buildRunbookSchema(registry: KindRulesRegistry) {
  let schema = schemas.get(registry);
  if (schema === undefined) {
    schema = joinKinds(registry);
    schemas.set(registry, schema);
  }
  return schema;
}

/**
 * Built once per registry: a fleet loads the runbook once per target, and zod
 * compiles a schema's fast path on its first parse (about 1 ms per build and
 * as much per compile, per load, before this cache).
 */
const schemas = new WeakMap<KindRulesRegistry, ReturnType<typeof joinKinds>>();

function joinKinds(registry: KindRulesRegistry) {
  const variants = Object.values(registry).map((definition) =>
    z.strictObject({ ...baseStepShape, kind: z.literal(definition.kind), ...definition.config.shape }).describe(definition.summary),
  );
  const [first, ...rest] = variants;
  if (first === undefined) throw new Error('no step kinds registered');
  return runbookSchema(z.discriminatedUnion('kind', [first, ...rest]));
}

export interface LoadOptions {
  readonly registry: KindRulesRegistry;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function loadRunbook(file: string, options: LoadOptions): Runbook {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, valueFileLimit(options.env ?? process.env));
  } catch (error) {
    const message = error instanceof FileRefusal ? error.message : `cannot read ${file}`;
    throw new RunbookValidationError(file, [{ position: { file, line: 1, column: 1 }, path: '(file)', message }]);
  }
  return parseRunbook(bytes.toString('utf8'), file, options, sha256(bytes));
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function parseRunbook(text: string, file: string, options: LoadOptions, digest = sha256(text)): Runbook {
  try {
    return parseUnguarded(text, file, options, digest);
  } catch (error) {
    if (error instanceof RunbookValidationError) throw error;
    // Whatever slipped past the guards below still gets a position and exit 2, not a JavaScript error.
    const why = error instanceof RangeError ? 'it is too large or too deeply nested' : 'an unexpected problem in the file';
    throw new RunbookValidationError(file, [{ position: { file, line: 1, column: 1 }, path: '(file)', message: `cannot validate the runbook: ${why}` }]);
  }
}

function parseUnguarded(text: string, file: string, options: LoadOptions, digest: string): Runbook {
  const env = options.env ?? process.env;
  const lines = new LineCounter();
  const doc = parseYaml(text, lines);
  const source = new SourceMap(doc, lines, file);
  // The parser reports its own stack overflow on absurd nesting as syntax errors: one issue, at the first.
  const overflow = doc.errors.filter((e) => /call stack/i.test(e.message)).sort((a, b) => a.pos[0] - b.pos[0])[0];
  const syntaxIssues = [...doc.errors, ...doc.warnings]
    .filter((e) => !/call stack/i.test(e.message))
    .map((e): ValidationIssue => ({ position: source.offset(e.pos[0]), path: '(yaml)', message: yamlMessage(e) }));
  if (overflow !== undefined) syntaxIssues.push({ position: source.offset(overflow.pos[0]), path: '(yaml)', message: TOO_DEEP });
  if (syntaxIssues.length > 0) throw new RunbookValidationError(file, syntaxIssues);
  const structural = structureIssues(doc, source);
  if (structural.length > 0) throw new RunbookValidationError(file, structural);

  const { issues, secrets } = interpolateEnv(doc, env, source);
  let written: unknown;
  try {
    written = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new RunbookValidationError(file, [
      {
        position: firstAliasPosition(doc, source),
        path: '(yaml)',
        message: /excessive alias/i.test(message)
          ? `aliases expand too often (more than ${MAX_ALIAS_COUNT} times): an alias bomb is refused`
          : `cannot resolve an alias: ${message.split('\n')[0]}`,
      },
    ]);
  }
  issues.push(...reservedNames(written, source));
  // Steps in the form of a kind that was split are read as the kind that replaced it.
  const replaced = mapReplacedKinds(written, Object.values(options.registry), source);
  const raw = replaced.raw;
  issues.push(...replaced.issues);
  const parsed = buildRunbookSchema(options.registry).safeParse(raw);
  if (!parsed.success) {
    // A value of the wrong type is reported as that alone, not also by the checks its type would have had.
    const mistyped = new Set(parsed.error.issues.filter((i) => i.code === 'invalid_type').map((i) => JSON.stringify(i.path)));
    issues.push(
      ...parsed.error.issues
        // An old-form step that maps to no kind is reported once, by the mapping.
        .filter((issue) => !(issue.path[0] === 'steps' && typeof issue.path[1] === 'number' && replaced.unmapped.has(issue.path[1])))
        .filter((issue) => issue.code === 'invalid_type' || !mistyped.has(JSON.stringify(issue.path)))
        .flatMap((issue) => describeIssue(issue, raw, source, options.registry, replaced.rewritten)),
    );
  }
  // Whole-file checks run on the tree as written, so they are reported with schema errors, not after them.
  const built: Step[] = [];
  issues.push(...crossChecks(env, raw, parsed.success ? parsed.data.steps : undefined, options.registry, source, built));
  const warnings: string[] = [];
  // Resolving needs the values as they will be used: not while a ${NAME} in them is unset. Each connection that
  // is valid on its own is resolved even when another part of the file is not, so all problems come at once.
  const connections = parsed.success ? parsed.data.connections : validOnTheirOwn(raw);
  const ready = Object.fromEntries(
    Object.entries(connections).filter(([name]) => !issues.some((i) => i.path === `connections.${name}` || i.path.startsWith(`connections.${name}.`))),
  );
  issues.push(...connectionIssues(ready, { baseDir: path.dirname(path.resolve(file)), env }, source, secrets, warnings));
  if (!parsed.success || issues.length > 0) throw new RunbookValidationError(file, sortIssues(issues));
  const value = parsed.data;
  const steps = built;

  return {
    file,
    dir: path.dirname(path.resolve(file)),
    sha256: digest,
    name: value.name,
    ...(value.description !== undefined ? { description: value.description } : {}),
    ...(value.ticket !== undefined ? { ticket: value.ticket } : {}),
    notify: value.notify ?? [],
    connections: value.connections,
    defaults: {
      lockTimeoutMs: value.defaults?.lockTimeout ?? DEFAULT_LOCK_TIMEOUT_MS,
      statementTimeoutMs: value.defaults?.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT_MS,
      onFailure: value.defaults?.onFailure ?? 'rollback',
    },
    steps,
    secrets: [...new Set(secrets)],
    warnings,
    deprecations: replaced.deprecations,
  };
}

/**
 * Nesting depth and unresolved aliases, found with an explicit stack before
 * anything recursive (interpolation, toJS, the schema) walks the tree.
 */
function structureIssues(doc: Document, source: SourceMap): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const stack: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (isAlias(node)) {
      if (node.resolve(doc) === undefined) {
        issues.push({
          position: source.offset(node.range?.[0] ?? 0),
          path: '(yaml)',
          message: `unresolved alias *${node.source}: no anchor &${node.source} is defined before it`,
        });
      }
    } else if (isCollection(node)) {
      if (depth > MAX_NESTING_DEPTH) {
        issues.push({
          position: source.offset(node.range?.[0] ?? 0),
          path: '(yaml)',
          message: TOO_DEEP,
        });
        return issues;
      }
      for (const item of node.items) {
        if (isPair(item)) {
          stack.push({ node: item.key, depth: depth + 1 }, { node: item.value, depth: depth + 1 });
        } else stack.push({ node: item, depth: depth + 1 });
      }
    }
  }
  return issues;
}

function firstAliasPosition(doc: Document, source: SourceMap): SourcePosition {
  const stack: unknown[] = [doc.contents];
  let first: number | undefined;
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node)) first = Math.min(first ?? Infinity, node.range?.[0] ?? 0);
    else if (isCollection(node)) for (const item of node.items) stack.push(isPair(item) ? item.value : item, isPair(item) ? item.key : undefined);
  }
  return source.offset(first ?? 0);
}

/** Connection names like `__proto__` would vanish into, or collide with, JavaScript object internals. */
function reservedNames(raw: unknown, source: SourceMap): ValidationIssue[] {
  const connections = ownValue(raw, 'connections');
  if (connections === null || typeof connections !== 'object') return [];
  return Object.keys(connections)
    .filter((name) => RESERVED_NAMES.has(name))
    .map((name) => ({
      position: source.keyAt(['connections'], name),
      path: formatPath(['connections', name]),
      message: `"${name}" is a reserved name; name the connection something else`,
    }));
}

function ownValue(object: unknown, key: string | number): unknown {
  if (object === null || typeof object !== 'object' || !Object.hasOwn(object, key)) return undefined;
  return (object as Record<string | number, unknown>)[key];
}

/**
 * Resolves each connection as a run will (URL syntax, files, the password),
 * so a bad one is reported here with its position, and collects secrets.
 */
/** The connections of a runbook that failed its schema, each that passes the connection schema on its own. */
function validOnTheirOwn(raw: unknown): Record<string, ConnectionSpec> {
  const written = typeof raw === 'object' && raw !== null ? (raw as { connections?: unknown }).connections : undefined;
  if (typeof written !== 'object' || written === null || Array.isArray(written)) return {};
  return Object.fromEntries(
    Object.entries(written).flatMap(([name, value]) => {
      const one = connectionSchema.safeParse(value);
      return one.success ? [[name, one.data]] : [];
    }),
  );
}

function connectionIssues(
  connections: Readonly<Record<string, ConnectionSpec>>,
  options: { baseDir: string; env: Readonly<Record<string, string | undefined>> },
  source: SourceMap,
  secrets: string[],
  warnings: string[],
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const [name, spec] of Object.entries(connections)) {
    try {
      const resolved = resolveConnection(name, spec, options);
      warnings.push(...resolved.warnings);
      secrets.push(...resolved.secrets);
      if (resolved.secrets.some((secret) => secret.length < MIN_SECRET_LENGTH)) {
        const from = resolved.passwordSource;
        const key = from === 'the URL' ? 'url' : from === 'password' ? 'password' : from.startsWith('passwordFile') ? 'passwordFile' : undefined;
        const at = ['connections', name, ...(key !== undefined ? [key] : [])];
        issues.push({
          position: source.valueAt(at),
          path: formatPath(at),
          message: `the password (from ${resolved.passwordSource}) is shorter than ${MIN_SECRET_LENGTH} characters: it could not be redacted from output without destroying it; use a longer one`,
        });
      }
    } catch (error) {
      if (!(error instanceof ConnectionSpecError)) throw error;
      const key = Object.hasOwn(spec, error.key) ? error.key : undefined;
      const at = ['connections', name, ...(key !== undefined ? [key] : [])];
      issues.push({ position: source.valueAt(at), path: formatPath(at), message: error.message.replace(/^connection "[^"]*": /, '') });
    }
  }
  return issues;
}

function toStep(raw: Record<string, unknown>, source: SourceMap, index: number): Step {
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) if (!BASE_KEYS.has(key)) config[key] = value;
  const confirm = raw['confirm'];
  return {
    id: raw['id'] as string,
    kind: raw['kind'] as string,
    ...(typeof raw['description'] === 'string' ? { description: raw['description'] } : {}),
    ...(typeof raw['connection'] === 'string' ? { connection: raw['connection'] } : {}),
    ...(typeof raw['timeout'] === 'number' ? { timeoutMs: raw['timeout'] } : {}),
    retries: typeof raw['retries'] === 'number' ? raw['retries'] : 0,
    ...(confirm === true ? { confirm: `apply step "${String(raw['id'])}"?` } : {}),
    ...(typeof confirm === 'string' ? { confirm } : {}),
    idempotent: raw['idempotent'] === true,
    window: raw['window'] === true,
    config,
    line: source.valueAt(['steps', index]).line,
  };
}

function crossChecks(
  env: Readonly<Record<string, string | undefined>>,
  raw: unknown,
  parsedSteps: readonly unknown[] | undefined,
  registry: KindRulesRegistry,
  source: SourceMap,
  /** Receives each validated step, when the whole file parsed. */
  built: Step[],
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const steps = ownValue(raw, 'steps');
  if (!Array.isArray(steps)) return issues;
  const connectionsRaw = ownValue(raw, 'connections');
  const connectionKind = (name: string): 'postgres' | 'oracle' | undefined => {
    const kind = ownValue(ownValue(connectionsRaw, name), 'kind');
    return kind === 'postgres' || kind === 'oracle' ? kind : undefined;
  };
  const known = connectionsRaw !== null && typeof connectionsRaw === 'object' ? Object.keys(connectionsRaw).filter((n) => !RESERVED_NAMES.has(n)) : [];
  const seen = new Map<string, number>();
  steps.forEach((rawStep: unknown, index) => {
    const id = ownValue(rawStep, 'id');
    const named = typeof id === 'string' ? `step "${id}": ` : '';
    const issue = (at: PathKey[], message: string) => issues.push({ position: source.valueAt(at), path: formatPath(at), message: `${named}${message}` });
    if (typeof id === 'string') {
      const first = seen.get(id);
      if (first !== undefined) {
        issue(['steps', index, 'id'], `duplicate step id "${id}" (first used at line ${source.valueAt(['steps', first]).line})`);
      } else seen.set(id, index);
    }
    const kind = ownValue(rawStep, 'kind');
    const definition = typeof kind === 'string' && Object.hasOwn(registry, kind) ? registry[kind] : undefined;
    if (definition === undefined) return; // reported by the schema
    const checkReference = (name: string, at: PathKey[], kinds: readonly string[]) => {
      const spec = connectionKind(name);
      if (!known.includes(name)) {
        issue(at, `unknown connection "${name}"${suggest(name, known)}${known.length ? ` (defined: ${known.join(', ')})` : ' (no connections are defined)'}`);
      } else if (spec !== undefined && !kinds.includes(spec)) {
        issue(at, `connection "${name}" is ${spec}; a ${definition.kind} step needs ${kinds.join(' or ')}`);
      }
    };
    const connection = ownValue(rawStep, 'connection');
    if (typeof connection === 'string') {
      checkReference(connection, ['steps', index, 'connection'], definition.connection.kinds);
    } else if (connection === undefined && definition.connection.required) {
      issue(['steps', index], `a ${definition.kind} step needs "connection"`);
    }
    // The kind's own rules need its parsed config: only when the whole file parsed.
    const parsed = parsedSteps?.[index] as Record<string, unknown> | undefined;
    if (parsed === undefined) return;
    const step = toStep(parsed, source, index);
    built.push(step);
    for (const name of definition.connections?.(step.config) ?? []) {
      checkReference(name, ['steps', index], ['postgres', 'oracle']);
    }
    for (const problem of definition.validate?.(step.config, { connectionKind }) ?? []) {
      issue(['steps', index, ...problem.path], problem.message);
    }
    for (const named of definition.files?.(step.config) ?? []) {
      try {
        checkRegularFile(path.resolve(source.dir, named.file), valueFileLimit(env));
      } catch (error) {
        if (!(error instanceof FileRefusal)) throw error;
        issue(['steps', index, ...named.path], error.message);
      }
    }
    const effects = definition.effects(step.config);
    if (step.retries > 0 && effects === 'external' && !step.idempotent && definition.idempotent !== true) {
      issue(['steps', index, 'retries'], 'retries on a step with side effects outside a transaction needs "idempotent: true" (a retry would run it twice)');
    }
  });
  return issues;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  raw: unknown,
  source: SourceMap,
  registry: KindRulesRegistry,
  /** Steps read as another kind than written (index -> the form written), for messages. */
  rewritten: ReadonlyMap<number, string>,
): ValidationIssue[] {
  const at = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
  // Steps are named by id wherever the id is known: "step \"copy\": ...".
  const stepId = at[0] === 'steps' && typeof at[1] === 'number' ? valueAt(raw, ['steps', at[1], 'id']) : undefined;
  const named = typeof stepId === 'string' ? `step "${stepId}": ` : '';
  const stepAt = (): Record<string, unknown> | undefined => {
    const value = valueAt(raw, at);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  };
  if (issue.code === 'unrecognized_keys') {
    const form = at.length === 2 && typeof at[1] === 'number' ? rewritten.get(at[1]) : undefined;
    const known = knownKeysAt(at, stepAt(), registry);
    // A key the old form took for another action: say which kind the step runs as, and what that kind takes.
    const kind = stepAt()?.['kind'];
    const why =
      form === undefined
        ? ''
        : ` (${form} runs as kind: ${String(kind)}, which takes: ${known.filter((k) => !BASE_KEYS.has(k)).join(', ') || 'no fields of its own'})`;
    return issue.keys.map((key) => ({
      position: source.keyAt(at, key),
      path: formatPath([...at, key]),
      message: `${named}unknown key "${key}"${suggest(key, known)}${why}`,
    }));
  }
  // zod reports a bad discriminator at steps[i].kind (or at steps[i] in older releases).
  const isStepKind = at[0] === 'steps' && (at.length === 2 || (at.length === 3 && at[2] === 'kind'));
  if (issue.code === 'invalid_union' && isStepKind) {
    const stepPath = at.slice(0, 2);
    const kind = valueAt(raw, [...stepPath, 'kind']);
    const kinds = Object.keys(registry);
    const message =
      kind === undefined
        ? `missing key "kind" (one of: ${kinds.join(', ')})`
        : `unknown step kind ${JSON.stringify(kind)}${typeof kind === 'string' ? suggest(kind, kinds) : ''} (one of: ${kinds.join(', ')})`;
    return [{ position: source.valueAt([...stepPath, 'kind']), path: formatPath([...stepPath, 'kind']), message: `${named}${message}` }];
  }
  // Whatever the expected type (a union, a literal), an absent key is reported as missing.
  const parent = valueAt(raw, at.slice(0, -1));
  const actual = valueAt(raw, at);
  const missing = actual === undefined && parent !== null && typeof parent === 'object';
  const key = at[at.length - 1];
  let message = missing && typeof key === 'string' ? `missing required key "${key}"` : issue.message;
  if (!missing && issue.code === 'invalid_value' && typeof actual === 'string') {
    message += suggest(actual, issue.values.map(String));
  }
  return [{ position: source.valueAt(at), path: formatPath(at), message: `${named}${message}` }];
}

function valueAt(raw: unknown, at: readonly PathKey[]): unknown {
  let node = raw;
  for (const key of at) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function knownKeysAt(at: readonly PathKey[], object: Record<string, unknown> | undefined, registry: KindRulesRegistry): string[] {
  if (at[0] === 'steps' && at.length === 2) {
    const kind = object?.['kind'];
    const definition = typeof kind === 'string' ? registry[kind] : undefined;
    return [...BASE_KEYS, ...Object.keys(definition?.config.shape ?? {})];
  }
  if (at.length === 0) return ['version', 'name', 'description', 'ticket', 'notify', 'connections', 'defaults', 'steps'];
  if (at.length === 1 && at[0] === 'defaults') return Object.keys(defaultsSchema.shape);
  if (at.length === 2 && at[0] === 'connections') {
    const kind = object?.['kind'];
    const schema =
      kind === 'oracle'
        ? oracleConnectionSchema
        : kind === 'pgbouncer'
          ? pgbouncerConnectionSchema
          : kind === 'patroni'
            ? patroniConnectionSchema
            : postgresConnectionSchema;
    return Object.keys(schema.shape);
  }
  return [];
}

function sortIssues(issues: ValidationIssue[]): ValidationIssue[] {
  return issues.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
}
