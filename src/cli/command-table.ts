/**
 * Every command's name, usage and one-line description, and how to load its
 * module. main.ts imports only this (and yargs) eagerly: a command's module,
 * and through it the library, pg, execa, listr2 and enquirer, is imported
 * when that command runs, so `--version`, `--help` and the light commands
 * start in little more than yargs' own time. `command` and `describe` must
 * equal the module's own (a unit test compares them): they are what
 * `cutover --help` lists without loading any module.
 */
import type { CommandModule } from 'yargs';

// The modules' argument types differ (each types its own); yargs only needs the shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' own type for a list of differently typed commands
export type AnyCommand = CommandModule<any, any>;

export interface CommandEntry {
  readonly name: string;
  readonly command: string;
  readonly describe: string;
  readonly load: () => Promise<AnyCommand>;
}

export const commandTable: readonly CommandEntry[] = [
  {
    name: 'init',
    command: 'init',
    describe: 'Start a runbook from a template (--list shows them); writes its JSON Schema beside it for editors',
    load: async () => (await import('./commands/init.js')).initCommand,
  },
  {
    name: 'validate',
    command: 'validate <runbook>',
    describe: 'Check a runbook file: YAML, schema, ids and connection references (connects to nothing)',
    load: async () => (await import('./commands/validate.js')).validateCommand,
  },
  {
    name: 'check',
    command: 'check <runbook>',
    describe: "Preflight: open every connection (auth, TLS, version, recovery) and check each step's privileges, settings and programs",
    load: async () => (await import('./commands/check.js')).checkCommand,
  },
  {
    name: 'plan',
    command: 'plan <runbook>',
    describe: 'Dry run: connect read-only and print exactly what each step would do; changes nothing',
    load: async () => (await import('./commands/run.js')).planCommand,
  },
  {
    name: 'run',
    command: 'run <runbook>',
    describe: 'Execute a runbook: plan, apply and verify each step; roll back on failure',
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  {
    name: 'resume',
    command: 'resume [runId]',
    describe: 'Continue a stopped or crashed run from its journal; no completed step runs twice',
    load: async () => (await import('./commands/resume.js')).resumeCommand,
  },
  {
    name: 'rollback',
    command: 'rollback [runId]',
    describe: "Undo a run's applied steps, newest first, from their recorded before-state",
    load: async () => (await import('./commands/resume.js')).rollbackCommand,
  },
  {
    name: 'abandon',
    command: 'abandon <runId>',
    describe: 'Give up on finishing a stopped run (journaled); it can still be rolled back',
    load: async () => (await import('./commands/abandon.js')).abandonCommand,
  },
  {
    name: 'status',
    command: 'status [runId]',
    describe: "Show a run's state from its journal (default: the newest run) and list recent runs",
    load: async () => (await import('./commands/status.js')).statusCommand,
  },
  {
    name: 'runs',
    command: 'runs',
    describe: 'List past runs, newest first: id, label, environment, runbook, start, outcome, duration',
    load: async () => (await import('./commands/report.js')).runsCommand,
  },
  {
    name: 'report',
    command: 'report [runIds..]',
    describe: 'A run for change review (Markdown, one self-contained HTML page, or JSON), or --compare rehearsals',
    load: async () => (await import('./commands/report.js')).reportCommand,
  },
  {
    name: 'audit',
    command: 'audit <command>',
    describe: 'Check the tamper-evident journal of a run',
    load: async () => (await import('./commands/audit.js')).auditCommand,
  },
  {
    name: 'schema',
    command: 'schema',
    describe: 'Print the JSON Schema of the runbook format (for editor autocompletion)',
    load: async () => (await import('./commands/schema.js')).schemaCommand,
  },
  {
    name: 'fleet',
    command: 'fleet [command] [rest..]',
    describe: 'One runbook across many databases: waves, maxFailures, approvals (see README, Fleet)',
    load: async () => (await import('./commands/fleet.js')).fleetCommand,
  },
];
