/**
 * The fleet inventory: which databases one runbook runs against, in which
 * waves, how many may fail, how many may run at once. YAML with positions,
 * one zod schema (the types, the validation, the JSON Schema), unknown keys
 * rejected, every problem listed at once as file:line:column.
 *
 * Secrets are references only (`{ env: NAME }` or `{ file: path }`): a
 * password written into the inventory (a URL with a password, a variable
 * named like one) is refused, so the inventory can live in a repository.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { LineCounter } from 'yaml';
import { z } from 'zod';
import { RunbookValidationError, type ValidationIssue } from '../errors.js';
import { FileRefusal, SMALL_FILE_LIMIT, readRegularFile, valueFileLimit } from '../files.js';
import { MIN_SECRET_LENGTH } from '../runbook/interpolate.js';
import { formatPath, SourceMap, type PathKey } from '../runbook/positions.js';
import { parseYaml, yamlMessage } from '../runbook/yaml.js';
import { objectKeysAt, suggest } from '../runbook/suggest.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A variable that by its name holds a credential must be a secret reference. */
const SECRET_LIKE = /PASSWORD|PASSWD|SECRET|TOKEN|(^|_)PW$|(^|_)PASS$/i;

const name = z.string().regex(NAME, 'a name of letters, digits, ".", "_" and "-" (it names a directory), starting with a letter or digit');
const variables = z
  .record(z.string().regex(VARIABLE, 'a variable name: letters, digits and _, not starting with a digit'), z.union([z.string(), z.number(), z.boolean()]))
  .describe("values for the runbook's ${NAME} references (never a password: use secrets)");
const secretRef = z.union(
  [
    z.strictObject({ env: z.string().regex(VARIABLE).describe('an environment variable of the machine running the fleet') }),
    z.strictObject({ file: z.string().min(1).describe('a file holding the secret (first line), relative to the inventory') }),
  ],
  { error: 'a secret is given by reference, never inline: { env: NAME } or { file: path }' },
);
const secrets = z
  .record(z.string().regex(VARIABLE, 'a variable name: letters, digits and _, not starting with a digit'), secretRef)
  .describe("values for the runbook's ${secret:NAME} references, by reference only: { env: NAME } or { file: path }");
const labels = z.record(z.string().regex(NAME, 'a label name of letters, digits, ".", "_" and "-"'), z.string());
const maxFailures = z
  .union([z.number().int().min(0), z.string().regex(/^(100|[0-9]{1,2})(\.[0-9]+)?%$/, 'a percentage such as 10%')])
  .describe('failed targets tolerated in a wave before no new target starts: a number, or a percentage of the wave');

export const inventorySchema = z
  .strictObject({
    version: z.literal(1),
    name: name.describe('names the fleet: its state lives under <state-dir>/fleets/<name>/'),
    description: z.string().optional(),
    variables: variables.optional().describe("variables every target gets (a target's own win)"),
    secrets: secrets.optional().describe("secrets every target gets (a target's own win)"),
    targets: z
      .array(
        z.strictObject({
          name,
          labels: labels.optional(),
          variables: variables.optional(),
          secrets: secrets.optional(),
        }),
      )
      .min(1),
    waves: z
      .array(
        z.strictObject({
          name,
          targets: z.array(z.string().min(1)).min(1).optional().describe('target names or patterns (* and ?)'),
          labels: labels.optional().describe('every label must match'),
          parallel: z.number().int().min(1).optional().describe('targets of this wave running at once (bounded by --jobs)'),
          maxFailures: maxFailures.optional(),
        }),
      )
      .min(1)
      .optional()
      .describe('in order; a target runs in the first wave that selects it; a wave without a selector takes every target left'),
    maxFailures: maxFailures.optional().describe('the default for every wave (default 0)'),
    concurrencyGroups: z
      .array(
        z.strictObject({
          label: z.string().regex(NAME).describe('targets with the same value of this label form a group'),
          max: z.number().int().min(1).describe('at most this many of a group run at once'),
        }),
      )
      .optional(),
    approval: z.enum(['between-waves', 'none']).optional().describe('between-waves: each wave after the first waits for cutover fleet approve <wave>'),
  })
  .describe('cutover fleet inventory');

export type RawInventory = z.output<typeof inventorySchema>;

export interface Target {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Plain values for `${NAME}`. */
  readonly variables: Readonly<Record<string, string>>;
  /** Resolved secret values for `${secret:NAME}`, from the environment or files. */
  readonly secrets: Readonly<Record<string, string>>;
  readonly wave: string;
}

export interface Wave {
  readonly name: string;
  readonly targets: readonly string[];
  readonly parallel: number | undefined;
  readonly maxFailures: number | `${number}%`;
}

