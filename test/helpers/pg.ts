export {
  startPostgres,
  startAll,
  initPostgres,
  binDir,
  VERSIONS,
  OLD_VERSIONS,
  type PgVersion,
  type TestServer,
} from '../../scripts/embedded-postgres.js';
