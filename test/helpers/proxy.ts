/**
 * A TCP proxy in front of a PostgreSQL server that holds back each
 * connection's first reply from the server for `delayMs`: every login through
 * it takes that long. It counts the connections its client closed before
 * that reply was passed on, that is, while they were still logging in.
 */
import net from 'node:net';

export interface SlowLoginProxy {
  readonly port: number;
  /** Connections the client side closed while the server's first reply was still held back. */
  cutDuringLogin(): number;
  close(): Promise<void>;
}

export async function slowLoginProxy(serverPort: number, delayMs: number): Promise<SlowLoginProxy> {
  let cut = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(serverPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let held: Buffer[] | undefined = [];
    const release = () => {
      clearTimeout(timer);
      for (const chunk of held ?? []) client.write(chunk);
      held = undefined;
    };
    const timer = setTimeout(release, delayMs);
    upstream.on('data', (chunk: Buffer) => {
      if (held === undefined) client.write(chunk);
      else held.push(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('close', () => {
      if (held !== undefined) cut++;
      held = undefined;
      clearTimeout(timer);
      upstream.destroy();
    });
    upstream.on('close', () => {
      release();
      client.end();
    });
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
  return {
    port: address.port,
    cutDuringLogin: () => cut,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