export interface Inventory {
  readonly file: string;
  readonly sha256: string;
  readonly name: string;
  readonly targets: readonly Target[];
  readonly waves: readonly Wave[];
  readonly concurrencyGroups: readonly { readonly label: string; readonly max: number }[];
  readonly approval: 'between-waves' | 'none';
}

/** The published JSON Schema of the inventory, from the schema that validates it. */
export function inventoryJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(inventorySchema, { io: 'input', unrepresentable: 'any' });
  return { ...schema, title: 'cutover fleet inventory', $id: 'https://cutover.dev/schema/inventory-v1.json' };
}

/** How many failures a wave of `size` targets tolerates. */
export function allowedFailures(wave: Pick<Wave, 'maxFailures'>, size: number): number {
  if (typeof wave.maxFailures === 'number') return wave.maxFailures;
  return Math.floor((Number(wave.maxFailures.slice(0, -1)) / 100) * size);
}

function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

export interface LoadInventoryOptions {
  /** Where `{ env: NAME }` secrets are read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * false: do not read secrets (status, approve): each gets a placeholder,
   * so looking at a fleet never needs its passwords. Default true.
   */
  readonly resolveSecrets?: boolean;
}

export function loadInventory(file: string, options: LoadInventoryOptions = {}): Inventory {
  const env = options.env ?? process.env;
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, valueFileLimit(env));
  } catch (error) {
    const message = error instanceof FileRefusal ? error.message : `cannot read ${file}`;
    throw new RunbookValidationError(file, [{ position: { file, line: 1, column: 1 }, path: '(file)', message }]);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const lines = new LineCounter();
  const doc = parseYaml(bytes.toString('utf8'), lines);
  const source = new SourceMap(doc, lines, file);
  const syntax = [...doc.errors, ...doc.warnings].map((e): ValidationIssue => ({
    position: source.offset(e.pos[0]),
    path: '(yaml)',
    message: yamlMessage(e),
  }));
  if (syntax.length > 0) throw new RunbookValidationError(file, syntax);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw new RunbookValidationError(file, [
      { position: { file, line: 1, column: 1 }, path: '(yaml)', message: 'aliases expand too often or cannot be resolved' },
    ]);
  }
  const parsed = inventorySchema.safeParse(raw);
  if (!parsed.success) {
    throw new RunbookValidationError(
      file,
      sortIssues(
        parsed.error.issues.flatMap((issue): ValidationIssue[] => {
          const at = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
          if (issue.code === 'unrecognized_keys') {
            const known = objectKeysAt(inventorySchema, at);
            return issue.keys.map((key) => ({
              position: source.keyAt(at, key),
              path: formatPath([...at, key]),
              message: `unknown key "${key}"${suggest(key, known)}`,
            }));
          }
          const missing = issue.code === 'invalid_type' && valueAtPath(raw, at) === undefined;
          return [{ position: source.valueAt(at), path: formatPath(at), message: missing ? `missing key "${String(at.at(-1))}"` : issue.message }];
        }),
      ),
    );
  }
  const issues: ValidationIssue[] = [];
  const built = build(parsed.data, source, env, issues, options.resolveSecrets !== false);
  if (issues.length > 0) throw new RunbookValidationError(file, sortIssues(issues));
  return { file, sha256, ...built };
}

function valueAtPath(object: unknown, at: readonly PathKey[]): unknown {
  let value = object;
  for (const key of at) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PathKey, unknown>)[key];
  }
  return value;
}

function sortIssues(issues: ValidationIssue[]): ValidationIssue[] {
  return issues.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
}

