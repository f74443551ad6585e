/**
 * A PostgreSQL session that answers synchronously: the queries run on a
 * worker thread while this thread waits on a shared flag (Atomics.wait).
 *
 * Why: the journal's append and the fleet store's calls are synchronous
 * by contract (journal lines are durable before the engine's next change).
 * In queue mode "durable" means committed in the queue's database, so the
 * append must wait for PostgreSQL without becoming async all the way up the
 * engine. A local round trip costs about as much as the fsync it sits next to.
 */
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { isSqlstate } from '../errors.js';

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
    super(isSqlstate(code) ? `${message} (SQLSTATE ${code})` : message);
  }
}

interface Reply {
  /** The request this answers. */
  readonly id: number;
  readonly ok: boolean;
  readonly rows?: unknown[];
  readonly rowCount?: number;
  readonly error?: { readonly message: string; readonly code?: string; readonly detail?: string };
}

export interface SyncPgOptions {
  /** How long one query may take before the caller gives up (default 30 s). */
  readonly timeoutMs?: number;
  /**
   * The session's statement_timeout: the server cancels a statement that runs
   * (or waits for a lock) this long, so its outcome is known: not done.
   * Default 5 s less than timeoutMs (four fifths of a timeoutMs under 10 s);
   * 0 for none.
   */
  readonly statementTimeoutMs?: number;
  readonly applicationName?: string;
}

/**
 * Requests and answers carry an id, and the shared word holds the id of the
 * last answer posted. A query that got no answer in time may still be
 * answered later: that late answer is read and dropped by the next query,
 * which waits for its own (a session that handed one query's answer to the
 * next would report, say, a lease taken when it was not).
 */
export class SyncPg {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag: Int32Array;
  private readonly timeoutMs: number;
  private lastId = 0;
  private closed = false;

  constructor(connectionString: string, options: SyncPgOptions = {}) {
    const shared = new SharedArrayBuffer(4);
    this.flag = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const statementTimeoutMs = options.statementTimeoutMs ?? (this.timeoutMs >= 10_000 ? this.timeoutMs - 5_000 : Math.floor(this.timeoutMs * 0.8));
    this.worker = new Worker(new URL('./sync-pg-thread.js', import.meta.url), {
      workerData: { connectionString, applicationName: options.applicationName ?? 'cutover', statementTimeoutMs, flag: shared, port: port2 },
      transferList: [port2],
    });
    // The thread never keeps the process alive on its own.
    this.worker.unref();
    this.port.unref();
  }

  query<R = Record<string, unknown>>(text: string, params: readonly unknown[] = []): SyncQueryResult<R> {
    if (this.closed) throw new SyncPgError('the queue database session is closed', undefined, undefined);
    // Ids stay positive int32s (the shared word's type); they wrap after 2^31 queries.
    const id = (this.lastId = this.lastId >= 0x7fff_ffff ? 1 : this.lastId + 1);
    this.port.postMessage({ id, text, params });
    const deadline = Date.now() + this.timeoutMs;
    for (let seen = Atomics.load(this.flag, 0); seen !== id; seen = Atomics.load(this.flag, 0)) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new SyncPgError(
          `no answer from the queue database within ${this.timeoutMs} ms; the statement may still complete there: ${text.split('\n')[0]?.slice(0, 80) ?? ''}`,
          undefined,
          undefined,
        );
      Atomics.wait(this.flag, 0, seen, left);
    }
    // Answers come in request order: any before ours answer queries that gave up waiting.
    for (;;) {
      const message = receiveMessageOnPort(this.port);
      if (message === undefined) throw new SyncPgError('no answer from the queue database', undefined, undefined);
      const reply = message.message as Reply;
      if (reply.id !== id) continue;
      if (!reply.ok) throw new SyncPgError(reply.error?.message ?? 'query failed', reply.error?.code, reply.error?.detail);
      return { rows: (reply.rows ?? []) as R[], rowCount: reply.rowCount ?? 0 };
    }
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
