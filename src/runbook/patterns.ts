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

/**
 * The patterns that match none of `names`. An `include` that selects
 * nothing (a typo; names are case-sensitive) would otherwise plan an empty
 * step and pass, silently.
 */
export function unmatchedPatterns(patterns: readonly string[] | undefined, names: Iterable<string>): string[] {
  if (patterns === undefined || patterns.length === 0) return [];
  const all = [...names];
  return patterns.filter((p) => !all.some(globMatcher([p])));
}

/** The blocker for each such pattern. */
export const unmatchedBlockers = (patterns: readonly string[], what: string): string[] =>
  patterns.map((p) => `include pattern "${p}" matches no ${what} here (patterns are schema.name, case-sensitive)`);