function build(
  value: RawInventory,
  source: SourceMap,
  env: Readonly<Record<string, string | undefined>>,
  issues: ValidationIssue[],
  readSecrets: boolean,
): Omit<Inventory, 'file' | 'sha256'> {
  const issue = (at: PathKey[], message: string) => issues.push({ position: source.valueAt(at), path: formatPath(at), message });
  const keyIssue = (at: PathKey[], key: string, message: string) => issues.push({ position: source.keyAt(at, key), path: formatPath([...at, key]), message });

  const checkVariables = (vars: Record<string, string | number | boolean> | undefined, at: PathKey[]) => {
    for (const [key, v] of Object.entries(vars ?? {})) {
      if (SECRET_LIKE.test(key)) {
        keyIssue(at, key, `"${key}" looks like a credential: declare it under secrets as { env: NAME } or { file: path }, never inline`);
      } else if (typeof v === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(v)) {
        issue([...at, key], `${key} holds a URL with a password: leave the password out of the URL and put it under secrets ({ env: NAME } or { file: path })`);
      }
    }
  };
  const resolveSecrets = (refs: RawInventory['secrets'], at: PathKey[]): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [key, ref] of Object.entries(refs ?? {})) {
      if (!readSecrets) {
        out[key] = `[secret ${key} not read]`;
        continue;
      }
      let secret: string | undefined;
      if ('env' in ref) {
        secret = Object.hasOwn(env, ref.env) ? env[ref.env] : undefined;
        if (secret === undefined) {
          issue([...at, key, 'env'], `secret ${key}: the environment variable ${ref.env} is not set`);
          continue;
        }
      } else {
        const file = path.resolve(source.dir, ref.file);
        try {
          secret = (readRegularFile(file, SMALL_FILE_LIMIT).toString('utf8').split(/\r?\n/)[0] ?? '').trim();
        } catch (error) {
          issue([...at, key, 'file'], `secret ${key}: ${error instanceof FileRefusal ? error.message : `cannot read ${file}`}`);
          continue;
        }
      }
      if (secret.length < MIN_SECRET_LENGTH) {
        issue([...at, key], `secret ${key} is shorter than ${MIN_SECRET_LENGTH} characters: it could not be redacted from output; use a longer one`);
        continue;
      }
      out[key] = secret;
    }
    return out;
  };

  checkVariables(value.variables, ['variables']);
  const sharedSecrets = resolveSecrets(value.secrets, ['secrets']);
  const seenTargets = new Map<string, number>();
  const targets = value.targets.map((t, i) => {
    const first = seenTargets.get(t.name);
    if (first !== undefined) issue(['targets', i, 'name'], `duplicate target name "${t.name}" (first at line ${source.valueAt(['targets', first]).line})`);
    else seenTargets.set(t.name, i);
    checkVariables(t.variables, ['targets', i, 'variables']);
    for (const key of Object.keys(t.variables ?? {})) {
      if (Object.hasOwn(t.secrets ?? {}, key) || Object.hasOwn(value.secrets ?? {}, key)) {
        keyIssue(['targets', i, 'variables'], key, `${key} is both a variable and a secret; keep one`);
      }
    }
    const own = resolveSecrets(t.secrets, ['targets', i, 'secrets']);
    const vars = Object.fromEntries(Object.entries({ ...value.variables, ...t.variables }).map(([k, v]) => [k, String(v)]));
    return { name: t.name, labels: t.labels ?? {}, variables: vars, secrets: { ...sharedSecrets, ...own } };
  });

  const rawWaves = value.waves ?? [{ name: 'all' }];
  const assigned = new Map<string, string>();
  const waveNames = new Set<string>();
  const waves: Wave[] = rawWaves.map((w, i) => {
    if (waveNames.has(w.name)) issue(['waves', i, 'name'], `duplicate wave name "${w.name}"`);
    waveNames.add(w.name);
    if (seenTargets.has(w.name)) {
      issue(['waves', i, 'name'], `wave "${w.name}" has the name of a target: cutover fleet approve <name> must mean one of them`);
    }
    for (const [j, pattern] of (w.targets ?? []).entries()) {
      if (!/[*?]/.test(pattern) && !seenTargets.has(pattern)) issue(['waves', i, 'targets', j], `no target named "${pattern}"`);
    }
    const patterns = (w.targets ?? []).map(glob);
    const selected = targets
      .filter((t) => !assigned.has(t.name))
      .filter((t) => patterns.length === 0 || patterns.some((p) => p.test(t.name)))
      .filter((t) => Object.entries(w.labels ?? {}).every(([k, v]) => t.labels[k] === v))
      .map((t) => t.name);
    if (selected.length === 0) issue(['waves', i], `wave "${w.name}" selects no target (earlier waves took the ones it matches, or none match)`);
    for (const t of selected) assigned.set(t, w.name);
    return { name: w.name, targets: selected, parallel: w.parallel, maxFailures: (w.maxFailures ?? value.maxFailures ?? 0) as Wave['maxFailures'] };
  });
  const unassigned = targets.filter((t) => !assigned.has(t.name)).map((t) => t.name);
  if (unassigned.length > 0) {
    issue(
      ['waves'],
      `no wave selects ${unassigned.length === 1 ? 'target' : 'targets'} ${unassigned.slice(0, 10).join(', ')}${unassigned.length > 10 ? ', …' : ''}: add a last wave without a selector to take every target left`,
    );
  }
  return {
    name: value.name,
    targets: targets.map((t) => ({ ...t, wave: assigned.get(t.name) ?? '' })),
    waves,
    concurrencyGroups: value.concurrencyGroups ?? [],
    approval: value.approval ?? 'none',
  };
}
