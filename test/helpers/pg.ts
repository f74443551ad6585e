export {
  startPostgres,
  startAll,
  initPostgres,
  binDir,
  VERSIONS,
  OLD_VERSIONS,
  DEBIAN_15_BIN,
  type PgVersion,
  type TestServer,
} from '../../scripts/embedded-postgres.js';
