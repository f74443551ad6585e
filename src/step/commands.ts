/**
 * External commands go through this seam so tests and embedders can inject a
 * runner. The default runs argv with execa: no shell, so nothing is
 * re-interpreted, and the command is shown escaped in errors.
 */
import { CommandError } from '../errors.js';

export interface CommandOptions {
  readonly cwd?: string;
  /** Added to the inherited environment. */
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export type CommandRunner = (argv: readonly string[], options: CommandOptions) => Promise<CommandResult>;

/** Quotes argv for display the way a POSIX shell would read it back. */
export function displayCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export const execaRunner: CommandRunner = async (argv, options) => {
  const [file, ...args] = argv;
  if (file === undefined) throw new CommandError('empty command', '', undefined, '');
  // Loaded on first use: commands that run no external program do not pay for execa at start-up.
  const { execa } = await import('execa');
  const result = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
    ...(options.signal !== undefined ? { cancelSignal: options.signal } : {}),
  });
  const command = displayCommand(argv);
  if (result.failed) {
    const why = result.timedOut
      ? `timed out after ${options.timeoutMs}ms`
      : result.isCanceled
        ? 'was cancelled'
        : result.exitCode !== undefined
          ? `exited with code ${result.exitCode}`
          : (result.originalMessage ?? result.shortMessage);
    throw new CommandError(`command ${why}: ${command}`, command, result.exitCode, result.stderr, result.stdout);
  }
  return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode ?? 0 };
};
