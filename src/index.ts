/**
 * The library. The CLI (src/cli/) uses only what is exported here.
 */
export { loadRunbook, parseRunbook, type Runbook } from './runbook/load.js';
export { runbookJsonSchema } from './runbook/json-schema.js';
export { formatDuration } from './runbook/duration.js';
export { registry, stepKinds, type StepKind } from './steps/index.js';
export {
  planRunbook,
  runRunbook,
  resumeRun,
  rollbackRun,
  loadRunState,
  abandonRun,
  selectSteps,
  type RunOptions,
  type RunResult,
  type StepResult,
} from './engine/executor.js';
export type { EngineOptions } from './engine/run-context.js';
export { standing, type Standing } from './engine/result.js';
export { TOOL_VERSION } from './version.js';
export { previewRollback, type RollbackPreview, type RollbackPreviewStep } from './engine/rollback-preview.js';
export { preflight, type ConnectionCheck, type PreflightOptions, type PreflightResult, type StepCheck } from './engine/preflight.js';
export { Redactor, REDACTED } from './audit/redact.js';
export { SAVED_PLAN_FORMAT, checkSavedPlan, makeSavedPlan, planDrift, readSavedPlan, type SavedPlan } from './engine/saved-plan.js';
export { parseDuration } from './runbook/duration.js';
export type { RunEvent, RunStatus, SerializedError } from './audit/events.js';
export type { RunState, StepState, StepStatus, StepPhases } from './engine/state.js';
export { formatPhases, phaseTotal } from './engine/state.js';
export type {
  Action,
  Change,
  CheckContext,
  CheckFinding,
  ConfigIssue,
  FileEdit,
  PlanTable,
  RollbackPlan,
  StepPlan,
  StepDefinition,
  StepRegistry,
  Step,
  Json,
} from './step/contract.js';
export type { OracleConnection, OracleConnector } from './db/oracle.js';
export { defineStep, describeFileEdit, jsonText } from './step/contract.js';
export { displayCommand, type CommandRunner } from './step/commands.js';
export { DEFAULT_STATE_DIR, listRunIds, findRun, runsDir } from './engine/runs.js';
export { pickRun, effectiveStatus, describeProgress, type PickedRun } from './engine/run-selection.js';
export {
  verifyJournal,
  verifyJournalText,
  readJournal,
  journalFile,
  type JournalLine,
  type JournalSink,
  type VerifyResult,
  type VerifyOptions,
} from './audit/journal.js';
export { FileJournalStore, materialize, verifyStoredJournal, type JournalStore } from './audit/journal-store.js';
export { journalKeyFromEnv } from './audit/journal-key.js';
export { trustJournal } from './engine/trust.js';
export {
  buildReport,
  compareRuns,
  describeWindow,
  listRuns,
  windowOf,
  type Comparison,
  type PhaseSegment,
  type RunReport,
  type RunSummary,
  type StepReport,
  type WindowSize,
} from './engine/report.js';
export { quoteIdent, quoteQualified } from './db/quote.js';
export * from './errors.js';
export { listTemplates, template, TEMPLATES_DIR, type Template } from './templates.js';
export * from './fleet/index.js';
