export {
  startPostgres,
  initPostgres,
  binDir,
  VERSIONS,
  type PgVersion,
  type TestServer,
} from '../../scripts/embedded-postgres.js';
