/**
 * The part of the library that reads runbooks and knows their step kinds,
 * without the engine or the fleet: for callers that run nothing (`cutover
 * validate`, `cutover schema`): `validate` then loads 73 of our modules
 * instead of 103. Everything here is exported by src/index.ts too.
 */
export { loadRunbook, parseRunbook, type Runbook } from './runbook/load.js';
export { runbookJsonSchema } from './runbook/json-schema.js';
export { registry, stepKinds, type StepKind } from './steps/index.js';
export { Redactor, REDACTED } from './audit/redact.js';
export * from './errors.js';
export { fsReason, makeDirs } from './files.js';
export { suggest } from './runbook/suggest.js';
