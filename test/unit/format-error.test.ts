/**
 * The caret under a PostgreSQL error position: it stands under the character
 * the server named, however wide what comes before it is drawn. Expected
 * lines are written out in full.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDatabaseError } from '../../src/cli/format-error.js';
import { DatabaseError, isSqlstate } from '../../src/errors.js';
import { SyncPgError } from '../../src/db/sync-pg.js';
import { toDatabaseError } from '../../src/db/session.js';

/** The LINE and caret lines for an error at the first character of `bad` in `sql`. */
function caretAt(sql: string, bad: string): string[] {
  const position = Array.from(sql.slice(0, sql.indexOf(bad))).length + 1;
  const text = formatDatabaseError(new DatabaseError('boom', { connection: 'db', sqlstate: '42703', sql, position }));
  return text.split('\n').slice(1, 3);
}

describe('formatDatabaseError: the caret', () => {
  it('stands under the named character on an ASCII line', () => {
    // "  LINE 1: " is 10 columns, "SELECT " 7.
    assert.deepEqual(caretAt('SELECT nosuch FROM t', 'nosuch'), ['  LINE 1: SELECT nosuch FROM t', `${' '.repeat(10 + 7)}^`]);
  });

  it('moves two columns for each CJK character or emoji before it', () => {
    // "SELECT '" 8, "注文" 4 (two characters, .length 2), "' || " 5.
    assert.deepEqual(caretAt("SELECT '注文' || nosuch", 'nosuch'), ["  LINE 1: SELECT '注文' || nosuch", `${' '.repeat(10 + 8 + 4 + 5)}^`]);
    // The server counts the emoji as one character; JavaScript as two UTF-16 units.
    assert.deepEqual(caretAt("SELECT '🚀', nosuch", 'nosuch'), ["  LINE 1: SELECT '🚀', nosuch", `${' '.repeat(10 + 8 + 2 + 3)}^`]);
  });

  it('keeps a tab as a tab, and counts from the start of the failing line', () => {
    assert.deepEqual(caretAt('SELECT 1;\n\tSELECT nosuch', 'nosuch'), ['  LINE 2: \tSELECT nosuch', `${' '.repeat(10)}\t${' '.repeat(7)}^`]);
  });
});

describe('SQLSTATE', () => {
  it('is five digits or capitals; a Node error code a driver puts in the same field is not shown as one', () => {
    assert.deepEqual(
      ['28P01', '08P01', '57014', 'ECONNREFUSED', 'ENOTFOUND', 'abcde', undefined].map((c) => isSqlstate(c)),
      [true, true, true, false, false, false, false],
    );
    assert.equal(new SyncPgError('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED', undefined).message, 'connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(new SyncPgError('relation "x" does not exist', '42P01', undefined).message, 'relation "x" does not exist (SQLSTATE 42P01)');
    assert.equal(toDatabaseError('db', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).details.sqlstate, undefined);
  });
});
