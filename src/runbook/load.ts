/**
 * Reads a runbook file into a validated `Runbook`: YAML with positions, env
 * interpolation, schema validation, then the checks that need the whole file
 * (unique ids, connection references). Every problem is collected and thrown
 * at once as a RunbookValidationError.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { RunbookValidationError, type ValidationIssue } from '../errors.js';
import type { Step, StepDefinition } from '../engine/step.js';
import { interpolateEnv } from './interpolate.js';
import { formatPath, SourceMap, type PathKey } from './positions.js';
import {
  baseStepShape,
  defaultsSchema,
  oracleConnectionSchema,
  pgbouncerConnectionSchema,
  patroniConnectionSchema,
  postgresConnectionSchema,
  runbookSchema,
  type ConnectionSpec,
} from './schema.js';

export interface Runbook {
  readonly file: string;
  /** Directory the runbook's relative paths (passwordFile, cwd) are resolved against. */
  readonly dir: string;
  /** sha256 of the file's bytes, as read. */
  readonly sha256: string;
  readonly name: string;
  readonly description?: string;
  readonly ticket?: string;
  readonly connections: Readonly<Record<string, ConnectionSpec>>;
  readonly defaults: {
    readonly lockTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly onFailure: 'rollback' | 'stop';
  };
  readonly steps: readonly Step[];
}

export type StepRegistry = Readonly<Record<string, StepDefinition>>;

export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 15 * 60_000;

const BASE_KEYS = new Set(['kind', ...Object.keys(baseStepShape)]);

/** One schema per kind, joined on `kind`; also the source of the JSON Schema. */
export function buildRunbookSchema(registry: StepRegistry) {
  const variants = Object.values(registry).map((definition) =>
    z
      .strictObject({ ...baseStepShape, kind: z.literal(definition.kind), ...definition.config.shape })
      .describe(definition.summary),
  );
  const [first, ...rest] = variants;
  if (first === undefined) throw new Error('no step kinds registered');
  return runbookSchema(z.discriminatedUnion('kind', [first, ...rest]));
}

