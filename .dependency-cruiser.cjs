// The import direction of ARCHITECTURE.md, enforced: `npm run lint` fails on an
// arrow that points up a layer, on a cycle, and on the engine naming a kind.
// Layers, lowest first. A module may import its own layer and those below it.
const layers = [
  ['base', '^src/(errors|version|files|poll|parallel)\\.ts$'],
  ['db', '^src/db/'],
  ['runbook', '^src/runbook/'],
  ['step', '^src/step/'],
  ['audit', '^src/audit/'],
  ['domain', '^src/(analyze|compare|sequences|precheck|replication|plancheck|pooler)/|^src/templates\\.ts$'],
  ['steps', '^src/steps/'],
  ['engine', '^src/engine/'],
  ['fleet', '^src/fleet/'],
  ['index', '^src/(index|runbooks)\\.ts$'],
  ['cli', '^src/cli/'],
];

const upwards = layers.slice(0, -1).map(([name, path], i) => ({
  name: `${name}-imports-upwards`,
  comment: `${name} may not import a layer above it (${layers.slice(i + 1).map(([n]) => n).join(', ')}): move the type or helper down`,
  severity: 'error',
  from: { path },
  to: { path: layers.slice(i + 1).map(([, p]) => `(${p})`).join('|') },
}));

module.exports = {
  forbidden: [
    ...upwards,
    {
      name: 'no-circular',
      comment: 'a cycle means something lives in the wrong file',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'engine-knows-no-kind',
      comment: 'the engine and fleet runs know the step contract, never a kind or its domain: the registry is passed in',
      severity: 'error',
      from: { path: '^src/(engine|fleet)/' },
      to: { path: '^src/(steps|analyze|compare|sequences|precheck|replication|plancheck|pooler)/' },
    },
    {
      name: 'domains-stand-alone',
      comment: 'one domain does not reach into another; shared code moves down (db, runbook, step)',
      severity: 'error',
      from: { path: '^src/(analyze|compare|sequences|precheck|replication|plancheck|pooler)/' },
      to: { path: '^src/(analyze|compare|sequences|precheck|replication|plancheck|pooler)/', pathNot: '^src/$1/' },
    },
    {
      name: 'cli-uses-the-public-index',
      comment: 'the CLI uses the library through src/index.ts (runbooks.ts where nothing runs; version.ts, read before anything loads)',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/', pathNot: '^src/(cli/|index\\.ts$|runbooks\\.ts$|version\\.ts$)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
