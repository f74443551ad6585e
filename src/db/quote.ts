/**
 * The one place identifiers are quoted. Always quote, even when the name looks
 * safe: a name that only looks lower-case can still collide with a keyword.
 */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

/** `schema.name`, each part quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}
