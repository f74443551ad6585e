export {
  startPostgres,
  initPostgres,
  binDir,
  VERSIONS,
  DEBIAN_15_BIN,
  type PgVersion,
  type TestServer,
  type ServerOptions,
} from '../../scripts/embedded-postgres.js';
