/** The worker thread behind SyncPg: one pg session, one query at a time, each answer tagged with its request's id. */
import { workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';

const { connectionString, applicationName, statementTimeoutMs, flag, port } = workerData as {
  connectionString: string;
  applicationName: string;
  statementTimeoutMs: number;
  flag: SharedArrayBuffer;
  port: MessagePort;
};
const signal = new Int32Array(flag);
const client = new pg.Client({
  connectionString,
  application_name: applicationName,
  ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
});
// A lost connection is reported on the next query; an 'error' event must not crash the thread.
client.on('error', () => {});
const ready = client.connect();
// Reported with the first query that needs the session, not as an unhandled rejection of the thread.
ready.catch(() => {});
/** The previous request's end: requests run strictly one after another, in the order they came. */
let previous: Promise<unknown> = Promise.resolve();

/** The answer goes on the port first, then the shared word says whose answer is there. */
function answer(id: number, reply: object): void {
  port.postMessage({ id, ...reply });
  Atomics.store(signal, 0, id);
  Atomics.notify(signal, 0);
}

port.on('message', (request: { id: number; text: string; params: unknown[] }) => {
  previous = previous
    .then(() => ready)
    .then(() => client.query(request.text, request.params))
    .then(
      (result) => {
        answer(request.id, { ok: true, rows: result.rows, rowCount: result.rowCount ?? 0 });
      },
      (error: unknown) => {
        const e = error as { message?: string; code?: string; detail?: string };
        answer(request.id, {
          ok: false,
          error: {
            message: e.message ?? String(error),
            ...(e.code !== undefined ? { code: e.code } : {}),
            ...(e.detail !== undefined ? { detail: e.detail } : {}),
          },
        });
      },
    );
});
