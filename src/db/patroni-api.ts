/**
 * Patroni's REST API, as the `patroni` step kind reads and drives it.
 *
 * Requests go through node:http/https rather than fetch: a REST API set up
 * with `restapi.verify_client` wants a client certificate, which fetch cannot
 * present without the undici package. Every request has a deadline and
 * honours the run's signal. Responses cross a process boundary, so the
 * bodies the step relies on are parsed with schemas here.
 */
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import type { ResolvedPatroni } from './connections.js';

export const memberSchema = z.looseObject({
  name: z.string(),
  role: z.string(),
  state: z.string().optional(),
  api_url: z.string().optional(),
  host: z.string().optional(),
  port: z.number().optional(),
  timeline: z.number().optional(),
  lag: z.union([z.number(), z.string()]).optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
});
export type Member = z.output<typeof memberSchema>;

/** `GET /cluster`. */
export const clusterSchema = z.looseObject({
  members: z.array(memberSchema),
  pause: z.boolean().optional(),
  scheduled_switchover: z.looseObject({ at: z.string(), from: z.string().optional(), to: z.string().optional() }).optional(),
});
export type Cluster = z.output<typeof clusterSchema>;

/** `GET /patroni` (or `/`): one member's own view of its PostgreSQL. */
export const memberStatusSchema = z.looseObject({
  state: z.string().optional(),
  role: z.string().optional(),
  timeline: z.number().optional(),
  xlog: z
    .looseObject({
      location: z.number().optional(),
      received_location: z.number().optional(),
      replayed_location: z.number().optional(),
      paused: z.boolean().optional(),
    })
    .optional(),
  replication: z.array(z.looseObject({ application_name: z.string(), state: z.string(), sync_state: z.string().optional() })).optional(),
  pause: z.boolean().optional(),
  patroni: z.looseObject({ version: z.string().optional(), scope: z.string().optional() }).optional(),
});
export type MemberStatus = z.output<typeof memberStatusSchema>;

/** `GET /config`: the cluster-wide (DCS) settings. */
export const dcsConfigSchema = z.looseObject({
  synchronous_mode: z.boolean().optional(),
  maximum_lag_on_failover: z.number().optional(),
});

export interface ApiResponse {
  readonly url: string;
  readonly status: number;
  readonly body: string;
}

/** No member of the connection answered (refused, timed out, TLS failed). */
export class PatroniUnreachableError extends Error {
  override readonly name = 'PatroniUnreachableError';
  constructor(
    readonly connection: string,
    readonly failures: readonly string[],
  ) {
    super(`connection "${connection}": no Patroni REST API answered (${failures.join('; ')})`);
  }
}

/** An answer that is not what Patroni sends (a proxy's error page, another service on the port). */
export class PatroniResponseError extends Error {
  override readonly name = 'PatroniResponseError';
}

const DEFAULT_TIMEOUT_MS = 5_000;

export interface RequestOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly body?: unknown;
  /** Send the connection's basic auth (Patroni asks for it on POST, PATCH, DELETE). */
  readonly auth?: boolean;
}

export class PatroniApi {
  constructor(
    readonly connection: string,
    private readonly resolved: ResolvedPatroni,
  ) {}

  /** The connection's own member (its `url`). */
  baseUrl(): string {
    return this.resolved.urls[0] ?? '';
  }

  /** The base URL of a member from its `api_url` in /cluster (`http://host:port/patroni`). */
  static baseOf(member: Member): string | undefined {
    if (member.api_url === undefined || !URL.canParse(member.api_url)) return undefined;
    return new URL(member.api_url).origin;
  }

  /** One request to one base URL; rejects only when nothing answered. */
  request(method: 'GET' | 'POST' | 'DELETE', url: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const target = new URL(url);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options.auth === true && this.resolved.authorization !== undefined) headers['authorization'] = this.resolved.authorization;
    const client = target.protocol === 'https:' ? https : http;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const request = client.request(
        target,
        {
          method,
          headers,
          ...(target.protocol === 'https:' ? this.resolved.tls : {}),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => {
            clearTimeout(timer);
            resolve({ url: target.toString(), status: response.statusCode ?? 0, body: text });
          });
          response.on('error', (error) => {
            clearTimeout(timer);
            reject(error);
          });
        },
      );
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.end(body);
    });
  }

  /** GET `path` from the first member of the connection that answers. */
  async getAny(path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const failures: string[] = [];
    for (const base of this.resolved.urls) {
      try {
        return await this.request('GET', `${base}${path}`, options);
      } catch (error) {
        if (options.signal?.aborted) throw error;
        failures.push(`${base}: ${describe(error)}`);
      }
    }
    throw new PatroniUnreachableError(this.connection, failures);
  }

  async cluster(options: RequestOptions = {}): Promise<Cluster> {
    return parseJson(await this.getAny('/cluster', options), clusterSchema);
  }

  async dcsConfig(options: RequestOptions = {}): Promise<z.output<typeof dcsConfigSchema>> {
    return parseJson(await this.getAny('/config', options), dcsConfigSchema);
  }

  /** One member's own status, or why it could not be read. */
  async status(member: Member, options: RequestOptions = {}): Promise<MemberStatus | string> {
    const base = PatroniApi.baseOf(member);
    if (base === undefined) return 'no REST API address in /cluster';
    try {
      return parseJson(await this.request('GET', `${base}/patroni`, options), memberStatusSchema);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      return describe(error);
    }
  }

  /** The HTTP status a member answers `path` with (e.g. /primary, /sync), or why it did not answer. */
  async probe(member: Member, path: string, options: RequestOptions = {}): Promise<number | string> {
    const base = PatroniApi.baseOf(member);
    if (base === undefined) return 'no REST API address in /cluster';
    try {
      return (await this.request('GET', `${base}${path}`, options)).status;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      return describe(error);
    }
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}

function parseJson<T extends z.ZodType>(response: ApiResponse, schema: T): z.output<T> {
  if (response.status !== 200) throw new PatroniResponseError(`${response.url} answered ${response.status}: ${response.body.slice(0, 200)}`);
  let value: unknown;
  try {
    value = JSON.parse(response.body);
  } catch {
    throw new PatroniResponseError(`${response.url} did not answer JSON: ${response.body.slice(0, 200)}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new PatroniResponseError(`${response.url} is not Patroni's answer: ${parsed.error.issues[0]?.message ?? 'unexpected shape'}`);
  return parsed.data;
}
