/** The worker thread behind SyncPg: one pg session, one query at a time. */
import { workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';

const { connectionString, applicationName, flag, port } = workerData as {
  connectionString: string;
  applicationName: string;
  flag: SharedArrayBuffer;
  port: MessagePort;
};
const signal = new Int32Array(flag);
const client = new pg.Client({ connectionString, application_name: applicationName });
// A lost connection is reported on the next query; an 'error' event must not crash the thread.
client.on('error', () => {});
const ready = client.connect();

function answer(reply: unknown): void {
  port.postMessage(reply);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

port.on('message', (request: { text: string; params: unknown[] }) => {
  ready
    .then(() => client.query(request.text, request.params))
    .then(
      (result) => {
        answer({ ok: true, rows: result.rows, rowCount: result.rowCount ?? 0 });
      },
      (error: unknown) => {
        const e = error as { message?: string; code?: string; detail?: string };
        answer({
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
