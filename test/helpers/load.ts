/**
 * Client traffic during a switch: a few connections (through a pooler) that
 * each run small write transactions back to back and record every failure
 * and the longest time one transaction took (the stall clients saw). Bounded:
 * it stops when told, or after `maxMs` whatever happens.
 */
import pg from 'pg';

export interface LoadResult {
  readonly attempted: number;
  readonly committed: number;
  readonly failures: readonly string[];
  /** The longest single transaction, from BEGIN to COMMIT's reply, in ms. */
  readonly longestMs: number;
  /** The longest time one client went without a commit (failures and reconnects included), in ms. */
  readonly longestGapMs: number;
  /** New connections made after a failure (`reconnect`). */
  readonly reconnects: number;
}

export interface Load {
  /** Resolves once every client has committed at least `n` transactions. */
  warm(n: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

/** `table` must have columns (client int, n int). */
export async function startLoad(
  url: string,
  options: {
    readonly clients: number;
    readonly table: string;
    readonly maxMs?: number;
    /** After a failed transaction, drop the connection and log in again (as an application behind HAProxy must). */
    readonly reconnect?: boolean;
  },
): Promise<Load> {
  const stopAt = Date.now() + (options.maxMs ?? 120_000);
  let stopping = false;
  let attempted = 0;
  let committed = 0;
  let longestMs = 0;
  let longestGapMs = 0;
  let reconnects = 0;
  const failures: string[] = [];
  const perClient = new Array<number>(options.clients).fill(0);
  const connect = async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  const clients = await Promise.all(Array.from({ length: options.clients }, connect));
  const loops = clients.map(async (first, id) => {
    let client = first;
    let lastCommit = performance.now();
    for (let n = 1; !stopping && Date.now() < stopAt; n++) {
      attempted++;
      const started = performance.now();
      try {
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${options.table} (client, n) VALUES ($1, $2)`, [id, n]);
        await client.query('COMMIT');
        committed++;
        perClient[id] = (perClient[id] ?? 0) + 1;
        longestGapMs = Math.max(longestGapMs, performance.now() - lastCommit);
        lastCommit = performance.now();
      } catch (error) {
        failures.push(`client ${id} transaction ${n}: ${(error as Error).message}`);
        await client.query('ROLLBACK').catch(() => {});
        if (options.reconnect === true) {
          await client.end().catch(() => {});
          for (;;) {
            try {
              client = await connect();
              reconnects++;
              clients[id] = client;
              break;
            } catch (reason) {
              failures.push(`client ${id} reconnect: ${(reason as Error).message}`);
              if (stopping || Date.now() >= stopAt) return;
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
        }
      }
      longestMs = Math.max(longestMs, performance.now() - started);
    }
  });
  return {
    async warm(n) {
      while (perClient.some((c) => c < n)) {
        if (Date.now() > stopAt) throw new Error('the load never warmed up');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      return { attempted, committed, failures, longestMs: Math.round(longestMs), longestGapMs: Math.round(longestGapMs), reconnects };
    },
  };
}
