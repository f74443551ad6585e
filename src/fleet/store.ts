/**
 * Where a fleet keeps its own state: a log of what the fleet did (waves,
 * targets started and finished, waits), approvals, and the lock that keeps
 * two `fleet run` processes off one fleet. Each target's runs are ordinary
 * runs journaled under the target's own state directory.
 *
 * `FleetStore` is the seam for a later store in PostgreSQL (queue mode); the
 * runner only talks to the interface. `FileFleetStore` keeps everything in
 * files under `<state-dir>/fleets/<inventory name>/<runbook name>/`.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import type { JournalSink } from '../audit/journal.js';
import { makeDirs } from '../files.js';

const ts = z.string();
export const fleetEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('fleet.started'),
    ts,
    command: z.enum(['run', 'resume']),
    runbook: z.object({ file: z.string(), sha256: z.string() }),
    inventory: z.object({ file: z.string(), sha256: z.string() }),
    operator: z.string(),
    host: z.string(),
    pid: z.number(),
    jobs: z.number(),
  }),
  z.object({ type: z.literal('wave.waiting'), ts, wave: z.string() }),
  z.object({ type: z.literal('wave.approved'), ts, wave: z.string(), operator: z.string() }),
  z.object({ type: z.literal('wave.started'), ts, wave: z.string() }),
  z.object({
    type: z.literal('wave.finished'),
    ts,
    wave: z.string(),
    outcome: z.enum(['done', 'halted', 'stopped']),
    failures: z.number(),
    allowed: z.number(),
  }),
  z.object({
    type: z.literal('target.started'),
    ts,
    target: z.string(),
    wave: z.string(),
    runId: z.string(),
    action: z.enum(['run', 'resume']),
    /** Queue mode: the worker that runs it (host:pid:job). */
    worker: z.string().optional(),
  }),
  z.object({ type: z.literal('target.waiting'), ts, target: z.string(), stepId: z.string(), question: z.string() }),
  z.object({ type: z.literal('target.approved'), ts, target: z.string(), stepId: z.string(), approval: z.string(), operator: z.string() }),
  z.object({
    type: z.literal('target.finished'),
    ts,
    target: z.string(),
    wave: z.string(),
    runId: z.string().optional(),
    status: z.string(),
    message: z.string().optional(),
    durationMs: z.number(),
  }),
  z.object({ type: z.literal('fleet.finished'), ts, outcome: z.string(), durationMs: z.number() }),
  /** `cutover fleet rollback`; each target's own journal has the rollback itself. */
  z.object({ type: z.literal('rollback.started'), ts, operator: z.string(), host: z.string(), pid: z.number(), jobs: z.number() }),
  z.object({
    type: z.literal('rollback.finished'),
    ts,
    outcome: z.enum(['rolled-back', 'partly-rolled-back', 'not-rolled-back', 'stopped']),
    /** Per wave the rollback reached: every target undone (or with nothing to undo), some, or none. */
    waves: z.record(z.string(), z.enum(['rolled-back', 'partly-rolled-back', 'not-rolled-back'])),
    durationMs: z.number(),
  }),
]);
export type FleetEvent = z.output<typeof fleetEventSchema>;
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type NewFleetEvent = Without<FleetEvent, 'ts'>;

export const approvalSchema = z.object({
  /** A target or a wave. */
  name: z.string(),
  /** Only this confirm step; absent: the wave's gate and every confirm of the name. */
  step: z.string().optional(),
  operator: z.string(),
  at: z.string(),
  /** The runbook as it was when approved (sha256 of its bytes): a changed runbook is approved anew. Absent in older records. */
  runbookSha256: z.string().optional(),
});
export type Approval = z.output<typeof approvalSchema>;

/** Whether an approval was given for this runbook, byte for byte (or before approvals named one). */
export const forRunbook = (approval: Approval, runbookSha256: string | undefined): boolean =>
  approval.runbookSha256 === undefined || approval.runbookSha256 === runbookSha256;

/** A target held here for a rollback: where its journals are, where new journal lines go too, and how to let go. */
export interface TargetHold {
  readonly stateDir: string;
  readonly journalSink?: JournalSink;
  release(): void;
}

export interface FleetStore {
  /** Shown to people: where the fleet's state is. */
  readonly location: string;
  /** The state directory a target's runs are journaled under. */
  targetStateDir(target: string): string;
  /** The same for many targets at once (a queue's store reads all their journals in one round trip). */
  targetStateDirs(targets: readonly string[]): Map<string, string>;
  append(event: NewFleetEvent): FleetEvent;
  events(): FleetEvent[];
  approvals(): Approval[];
  approve(approval: Omit<Approval, 'at'>): Approval;
  /** Takes the fleet's run lock; throws UsageError naming the holder. Returns the release. */
  lock(): () => void;
  /** The pid of a live process holding the lock, if any. */
  holder(): number | undefined;
  /**
   * A store whose targets run elsewhere (a queue's workers) holds a target
   * for a rollback here: refused (FleetBusyError) while a live worker has it.
   * Without it, a rollback uses targetStateDir as a run does.
   */
  hold?(target: string): TargetHold;
}

