/**
 * Does a PostgreSQL server answer at host:port? One SSLRequest, the first
 * message of every PostgreSQL connection, answered by a single byte ('S' or
 * 'N') by any server, before authentication: no credentials needed.
 */
import net from 'node:net';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** undefined when a PostgreSQL server answers, else why not (e.g. "ENOTFOUND", "ECONNREFUSED", "not PostgreSQL"). */
export function probePostgres(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: string | undefined) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => {
      done(`no answer within ${timeoutMs}ms`);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      done(error.code ?? error.message);
    });
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', (data) => {
      done(data[0] === 0x53 || data[0] === 0x4e ? undefined : 'not a PostgreSQL server');
    });
    socket.once('end', () => {
      done('closed without answering');
    });
  });
}
