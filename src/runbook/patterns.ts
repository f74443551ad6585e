/** Name selection in runbooks: `*` and `?` wildcards; everything else literal. */

/** `*` and `?` wildcards over the whole name, case-sensitive. */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  const regexes = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replaceAll('*', '.*')
          .replaceAll('?', '.')}$`,
        's',
      ),
  );
  return (name) => regexes.some((r) => r.test(name));
}
