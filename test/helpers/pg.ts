export { startPostgres, binDir, VERSIONS, type PgVersion, type TestServer } from '../../scripts/embedded-postgres.js';