export interface LoadOptions {
  readonly registry: StepRegistry;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function loadRunbook(file: string, options: LoadOptions): Runbook {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new RunbookValidationError(file, [
      { position: { file, line: 1, column: 1 }, path: '(file)', message: `cannot read the file (${code})` },
    ]);
  }
  return parseRunbook(bytes.toString('utf8'), file, options, sha256(bytes));
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function parseRunbook(text: string, file: string, options: LoadOptions, digest = sha256(text)): Runbook {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const source = new SourceMap(doc, lines, file);
  const syntaxIssues = [...doc.errors, ...doc.warnings].map(
    (e): ValidationIssue => ({ position: source.offset(e.pos[0]), path: '(yaml)', message: e.message.split('\n')[0] ?? e.code }),
  );
  if (syntaxIssues.length > 0) throw new RunbookValidationError(file, syntaxIssues);

  const issues = interpolateEnv(doc, options.env ?? process.env, source);
  const raw: unknown = doc.toJS();
  const parsed = buildRunbookSchema(options.registry).safeParse(raw);
  if (!parsed.success) {
    issues.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, raw, source, options.registry)));
    throw new RunbookValidationError(file, sortIssues(issues));
  }
  const value = parsed.data;
  const steps = value.steps.map((rawStep, index) => toStep(rawStep as Record<string, unknown>, source, index));
  issues.push(...crossChecks(steps, value.connections, options.registry, source));
  if (issues.length > 0) throw new RunbookValidationError(file, sortIssues(issues));

  return {
    file,
    dir: path.dirname(path.resolve(file)),
    sha256: digest,
    name: value.name,
    ...(value.description !== undefined ? { description: value.description } : {}),
    ...(value.ticket !== undefined ? { ticket: value.ticket } : {}),
    connections: value.connections,
    defaults: {
      lockTimeoutMs: value.defaults?.lockTimeout ?? DEFAULT_LOCK_TIMEOUT_MS,
      statementTimeoutMs: value.defaults?.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT_MS,
      onFailure: value.defaults?.onFailure ?? 'rollback',
    },
    steps,
  };
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
  steps: readonly Step[],
  connections: Readonly<Record<string, ConnectionSpec>>,
  registry: StepRegistry,
  source: SourceMap,
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const issue = (at: PathKey[], message: string) =>
    issues.push({ position: source.valueAt(at), path: formatPath(at), message });
  const seen = new Map<string, number>();
  steps.forEach((step, index) => {
    const first = seen.get(step.id);
    if (first !== undefined) {
      issue(['steps', index, 'id'], `duplicate step id "${step.id}" (first used at line ${steps[first]?.line})`);
    } else seen.set(step.id, index);

    const definition = registry[step.kind];
    if (definition === undefined) return; // reported by the schema
    const known = Object.keys(connections);
    const checkReference = (name: string, at: PathKey[], kinds: readonly string[]) => {
      const spec = connections[name];
      if (spec === undefined) {
        issue(at, `unknown connection "${name}"${known.length ? ` (defined: ${known.join(', ')})` : ' (no connections are defined)'}`);
      } else if (!kinds.includes(spec.kind)) {
        issue(at, `connection "${name}" is ${spec.kind}; a ${step.kind} step needs ${kinds.join(' or ')}`);
      }
    };
    if (step.connection !== undefined) {
      checkReference(step.connection, ['steps', index, 'connection'], definition.connection.kinds);
    } else if (definition.connection.required) {
      issue(['steps', index], `a ${step.kind} step needs "connection"`);
    }
    for (const name of definition.connections?.(step.config) ?? []) {
      checkReference(name, ['steps', index], ['postgres', 'oracle']);
    }
    for (const problem of definition.validate?.(step.config, { connectionKind: (name) => connections[name]?.kind }) ?? []) {
      issue(['steps', index, ...problem.path], problem.message);
    }
    const effects = definition.effects(step.config);
    if (step.retries > 0 && effects === 'external' && !step.idempotent && definition.idempotent !== true) {
      issue(
        ['steps', index, 'retries'],
        'retries on a step with side effects outside a transaction needs "idempotent: true" (a retry would run it twice)',
      );
    }
  });
  return issues;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  raw: unknown,
  source: SourceMap,
  registry: StepRegistry,
): ValidationIssue[] {
  const at = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
  const stepAt = (): Record<string, unknown> | undefined => {
    const value = valueAt(raw, at);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  };
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      position: source.keyAt(at, key),
      path: formatPath([...at, key]),
      message: `unknown key "${key}"${suggest(key, knownKeysAt(at, stepAt(), registry))}`,
    }));
  }
  // zod reports a bad discriminator at steps[i].kind (or at steps[i] in older releases).
  const isStepKind = at[0] === 'steps' && (at.length === 2 || (at.length === 3 && at[2] === 'kind'));
  if (issue.code === 'invalid_union' && isStepKind) {
    const stepPath = at.slice(0, 2);
    const step = valueAt(raw, stepPath);
    const kind = step !== null && typeof step === 'object' ? (step as Record<string, unknown>)['kind'] : undefined;
    const kinds = Object.keys(registry).join(', ');
    const message =
      kind === undefined
        ? `missing key "kind" (one of: ${kinds})`
        : `unknown step kind ${JSON.stringify(kind)} (one of: ${kinds})`;
    return [{ position: source.valueAt([...stepPath, 'kind']), path: formatPath([...stepPath, 'kind']), message }];
  }
  // Whatever the expected type (a union, a literal), an absent key is reported as missing.
  const parent = valueAt(raw, at.slice(0, -1));
  const missing = valueAt(raw, at) === undefined && parent !== null && typeof parent === 'object';
  const key = at[at.length - 1];
  return [
    {
      position: source.valueAt(at),
      path: formatPath(at),
      message: missing && typeof key === 'string' ? `missing required key "${key}"` : issue.message,
    },
  ];
}

function valueAt(raw: unknown, at: readonly PathKey[]): unknown {
  let node = raw;
  for (const key of at) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function knownKeysAt(
  at: readonly PathKey[],
  object: Record<string, unknown> | undefined,
  registry: StepRegistry,
): string[] {
  if (at[0] === 'steps' && at.length === 2) {
    const kind = object?.['kind'];
    const definition = typeof kind === 'string' ? registry[kind] : undefined;
    return [...BASE_KEYS, ...Object.keys(definition?.config.shape ?? {})];
  }
  if (at.length === 0) return ['version', 'name', 'description', 'ticket', 'connections', 'defaults', 'steps'];
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

/** "did you mean" for near-miss keys: typos are the usual cause of unknown keys. */
function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function sortIssues(issues: ValidationIssue[]): ValidationIssue[] {
  return issues.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
}
