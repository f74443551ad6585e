export {
  startPostgres,
  startAll,
  initPostgres,
  binDir,
  VERSIONS,
  OLD_VERSIONS,
  type PgVersion,
  type TestServer,
  type ServerOptions,
} from '../../scripts/embedded-postgres.js';
