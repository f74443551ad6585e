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
}

export interface Load {
  /** Resolves once every client has committed at least `n` transactions. */
  warm(n: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

/** `table` must have columns (client int, n int). */
export async function startLoad(url: string, options: { readonly clients: number; readonly table: string; readonly maxMs?: number }): Promise<Load> {
  const stopAt = Date.now() + (options.maxMs ?? 120_000);
  let stopping = false;
  let attempted = 0;
  let committed = 0;
  let longestMs = 0;
  const failures: string[] = [];
  const perClient = new Array<number>(options.clients).fill(0);
  const clients = await Promise.all(
    Array.from({ length: options.clients }, async () => {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => {});
      await client.connect();
      return client;
    }),
  );
  const loops = clients.map(async (client, id) => {
    for (let n = 1; !stopping && Date.now() < stopAt; n++) {
      attempted++;
      const started = performance.now();
      try {
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${options.table} (client, n) VALUES ($1, $2)`, [id, n]);
        await client.query('COMMIT');
        committed++;
        perClient[id] = (perClient[id] ?? 0) + 1;
      } catch (error) {
        failures.push(`client ${id} transaction ${n}: ${(error as Error).message}`);
        await client.query('ROLLBACK').catch(() => {});
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
      return { attempted, committed, failures, longestMs: Math.round(longestMs) };
    },
  };
}
