/**
 * A TCP proxy in front of a PostgreSQL server that holds back each
 * connection's replies from the server until the test releases the logins:
 * a login through it takes as long as the test wants.
 */
import net from 'node:net';

export interface SlowLoginProxy {
  readonly port: number;
  /** Lets every held-back reply through, and every later one at once. */
  releaseLogins(): void;
  close(): Promise<void>;
}

export async function slowLoginProxy(serverPort: number): Promise<SlowLoginProxy> {
  let released = false;
  const releases = new Set<() => void>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(serverPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let held: Buffer[] | undefined = released ? undefined : [];
    const release = () => {
      releases.delete(release);
      for (const chunk of held ?? []) client.write(chunk);
      held = undefined;
    };
    if (held !== undefined) releases.add(release);
    upstream.on('data', (chunk: Buffer) => {
      if (held === undefined) client.write(chunk);
      else held.push(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('close', () => {
      held = undefined;
      releases.delete(release);
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
    releaseLogins() {
      released = true;
      for (const release of [...releases]) release();
    },
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
