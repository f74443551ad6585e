/**
 * Runbook templates for `cutover init`: commented runbooks under templates/,
 * each a known-good shape for one kind of migration.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';

/** Compiled to dist/src/: the package root is two levels up. */
export const TEMPLATES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../templates');

export interface Template {
  readonly name: string;
  /** The first comment line after the schema line. */
  readonly summary: string;
  readonly text: string;
  /** `${NAME}` placeholders the runbook needs in the environment. */
  readonly variables: readonly string[];
}

function load(file: string): Template {
  const text = readFileSync(file, 'utf8');
  const summary =
    text
      .split('\n')
      .find((l) => l.startsWith('# ') && !l.includes('yaml-language-server'))
      ?.slice(2) ?? '';
  const variables = [...new Set([...text.matchAll(/(?<!\$)\$\{(?:secret:)?([A-Za-z_][A-Za-z0-9_]*)(?::literal)?\}/g)].map((m) => m[1] ?? ''))];
  return { name: path.basename(file, '.yaml'), summary, text, variables };
}

export function listTemplates(): Template[] {
  return readdirSync(TEMPLATES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => load(path.join(TEMPLATES_DIR, f)));
}

export function template(name: string): Template {
  const file = path.join(TEMPLATES_DIR, `${name}.yaml`);
  if (!existsSync(file)) {
    throw new UsageError(
      `no template "${name}" (templates: ${listTemplates()
        .map((t) => t.name)
        .join(', ')})`,
    );
  }
  return load(file);
}
