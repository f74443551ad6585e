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

/** A name as a person reads it in output: double-quoted only when it needs it (upper case, spaces, dots, quotes). */
export function displayIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** `schema.name` as a person reads it, each part quoted only when it needs it. */
export function displayQualified(schema: string, name: string): string {
  return `${displayIdent(schema)}.${displayIdent(name)}`;
}

/**
 * A string literal, for the few statements that take no parameters (ALTER
 * ROLE ... SET). Doubling quotes is enough with standard_conforming_strings
 * on, which every supported server enforces by default; E'' is used when a
 * backslash is present so the result does not depend on that setting.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains a NUL character');
  const quoted = `'${value.replaceAll("'", "''")}'`;
  return value.includes('\\') ? `E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}
