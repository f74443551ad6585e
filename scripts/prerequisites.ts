/**
 * Run by `npm test` before any test (and so by `.ci/run`): finds every system
 * tool the tests need (scripts/tools.ts). Where some are missing and this is
 * root on Debian or Ubuntu, installs them with apt; otherwise stops at once
 * with one line per missing tool and the command that installs it.
 *
 *   node dist/scripts/prerequisites.js           check, install where it can
 *   node dist/scripts/prerequisites.js --check   check only, never install
 *   node dist/scripts/prerequisites.js pgbouncer only these tools (by Debian package name)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SYSTEM_PG_MAJOR, systemPostgres, TEST_TOOLS, type SystemTool } from './tools.js';

function debianLike(): boolean {
  if (!existsSync('/etc/os-release')) return false;
  const release = readFileSync('/etc/os-release', 'utf8');
  return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(release);
}

const canInstall = () => process.getuid?.() === 0 && debianLike() && spawnSync('apt-get', ['--version']).status === 0;

const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const wanted = TEST_TOOLS.filter((tool) => only.length === 0 || only.includes(tool.debianPackage));

function missing(): SystemTool[] {
  return wanted.filter((tool) => tool.find() === undefined);
}

/** A bin directory given by CUTOVER_PG_BINDIR must hold the major the tests are written for. */
function wrongMajor(): string | undefined {
  const dir = systemPostgres.find();
  if (dir === undefined) return undefined;
  const version = execFileSync(path.join(dir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const major = /\(PostgreSQL\) (\d+)/.exec(version)?.[1];
  return major === String(SYSTEM_PG_MAJOR) ? undefined : `${dir} holds PostgreSQL ${major ?? '?'}, the tests need ${SYSTEM_PG_MAJOR}: ${version.trim()}`;
}

function install(tools: readonly SystemTool[]): void {
  const packages = [...new Set(tools.map((t) => t.debianPackage))];
  console.log(`prerequisites: installing ${packages.join(', ')} with apt-get (--no-install-recommends):`);
  for (const tool of tools) console.log(`  ${tool.debianPackage}: ${tool.name}; ${tool.why}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => {
    const result = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} exited with ${result.status ?? result.signal}`);
  };
  apt(['update', '-qq']);
  apt(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
}

function explain(tools: readonly SystemTool[]): void {
  console.error('prerequisites: system tools this machine lacks; nothing was run.');
  for (const tool of tools) {
    const elsewhere = tool.override === undefined ? '' : `, or set ${tool.override} to one elsewhere`;
    console.error(`  missing ${tool.name} (${tool.why}): sudo apt-get install --no-install-recommends ${tool.debianPackage}${elsewhere}`);
  }
}

function main(): number {
  const checkOnly = process.argv.includes('--check');
  let absent = missing();
  if (absent.length > 0 && !checkOnly && canInstall()) {
    install(absent);
    absent = missing();
  }
  if (absent.length > 0) {
    explain(absent);
    return 1;
  }
  const mismatch = wanted.includes(systemPostgres) ? wrongMajor() : undefined;
  if (mismatch !== undefined) {
    console.error(`prerequisites: ${mismatch}`);
    return 1;
  }
  return 0;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error(`prerequisites: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
