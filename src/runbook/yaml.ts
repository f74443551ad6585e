/**
 * How runbooks and inventories are parsed: one set of parser options, and
 * the parser's messages as a person reads them.
 */
import { parseDocument, type Document, type LineCounter } from 'yaml';

/**
 * Duplicate keys are errors. resolveKnownTags: false: YAML 1.1's !!binary,
 * !!timestamp, !!set and friends would become a Buffer, a Date, a Set, types
 * no value here has; they are refused by their tag (yamlMessage) instead of
 * reported as a JavaScript type later.
 */
export function parseYaml(text: string, lineCounter: LineCounter): Document.Parsed {
  return parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, resolveKnownTags: false });
}

/** A parser error or warning without its own position (the issue has one); an unknown tag named as it is written. */
export function yamlMessage(e: { readonly code: string; readonly message: string }): string {
  const first = e.message.split('\n')[0] ?? e.code;
  const tag = e.code === 'TAG_RESOLVE_FAILED' ? /tag:yaml\.org,2002:(\S+)/.exec(first)?.[1] : undefined;
  if (tag !== undefined) return `the YAML tag !!${tag} is not supported here: write the value as plain text`;
  return first;
}