export class FileFleetStore implements FleetStore {
  readonly location: string;
  private readonly log: string;
  private readonly approvalsDir: string;

  constructor(stateDir: string, inventoryName: string, runbookFile: string) {
    const stem =
      path
        .basename(runbookFile)
        .replace(/\.ya?ml$/i, '')
        .replace(/[^A-Za-z0-9._-]/g, '_') || 'runbook';
    this.location = path.join(stateDir, 'fleets', inventoryName, stem);
    this.log = path.join(this.location, 'fleet.jsonl');
    this.approvalsDir = path.join(this.location, 'approvals');
  }

  targetStateDir(target: string): string {
    return path.join(this.location, 'targets', target);
  }

  targetStateDirs(targets: readonly string[]): Map<string, string> {
    return new Map(targets.map((t) => [t, this.targetStateDir(t)]));
  }

  /** The runbook this fleet directory belongs to: a second runbook of the same name elsewhere must not share it. */
  claim(runbookFile: string): void {
    this.checkOwner(runbookFile);
    makeDirs(this.location);
    const file = path.join(this.location, 'runbook');
    if (!existsSync(file)) writeFileSync(file, `${path.resolve(runbookFile)}\n`);
  }

  /** Reads only: the fleet state here is another runbook's (one of the same file name elsewhere), so it is not this one's to show. */
  checkOwner(runbookFile: string): void {
    const file = path.join(this.location, 'runbook');
    const absolute = path.resolve(runbookFile);
    if (!existsSync(file)) return;
    const owner = readFileSync(file, 'utf8').trim();
    if (owner !== absolute) throw new UsageError(`fleet state ${this.location} belongs to runbook ${owner}, not ${absolute}; rename one of them`);
  }

  append(event: NewFleetEvent): FleetEvent {
    makeDirs(this.location);
    const record = { ...event, ts: new Date().toISOString() };
    const fd = openSync(this.log, 'a', 0o600);
    try {
      appendFileSync(fd, `${JSON.stringify(record)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return record;
  }

  events(): FleetEvent[] {
    if (!existsSync(this.log)) return [];
    const out: FleetEvent[] = [];
    for (const [i, line] of readFileSync(this.log, 'utf8').split('\n').entries()) {
      if (line.trim() === '') continue;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        continue; // a torn last line from a crash mid-write
      }
      const parsed = fleetEventSchema.safeParse(json);
      if (!parsed.success) throw new UsageError(`${this.log}:${i + 1}: not a fleet record (${parsed.error.issues[0]?.message ?? 'invalid'})`);
      out.push(parsed.data);
    }
    return out;
  }

  approvals(): Approval[] {
    if (!existsSync(this.approvalsDir)) return [];
    return readdirSync(this.approvalsDir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .flatMap((f) => {
        try {
          const parsed = approvalSchema.safeParse(JSON.parse(readFileSync(path.join(this.approvalsDir, f), 'utf8')));
          return parsed.success ? [parsed.data] : [];
        } catch {
          return []; // being written right now: read on the next poll
        }
      });
  }

  approve(approval: Omit<Approval, 'at'>): Approval {
    makeDirs(this.approvalsDir);
    const record: Approval = { ...approval, at: new Date().toISOString() };
    const name = `${record.at.replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    // Written aside, then renamed: a reader never sees half a file.
    const staging = path.join(this.approvalsDir, `${name}.tmp`);
    writeFileSync(staging, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(staging, path.join(this.approvalsDir, `${name}.json`));
    return record;
  }

  lock(): () => void {
    makeDirs(this.location);
    const file = path.join(this.location, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, `${process.pid} ${os.hostname()}`);
        closeSync(fd);
        return () => {
          rmSync(file, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = this.holder();
        if (holder !== undefined && holder !== process.pid) {
          throw new FleetBusyError(`fleet ${this.location} is being run by process ${holder}; wait for it, or stop it (Ctrl-C) first`);
        }
        rmSync(file, { force: true });
      }
    }
    throw new UsageError(`cannot lock fleet ${this.location}`);
  }

  holder(): number | undefined {
    const file = path.join(this.location, 'lock');
    if (!existsSync(file)) return undefined;
    const [pid, host] = readFileSync(file, 'utf8').trim().split(' ');
    const n = Number(pid);
    if (!Number.isInteger(n) || n <= 0) return undefined;
    if (host !== undefined && host !== os.hostname()) return n;
    try {
      process.kill(n, 0);
      return n;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? n : undefined;
    }
  }
}

/** Another process runs this fleet right now. */
export class FleetBusyError extends Error {
  override readonly name = 'FleetBusyError';
}
