/**
 * `${NAME}` in any string value is replaced by the environment variable NAME;
 * `${secret:NAME}` too, and the value is then a secret: redacted from every
 * output, journal, report and saved plan. A `:literal` suffix
 * (`${secret:NAME:literal}`) writes the value as a quoted SQL string literal,
 * for values that go inside SQL text: a quote in a value spliced between
 * quotes by hand ends the literal, and the server's syntax error then echoes
 * the rest of the value, a piece of the secret no redactor can recognise.
 * `$${` writes a literal `${`. An
 * unset variable is an error naming it and its position. Only the
 * environment's own, set variables count: `${constructor}` or `${__proto__}`
 * are unset variables like any other. Done on the YAML tree, so positions
 * stay exact.
 */
import { visit, type Document } from 'yaml';
import { quoteLiteral } from '../db/quote.js';
import type { ValidationIssue } from '../errors.js';
import { formatPath, pathFromAncestors, type SourceMap } from './positions.js';

const REFERENCE = /\$\$\{|\$\{(secret:)?([A-Za-z_][A-Za-z0-9_]*)(:literal)?\}|\$\{([^}]*)\}?/g;

/** Shorter secrets cannot be masked without destroying unrelated text, so they are refused. */
export const MIN_SECRET_LENGTH = 4;

export interface Interpolated {
  readonly issues: ValidationIssue[];
  /** Values of `${secret:NAME}` references. */
  readonly secrets: string[];
}

export function interpolateEnv(doc: Document, env: Readonly<Record<string, string | undefined>>, source: SourceMap): Interpolated {
  const issues: ValidationIssue[] = [];
  const secrets: string[] = [];
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const where = () => ({
        position: source.offset(node.range?.[0] ?? 0),
        path: formatPath(pathFromAncestors(ancestors, node)),
      });
      const text = node.value;
      node.value = text.replace(
        REFERENCE,
        (match, secret: string | undefined, name: string | undefined, literal: string | undefined, bad: string | undefined, offset: number) => {
          if (match === '$${') return '${';
          if (name === undefined) {
            issues.push({
              ...where(),
              message: `"\${${bad ?? ''}" is not a valid reference: write \${NAME} or \${secret:NAME} (letters, digits, _), with :literal for a SQL string literal, or $\${ for a literal "\${"`,
            });
            return match;
          }
          const value = Object.hasOwn(env, name) ? env[name] : undefined;
          if (typeof value !== 'string') {
            issues.push({ ...where(), message: `unset variable ${name}: the environment variable ${name} is not set` });
            return match;
          }
          if (secret !== undefined) {
            if (value.length < MIN_SECRET_LENGTH) {
              issues.push({
                ...where(),
                message: `secret ${name} is shorter than ${MIN_SECRET_LENGTH} characters: it could not be redacted from output without destroying it; use a longer one`,
              });
            }
            secrets.push(value);
            // '${secret:NAME}' by hand, around a value that holds a quote: the literal would end inside the secret.
            if (literal === undefined && text[offset - 1] === "'" && text[offset + match.length] === "'" && /['\\]/.test(value)) {
              issues.push({
                ...where(),
                message: `secret ${name} holds a quote or a backslash and is written between quotes ('\${secret:${name}}'): the SQL literal would end inside it; write \${secret:${name}:literal} without the quotes`,
              });
            }
            // password=${secret:NAME} in a hand-written connection string: libpq ends the value at a space, and a
            // quote or backslash changes how it reads; an error then shows the piece after it, which no redactor knows.
            if (literal === undefined && /password\s*=\s*$/i.test(text.slice(0, offset)) && /[\s'\\]/.test(value)) {
              issues.push({
                ...where(),
                message: `secret ${name} holds a space, a quote or a backslash and is written after password= in a connection string: it would be cut there, and an error could show the rest; put the whole connection string in one secret and write \${secret:NAME:literal}, or give this password without those characters`,
              });
            }
          }
          return literal !== undefined ? quoteLiteral(value) : value;
        },
      );
    },
  });
  return { issues, secrets };
}
