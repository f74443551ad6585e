/**
 * The one redactor: every journal line, every byte the CLI prints, every
 * report and saved plan passes through a Redactor that knows the run's
 * secrets (connection passwords, passwordFile contents, `${secret:NAME}`
 * values). Each secret is masked in every form it can take in text: as is,
 * percent-encoded (as in a URL), escaped inside a JSON string, quoted inside
 * a SQL string literal, and escaped for HTML.
 *
 * Redact before truncating: a cut through the middle of a secret leaves a
 * fragment no redactor can recognise. Code that shortens text (command
 * output, stderr) gets it already redacted.
 */
export const REDACTED = '[redacted]';

/** Secrets this short are refused at validation; masking every "abc" would destroy text and protect nothing. */
const MIN_LENGTH = 4;

function forms(secret: string): string[] {
  const out = new Set<string>([secret]);
  out.add(JSON.stringify(secret).slice(1, -1));
  out.add(encodeURIComponent(secret));
  // URL userinfo encoding as WHATWG URL writes it (keeps some characters encodeURIComponent escapes).
  try {
    const url = new URL('postgres://u@h/');
    url.password = secret;
    out.add(url.password);
  } catch {
    // not representable in a URL: nothing to add
  }
  // Inside a SQL string literal (${secret:NAME:literal}): quotes doubled, and backslashes too in an E'' literal.
  out.add(secret.replaceAll("'", "''"));
  out.add(secret.replaceAll('\\', '\\\\').replaceAll("'", "''"));
  out.add(secret.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;'));
  for (const form of [...out]) out.add(JSON.stringify(form).slice(1, -1));
  return [...out];
}

export class Redactor {
  private patterns: string[] = [];

  constructor(secrets: Iterable<string> = []) {
    this.add(secrets);
  }

  /** Learns more secrets (e.g. the runbook's, once it is loaded). */
  add(secrets: Iterable<string>): void {
    const all = new Set(this.patterns);
    for (const secret of secrets) {
      if (secret.length < MIN_LENGTH) continue;
      for (const form of forms(secret)) if (form.length >= MIN_LENGTH) all.add(form);
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.patterns = [...all].sort((a, b) => b.length - a.length);
  }

  get size(): number {
    return this.patterns.length;
  }

  redact(text: string): string {
    let out = text;
    for (const pattern of this.patterns) if (out.includes(pattern)) out = out.replaceAll(pattern, REDACTED);
    return out;
  }
}
