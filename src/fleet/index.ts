/** The fleet's public API: re-exported by src/index.ts. */
export { allowedFailures, inventoryJsonSchema, loadInventory, type Inventory, type LoadInventoryOptions, type Target, type Wave } from './inventory.js';
export {
  FleetAlreadyStartedError,
  FleetStoppedError,
  inProcessExecutor,
  latestRun,
  loadTargets,
  planFleet,
  runFleet,
  type CellStatus,
  type FleetOptions,
  type FleetOutcome,
  type FleetPlan,
  type FleetRunOptions,
  type FleetRunResult,
  type TargetExecutor,
  type TargetOutcome,
  type TargetPlan,
  type TargetRunResult,
} from './runner.js';
export { rollbackFleet, type FleetRollbackOptions, type TargetRollback } from './rollback.js';
export { approveFleet, fleetLog, fleetStatus, type FleetStatus, type FleetTargetStatus, type TargetStatus, type WaveStatus } from './status.js';
export { FileFleetStore, FleetBusyError, type Approval, type FleetEvent, type FleetStore } from './store.js';
export {
  QueueJobError,
  queueFleetStore,
  runFleetOnQueue,
  startQueueWorker,
  takeoverBoundSeconds,
  type QueueFleetRunOptions,
  type QueueOptions,
  type QueueTiming,
  type QueueWorker,
  type WorkerOptions,
} from './queue.js';
export { FLEET_SCHEMA, fleetId, LeaseLostError, openQueueJournals, PgFleetStore, PgJournalStore, redactUrl } from './queue-store.js';
