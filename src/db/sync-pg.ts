/**
 * A PostgreSQL session that answers synchronously: the queries run on a
 * worker thread while this thread waits on a shared flag (Atomics.wait).
 *
 * Why: the journal's append and the fleet store's calls are synchronous
 * by contract (a journal line is durable before the engine's next action).
 * In queue mode "durable" means committed in the queue's database, so the
 * append must wait for PostgreSQL without becoming async all the way up the
 * engine. A local round trip costs about as much as the fsync it sits next to.
 */
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';

export interface SyncQueryResult<R> {
  readonly rows: R[];
  readonly rowCount: number;
}

/** A PostgreSQL error that came back through the bridge: SQLSTATE and detail kept. */
export class SyncPgError extends Error {
  override readonly name = 'SyncPgError';
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly detail: string | undefined,
  ) {
    super(code !== undefined ? `${message} (SQLSTATE ${code})` : message);
  }
}

interface Reply {
  readonly ok: boolean;
  readonly rows?: unknown[];
  readonly rowCount?: number;
  readonly error?: { readonly message: string; readonly code?: string; readonly detail?: string };
}

export interface SyncPgOptions {
  /** How long one query may take before the caller gives up (default 30 s). */
  readonly timeoutMs?: number;
  readonly applicationName?: string;
}

export class SyncPg {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag: Int32Array;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(connectionString: string, options: SyncPgOptions = {}) {
    const shared = new SharedArrayBuffer(4);
    this.flag = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.worker = new Worker(new URL('./sync-pg-thread.js', import.meta.url), {
      workerData: { connectionString, applicationName: options.applicationName ?? 'cutover', flag: shared, port: port2 },
      transferList: [port2],
    });
    // The thread never keeps the process alive on its own.
    this.worker.unref();
    this.port.unref();
  }

  query<R = Record<string, unknown>>(text: string, params: readonly unknown[] = []): SyncQueryResult<R> {
    if (this.closed) throw new SyncPgError('the queue database session is closed', undefined, undefined);
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ text, params });
    const waited = Atomics.wait(this.flag, 0, 0, this.timeoutMs);
    const message = receiveMessageOnPort(this.port);
    if (message === undefined) {
      throw new SyncPgError(
        waited === 'timed-out' ? `no answer from the queue database within ${this.timeoutMs} ms` : 'no answer from the queue database',
        undefined,
        undefined,
      );
    }
    const reply = message.message as Reply;
    if (!reply.ok) throw new SyncPgError(reply.error?.message ?? 'query failed', reply.error?.code, reply.error?.detail);
    return { rows: (reply.rows ?? []) as R[], rowCount: reply.rowCount ?? 0 };
  }

  /** Ends the session (its advisory locks go with it). */
  close(): void {
    if (this.closed) return;
    try {
      this.query('SELECT 1 AS closing');
    } catch {
      // Closing anyway.
    }
    this.closed = true;
    void this.worker.terminate();
  }
}
