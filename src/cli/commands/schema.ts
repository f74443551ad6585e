import { writeFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { registry, runbookJsonSchema } from '../../runbooks.js';
import { io } from '../io.js';

export const schemaCommand: CommandModule<object, { out: string | undefined }> = {
  command: 'schema',
  describe: 'Print the JSON Schema of the runbook format (for editor autocompletion)',
  builder: (y) => y.option('out', { type: 'string', describe: 'write it to this file instead' }),
  handler: (args) => {
    const text = `${JSON.stringify(runbookJsonSchema(registry), null, 2)}\n`;
    if (args.out) {
      writeFileSync(args.out, text);
      io.out(`wrote ${args.out}`);
    } else io.out(text);
  },
};
