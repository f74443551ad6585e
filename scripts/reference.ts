/** `npm run reference`: rewrites the README's runbook reference from the schema. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { registry } from '../src/index.js';
import { runbookReference, withReference } from '../src/runbook/reference.js';

const readme = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md');
writeFileSync(readme, withReference(readFileSync(readme, 'utf8'), runbookReference(registry)));
process.stdout.write(`updated the runbook reference in ${readme}\n`);
