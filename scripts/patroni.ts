/**
 * A real Patroni cluster for tests: Debian's etcd (Patroni's etcd3 DCS), two
 * Patroni members on Debian's PostgreSQL 15 and an HAProxy that routes to
 * whichever member answers `GET /primary` with 200, as production set-ups do.
 * Everything listens on loopback on free ports and runs as the `postgres` OS
 * user under root; each process gets its own process group, so `stop()`
 * ends the postmasters Patroni started too, and removes every directory.
 *
 * The REST API asks for basic auth on its unsafe endpoints (POST, PATCH);
 * PostgreSQL trusts loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, makeCertificates, osUser } from './embedded-postgres.js';
import { etcdPath, haproxyPath, patroniPath, systemPgBinDir } from './tools.js';

export interface PatroniMember {
  readonly name: string;
  /** PostgreSQL's port. */
  readonly port: number;
  /** The REST API's base URL, `http://127.0.0.1:port`. */
  readonly api: string;
  readonly dataDir: string;
}

export interface TestPatroniCluster {
  readonly scope: string;
  readonly members: readonly PatroniMember[];
  /** HAProxy's port: the application's view, always the leader. */
  readonly proxyPort: number;
  readonly apiUser: string;
  readonly apiPassword: string;
  /** With `tls`: the CA of the REST APIs' certificates and a client certificate they accept. */
  readonly tls?: ApiTls;
  /** How long from the first spawn until a leader and a streaming replica (ms). */
  readonly startedInMs: number;
  readonly dir: string;
  /** A client URL to a database through HAProxy. */
  proxyUrl(database: string): string;
  /** A client URL straight to one member. */
  memberUrl(member: PatroniMember, database: string): string;
  /** The member names and roles from `GET /cluster`. */
  cluster(): Promise<ClusterView>;
  /** The members HAProxy routes to now (its checks of GET /primary pass), from its stats page. */
  routes(): Promise<string[]>;
  /**
   * Waits (up to 60 s) until `leader` leads, every other member runs and streams from it with no lag
   * and answers GET /patroni, and HAProxy routes to `leader` only: the state each test starts from.
   * A switch-back just before may leave the old leader restarting as a replica for a while.
   */
  settled(leader: string): Promise<void>;
  /** Rewrites a member's `tags` in its configuration and has Patroni reload it (POST /reload); resolves once /cluster shows them. */
  setTags(member: string, tags: Readonly<Record<string, boolean>>): Promise<void>;
  /** What the log of a process says, for failure messages. */
  log(name: string): string;
  stop(): Promise<void>;
}

export interface ClusterView {
  readonly members: readonly {
    readonly name: string;
    readonly role: string;
    readonly state: string;
    readonly timeline?: number;
    readonly lag?: number | string;
  }[];
  readonly pause?: boolean;
}

const SCOPE = 'cutover-test';

/** A child of its own process group, so its own children die with it. */
class Daemon {
  exited = false;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('exit', () => (this.exited = true));
  }

  static start(name: string, argv: readonly string[], options: { readonly logFile: string; readonly cwd: string; readonly env?: NodeJS.ProcessEnv }): Daemon {
    const user = osUser();
    const log = openLog(options.logFile);
    const [command, ...args] = argv;
    const child = spawn(command ?? '', args, {
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      cwd: options.cwd,
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...options.env },
    });
    closeSync(log);
    child.unref();
    return new Daemon(name, child);
  }

  /** SIGTERM to the group, then SIGKILL to whatever is left of it. */
  async stop(graceMs: number): Promise<void> {
    const group = this.child.pid;
    if (group === undefined) return;
    const signal = (s: NodeJS.Signals | 0) => {
      try {
        process.kill(-group, s);
        return true;
      } catch {
        return false;
      }
    };
    if (!signal('SIGTERM')) return;
    const until = Date.now() + graceMs;
    while (Date.now() < until && signal(0)) await sleep(50);
    signal('SIGKILL');
  }
}

/** A file descriptor the child writes its output to directly. */
function openLog(file: string): number {
  writeFileSync(file, '');
  const user = osUser();
  if (user) chownSync(file, user.uid, user.gid);
  return openSync(file, 'a');
}

