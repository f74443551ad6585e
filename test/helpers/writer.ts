/**
 * An application that writes: a separate process that inserts a row into
 * `t(v)` every few milliseconds as the role in the URL, reconnecting after
 * errors, and prints one line per attempt: `ok` or the SQLSTATE. Used to show
 * that a freeze stops real writes from outside the test process.
 *
 * Usage: node writer.js <postgres-url> <interval-ms>
 *
 * It stops by itself: when its parent is gone (stdout closed) or after five
 * minutes, so a test that dies cannot leave it writing.
 */
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';

const [url, interval = '20'] = process.argv.slice(2);
if (url === undefined) {
  process.stderr.write('usage: node writer.js <postgres-url> <interval-ms>\n');
  process.exit(2);
}
const stopAt = Date.now() + 5 * 60_000;
process.stdout.on('error', () => process.exit(0));
let client: pg.Client | undefined;
while (Date.now() < stopAt) {
  try {
    if (client === undefined) {
      client = new pg.Client({ connectionString: url });
      client.on('error', () => {});
      await client.connect();
    }
    await client.query("INSERT INTO t (v) VALUES ('writer')");
    process.stdout.write('ok\n');
  } catch (error) {
    process.stdout.write(`${(error as { code?: string }).code ?? 'connection'}\n`);
    await client?.end().catch(() => {});
    client = undefined;
  }
  await sleep(Number(interval));
}
await client?.end().catch(() => {});
