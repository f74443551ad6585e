/**
 * The installed package's version, recorded in every journal. On its own so
 * that `cutover --version` reads it without importing the library.
 * Compiled to dist/src/.
 */
import { readFileSync } from 'node:fs';

export const TOOL_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