/** PEM files for an https REST API: the CA that signed it and a client certificate it accepts. */
export interface ApiTls {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * One request to a REST API, http or https (fetch cannot present a client
 * certificate or trust a private CA without undici); undefined when nothing
 * answered within 2 s.
 */
function request(
  url: string,
  init: {
    readonly method?: string;
    readonly body?: string;
    readonly headers?: Record<string, string>;
    readonly tls?: ApiTls;
    readonly clientCert?: boolean;
  } = {},
): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const tls = init.tls;
    const options = {
      method: init.method ?? 'GET',
      headers: { ...init.headers, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      timeout: 2_000,
      ...(tls !== undefined
        ? { ca: readFileSync(tls.caFile), ...(init.clientCert !== false ? { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : {}) }
        : {}),
    };
    const req = (url.startsWith('https:') ? https : http).request(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', () => {
        resolve(undefined);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolve(undefined);
    });
    req.end(init.body);
  });
}

const get = (url: string, tls?: ApiTls) => request(url, tls !== undefined ? { tls } : {});

function memberConfig(options: {
  name: string;
  dir: string;
  pgPort: number;
  apiPort: number;
  etcdPort: number;
  apiUser: string;
  apiPassword: string;
  /** https with these files; the server certificate also serves as the member's client certificate towards the others. */
  tls?: { caFile: string; certFile: string; keyFile: string };
}): string {
  const data = path.join(options.dir, 'data');
  // JSON is YAML: no YAML writer needed.
  return JSON.stringify(
    {
      scope: SCOPE,
      name: options.name,
      log: { level: 'INFO' },
      restapi: {
        listen: `127.0.0.1:${options.apiPort}`,
        connect_address: `127.0.0.1:${options.apiPort}`,
        authentication: { username: options.apiUser, password: options.apiPassword },
        // verify_client optional: a client certificate is asked for, and required for POST, PATCH and DELETE.
        ...(options.tls !== undefined
          ? { certfile: options.tls.certFile, keyfile: options.tls.keyFile, cafile: options.tls.caFile, verify_client: 'optional' }
          : {}),
      },
      etcd3: { hosts: `127.0.0.1:${options.etcdPort}` },
      bootstrap: {
        dcs: {
          // Patroni's lower bounds; short loops make a switchover take seconds, not tens of them.
          ttl: 20,
          loop_wait: 1,
          retry_timeout: 5,
          maximum_lag_on_failover: 1048576,
          postgresql: {
            use_pg_rewind: true,
            parameters: { wal_level: 'replica', hot_standby: 'on', max_wal_senders: 10, max_replication_slots: 10, wal_log_hints: 'on', fsync: 'off' },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, { auth: 'trust' }],
      },
      postgresql: {
        listen: `127.0.0.1:${options.pgPort}`,
        connect_address: `127.0.0.1:${options.pgPort}`,
        data_dir: data,
        bin_dir: systemPgBinDir(),
        pgpass: path.join(options.dir, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: 'postgres' },
          replication: { username: 'replicator', password: 'replicator' },
          rewind: { username: 'postgres', password: 'postgres' },
        },
        pg_hba: ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'],
        parameters: { unix_socket_directories: options.dir },
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    },
    null,
    2,
  );
}

function haproxyConfig(port: number, statsPort: number, members: readonly { name: string; pgPort: number; apiPort: number }[], tls: boolean): string {
  return [
    'global',
    '  maxconn 200',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 30m',
    '  timeout server 30m',
    '  timeout check 1s',
    'listen stats',
    '  mode http',
    `  bind 127.0.0.1:${statsPort}`,
    '  stats enable',
    '  stats uri /stats',
    'listen primary',
    `  bind 127.0.0.1:${port}`,
    '  option httpchk GET /primary',
    '  http-check expect status 200',
    // A member that stops answering /primary loses its sessions at once, so clients reconnect to the new leader.
    '  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions',
    ...members.map((m) => `  server ${m.name} 127.0.0.1:${m.pgPort} maxconn 100 check port ${m.apiPort}${tls ? ' check-ssl verify none' : ''}`),
    '',
  ].join('\n');
}

/** etcd, two Patroni members and HAProxy; resolves once one member leads and the other streams from it. */
export async function startPatroniCluster(options: { readonly timeoutMs?: number; readonly tls?: boolean } = {}): Promise<TestPatroniCluster> {
  const user = osUser();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-patroni-'));
  const own = (p: string) => {
    if (user) chownSync(p, user.uid, user.gid);
  };
  own(dir);
  const daemons: Daemon[] = [];
  const logs = new Map<string, string>();
  const stop = async () => {
    await Promise.all(
      [...daemons]
        .reverse()
        .filter((d) => d.name !== 'etcd')
        .map((d) => d.stop(15_000)),
    );
    await Promise.all(daemons.filter((d) => d.name === 'etcd').map((d) => d.stop(5_000)));
    rmSync(dir, { recursive: true, force: true });
  };
  const logOf = (name: string) => {
    const file = logs.get(name);
    try {
      return file === undefined ? '' : readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const started = Date.now();
  try {
    const [etcdPort = 0, etcdPeer = 0, proxyPort = 0, statsPort = 0, ...ports] = await Promise.all(Array.from({ length: 8 }, () => freePort()));
    // With tls: the REST APIs speak https with a certificate of a private CA and ask for client certificates.
    const certs = options.tls === true ? await makeCertificates(dir, user) : undefined;
    const tls: ApiTls | undefined = certs !== undefined ? { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile } : undefined;
    const scheme = tls !== undefined ? 'https' : 'http';
    const apiUser = 'cutover';
    const apiPassword = `api-${Math.random().toString(36).slice(2, 10)}`;

    const etcdDir = path.join(dir, 'etcd');
    mkdirSync(etcdDir, { mode: 0o700 });
    own(etcdDir);
    logs.set('etcd', path.join(dir, 'etcd.log'));
    daemons.push(
      Daemon.start(
        'etcd',
        [
          etcdPath(),
          '--name=etcd0',
          `--data-dir=${etcdDir}`,
          `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=etcd0=http://127.0.0.1:${etcdPeer}`,
        ],
        { logFile: path.join(dir, 'etcd.log'), cwd: dir },
      ),
    );
    const deadline = Date.now() + (options.timeoutMs ?? 90_000);
    const waitFor = async (what: string, check: () => Promise<boolean>) => {
      while (!(await check())) {
        const dead = daemons.find((d) => d.exited);
        if (dead !== undefined) throw new Error(`${dead.name} exited while waiting for ${what}:\n${logOf(dead.name).slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
      }
    };
    await waitFor('etcd', async () => (await get(`http://127.0.0.1:${etcdPort}/health`))?.status === 200);

    const specs = ['node1', 'node2'].map((name, i) => ({
      name,
      dir: path.join(dir, name),
      pgPort: ports[i * 2] ?? 0,
      apiPort: ports[i * 2 + 1] ?? 0,
    }));
    for (const [i, spec] of specs.entries()) {
      mkdirSync(spec.dir, { mode: 0o700 });
      own(spec.dir);
      const config = path.join(spec.dir, 'patroni.yml');
      const memberTls = certs !== undefined ? { caFile: certs.caFile, certFile: certs.certFile, keyFile: certs.keyFile } : undefined;
      writeFileSync(config, memberConfig({ ...spec, etcdPort, apiUser, apiPassword, ...(memberTls !== undefined ? { tls: memberTls } : {}) }), { mode: 0o600 });
      own(config);
      logs.set(spec.name, path.join(spec.dir, 'patroni.log'));
      daemons.push(Daemon.start(spec.name, [patroniPath(), config], { logFile: path.join(spec.dir, 'patroni.log'), cwd: spec.dir, env: { HOME: spec.dir } }));
      // The first member bootstraps alone, so it is the leader; the second then clones it.
      if (i === 0) await waitFor('node1 to lead', async () => (await get(`${scheme}://127.0.0.1:${spec.apiPort}/primary`, tls))?.status === 200);
    }
    const members: PatroniMember[] = specs.map((s) => ({
      name: s.name,
      port: s.pgPort,
      api: `${scheme}://127.0.0.1:${s.apiPort}`,
      dataDir: path.join(s.dir, 'data'),
    }));
    const cluster = async (): Promise<ClusterView> => {
      const response = await get(`${members[0]?.api ?? ''}/cluster`, tls);
      if (response?.status !== 200) throw new Error(`GET /cluster answered ${response?.status ?? 'nothing'}`);
      return JSON.parse(response.body) as ClusterView;
    };
    const leaderReplication = async (api = members[0]?.api ?? '') => {
      const response = await get(`${api}/patroni`, tls);
      const body = response?.status === 200 ? (JSON.parse(response.body) as { replication?: { application_name: string; state: string }[] }) : {};
      return body.replication ?? [];
    };
    await waitFor('node2 to stream from node1', async () => (await leaderReplication()).some((r) => r.application_name === 'node2' && r.state === 'streaming'));

    const haproxyDir = path.join(dir, 'haproxy');
    mkdirSync(haproxyDir);
    own(haproxyDir);
    const haproxyFile = path.join(haproxyDir, 'haproxy.cfg');
    writeFileSync(haproxyFile, haproxyConfig(proxyPort, statsPort, specs, tls !== undefined));
    own(haproxyFile);
    logs.set('haproxy', path.join(haproxyDir, 'haproxy.log'));
    daemons.push(Daemon.start('haproxy', [haproxyPath(), '-db', '-f', haproxyFile], { logFile: path.join(haproxyDir, 'haproxy.log'), cwd: haproxyDir }));
    // HAProxy counts a server as up until its checks say otherwise: wait until only the leader is.
    const routes = async () => {
      const csv = (await get(`http://127.0.0.1:${statsPort}/stats;csv`))?.body ?? '';
      return csv
        .split('\n')
        .map((line) => line.split(','))
        .filter((f) => f[0] === 'primary' && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND' && f[17] === 'UP')
        .map((f) => f[1] ?? '');
    };
    await waitFor('HAProxy to route to node1 only', async () => (await routes()).join() === 'node1');
    const startedInMs = Date.now() - started;

    return {
      scope: SCOPE,
      members,
      proxyPort,
      apiUser,
      apiPassword,
      ...(tls !== undefined ? { tls } : {}),
      startedInMs,
      dir,
      proxyUrl: (database) => `postgres://postgres@127.0.0.1:${proxyPort}/${database}`,
      memberUrl: (member, database) => `postgres://postgres@127.0.0.1:${member.port}/${database}`,
      cluster,
      routes,
      async settled(leader) {
        const lead = members.find((m) => m.name === leader);
        if (lead === undefined) throw new Error(`no member ${leader}`);
        const others = members.filter((m) => m !== lead);
        const state = async () => {
          const view = await cluster().catch(() => undefined);
          const replication = await leaderReplication(lead.api).catch(() => []);
          const answers = await Promise.all(others.map(async (m) => (await get(`${m.api}/patroni`, tls))?.status === 200));
          return (
            view !== undefined &&
            view.members
              .filter((m) => m.role === 'leader')
              .map((m) => m.name)
              .join() === leader &&
            others.every((o) => view.members.some((m) => m.name === o.name && m.state === 'running' && (m.lag === 0 || m.lag === undefined))) &&
            others.every((o) => replication.some((r) => r.application_name === o.name && r.state === 'streaming')) &&
            answers.every(Boolean) &&
            (await routes()).join() === leader
          );
        };
        const until = Date.now() + 60_000;
        while (!(await state())) {
          if (Date.now() > until)
            throw new Error(
              `the cluster did not settle with ${leader} leading within 60 s: ${JSON.stringify(await cluster().catch((e: unknown) => String(e)))}`,
            );
          await sleep(250);
        }
      },
      async setTags(name, tags) {
        const spec = specs.find((x) => x.name === name);
        if (spec === undefined) throw new Error(`no member ${name}`);
        const file = path.join(spec.dir, 'patroni.yml');
        const config = JSON.parse(readFileSync(file, 'utf8')) as { tags: Record<string, boolean> };
        config.tags = { ...config.tags, ...tags };
        writeFileSync(file, JSON.stringify(config, null, 2));
        const response = await request(`${scheme}://127.0.0.1:${spec.apiPort}/reload`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${apiUser}:${apiPassword}`).toString('base64')}` },
          ...(tls !== undefined ? { tls } : {}),
        });
        if (response?.status !== 202) throw new Error(`POST /reload answered ${response?.status ?? 'nothing'}: ${response?.body ?? ''}`);
        const shown = async () => {
          const member = (await cluster()).members.find((m) => m.name === name) as { tags?: Record<string, unknown> } | undefined;
          return Object.entries(tags).every(([k, v]) => (member?.tags?.[k] ?? false) === v);
        };
        const until = Date.now() + 30_000;
        while (!(await shown())) {
          if (Date.now() > until) throw new Error(`GET /cluster does not show ${name}'s tags ${JSON.stringify(tags)}`);
          await sleep(200);
        }
      },
      log: logOf,
      stop,
    };
  } catch (error) {
    const tails = [...logs.keys()].map((name) => `--- ${name}\n${logOf(name).slice(-2000)}`).join('\n');
    await stop();
    throw new Error(`the Patroni cluster did not start: ${error instanceof Error ? error.message : String(error)}\n${tails}`);
  }
}
