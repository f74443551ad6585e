import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { UsageError, listTemplates, registry, runbookJsonSchema, template } from '../../index.js';
import { io } from '../io.js';

interface InitArgs {
  template: string | undefined;
  list: boolean;
  out: string | undefined;
}

export const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'Start a runbook from a template (--list shows them); writes its JSON Schema beside it for editors',
  builder: (y) =>
    y
      .option('template', { type: 'string', describe: 'the template to start from' })
      .option('list', { type: 'boolean', default: false, describe: 'list the templates' })
      .option('out', { type: 'string', describe: 'the runbook file to write (default: <template>.yaml)' }),
  handler: (args) => {
    if (args.list || args.template === undefined) {
      for (const t of listTemplates()) io.out(`${t.name.padEnd(30)} ${t.summary}`);
      if (!args.list) io.err('\nchoose one with: cutover init --template <name>');
      return;
    }
    const chosen = template(args.template);
    const out = args.out ?? `${chosen.name}.yaml`;
    if (existsSync(out)) throw new UsageError(`${out} exists; choose another --out (nothing was written)`);
    writeFileSync(out, chosen.text);
    // The template's first line points editors at this file.
    const schema = path.join(path.dirname(out), 'runbook.schema.json');
    writeFileSync(schema, `${JSON.stringify(runbookJsonSchema(registry), null, 2)}\n`);
    io.out(`wrote ${out} and ${schema}`);
    if (chosen.variables.length > 0) io.out(`it reads these environment variables: ${chosen.variables.join(', ')}`);
    io.out(`then: cutover validate ${out} && cutover plan ${out}`);
  },
};
