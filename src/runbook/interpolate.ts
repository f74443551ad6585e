/**
 * `${NAME}` in any string value is replaced by the environment variable NAME;
 * `$${` writes a literal `${`. An unset variable is an error naming it and its
 * position. Done on the YAML tree, so positions stay exact.
 */
import { visit, type Document } from 'yaml';
import type { ValidationIssue } from '../errors.js';
import { formatPath, pathFromAncestors, type SourceMap } from './positions.js';

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([^}]*)\}?/g;

export function interpolateEnv(
  doc: Document,
  env: Readonly<Record<string, string | undefined>>,
  source: SourceMap,
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const where = () => ({
        position: source.offset(node.range?.[0] ?? 0),
        path: formatPath(pathFromAncestors(ancestors, node)),
      });
      node.value = node.value.replace(REFERENCE, (match, name: string | undefined, bad: string | undefined) => {
        if (match === '$${') return '${';
        if (name === undefined) {
          issues.push({
            ...where(),
            message: `"\${${bad ?? ''}" is not a valid reference: write \${NAME} (letters, digits, _), or $\${ for a literal "\${"`,
          });
          return match;
        }
        const value = env[name];
        if (value === undefined) {
          issues.push({ ...where(), message: `environment variable ${name} is not set` });
          return match;
        }
        return value;
      });
    },
  });
  return issues;
}
