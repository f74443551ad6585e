/**
 * Last line of defence for secrets: every journal line and every line the CLI
 * prints passes through a Redactor that knows the run's passwords. Secrets are
 * kept out of events in the first place; this catches what slips through (a
 * password echoed in a server error, a command's output).
 */
export class Redactor {
  private readonly secrets: string[];

  constructor(secrets: Iterable<string> = []) {
    // Longest first, so a secret that contains another is replaced whole.
    // Very short strings are skipped: masking every "a" would destroy the text
    // and protect nothing.
    this.secrets = [...new Set(secrets)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      out = out.replaceAll(secret, '[redacted]');
      // Also as it appears inside JSON strings.
      const escaped = JSON.stringify(secret).slice(1, -1);
      if (escaped !== secret) out = out.replaceAll(escaped, '[redacted]');
    }
    return out;
  }
}
