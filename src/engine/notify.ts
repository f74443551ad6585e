/**
 * Notifications: an HTTP POST of a small JSON event to each webhook URL of
 * the runbook (`notify:`) and of `--notify`, when a run starts, a step fails,
 * the run waits for a person's confirmation, and the run finishes. The body
 * has a Slack-compatible `text` field. A hook that fails or does not answer
 * in time never fails the run: the engine journals `notify.failed` and goes on.
 * Bodies go through the run's redactor like everything else it writes.
 */
export type NotificationKind = 'run.started' | 'step.failed' | 'confirmation.waiting' | 'run.finished';

export interface Notification {
  readonly event: NotificationKind;
  readonly runId: string;
  readonly runbook: string;
  readonly ticket?: string;
  readonly stepId?: string;
  readonly status?: string;
  readonly message?: string;
  readonly journal?: string;
  /** The command that writes the run's report. */
  readonly report?: string;
  /** One line for chat (Slack's incoming webhooks show it). */
  readonly text: string;
}

export const DEFAULT_NOTIFY_TIMEOUT_MS = 5_000;

export class Notifier {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly urls: readonly string[],
    private readonly redact: (text: string) => string,
    /** Told about every hook that failed; the engine journals it. */
    private readonly failed: (url: string, reason: string, event: NotificationKind) => void,
    private readonly timeoutMs = DEFAULT_NOTIFY_TIMEOUT_MS,
  ) {}

  /** Sends in the background: the run never waits for a hook, except in `drain` at its end. */
  send(notification: Notification): void {
    for (const url of this.urls) {
      const sending: Promise<void> = this.post(url, notification).finally(() => this.pending.delete(sending));
      this.pending.add(sending);
    }
  }

  /** Waits for the hooks still in flight (each bounded by the timeout), before the journal closes. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async post(url: string, notification: Notification): Promise<void> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: this.redact(JSON.stringify(notification)),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel();
      if (!response.ok) this.failed(url, `HTTP ${response.status} ${response.statusText}`.trim(), notification.event);
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
      const reason =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
          ? `no answer within ${this.timeoutMs} ms`
          : `${error instanceof Error ? error.message : String(error)}${cause}`;
      this.failed(url, reason, notification.event);
    }
  }
}
