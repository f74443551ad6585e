// node-oracledb ships no type declarations; this is the part src/db/oracle.ts uses.
declare module 'oracledb' {
  interface Connection {
    execute(sql: string, binds: Readonly<Record<string, string | number>>, options: { outFormat: number }): Promise<{ rows?: unknown[] }>;
    close(): Promise<void>;
  }
  const oracledb: {
    getConnection(options: { user: string; password?: string; connectString: string }): Promise<Connection>;
    readonly OUT_FORMAT_OBJECT: number;
  };
  export default oracledb;
}
