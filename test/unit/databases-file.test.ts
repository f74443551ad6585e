/**
 * PgBouncer's [databases] file: a switch edits host, port and dbname of the
 * named entries and nothing else, byte for byte, and the edit reverses exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entryNames, entryTarget, withTargets } from '../../src/pooler/databases-file.js';
import { adminIdent } from '../../src/steps/pgbouncer.js';

const FILE = `; pooled databases
[databases]
shop = host=10.0.0.1 port=5432 dbname=shop password='s3cr et' pool_mode=transaction
billing=host=old.internal dbname=bill
"odd name" = host=x
* = host=fallback

[pgbouncer]
listen_port = 6432
`;

describe('the [databases] file', () => {
  it('reads every entry of the [databases] section and its host, port and dbname (null when absent)', () => {
    assert.deepEqual(entryNames(FILE), ['shop', 'billing', 'odd name', '*']);
    assert.deepEqual(entryTarget(FILE, 'shop'), { host: '10.0.0.1', port: '5432', dbname: 'shop' });
    assert.deepEqual(entryTarget(FILE, 'billing'), { host: 'old.internal', port: null, dbname: 'bill' });
    assert.equal(entryTarget(FILE, 'listen_port'), undefined, 'keys of other sections are not entries');
  });

  it('changes only the keys of the named entries, keeps the password and every other line, and reverses exactly', () => {
    const moved = withTargets(FILE, {
      shop: { host: 'new.internal', port: '6543', dbname: 'shop' },
      billing: { host: 'n2', port: '5433', dbname: null },
    });
    assert.equal(
      moved,
      FILE.replace(
        "shop = host=10.0.0.1 port=5432 dbname=shop password='s3cr et'",
        "shop = host=new.internal port=6543 dbname=shop password='s3cr et'",
      ).replace('billing=host=old.internal dbname=bill', 'billing=host=n2 port=5433'),
    );
    const back = withTargets(moved, {
      shop: { host: '10.0.0.1', port: '5432', dbname: 'shop' },
      billing: { host: 'old.internal', port: null, dbname: 'bill' },
    });
    // The removed dbname comes back at the end of the line: same entry, same values.
    assert.deepEqual(entryTarget(back, 'billing'), { host: 'old.internal', port: null, dbname: 'bill' });
    assert.equal(
      back
        .split('\n')
        .filter((l) => !l.startsWith('billing'))
        .join('\n'),
      FILE.split('\n')
        .filter((l) => !l.startsWith('billing'))
        .join('\n'),
    );
  });

  it("quotes a value that needs it as PgBouncer reads it ('' for a quote, a backslash as it is), and reads it back", () => {
    const text = withTargets(FILE, { '*': { host: 'db', port: null, dbname: "o'hara \\ shop" } });
    assert.match(text, /^\* = host=db dbname='o''hara \\ shop'$/m);
    assert.deepEqual(entryTarget(text, '*'), { host: 'db', port: null, dbname: "o'hara \\ shop" });
    assert.deepEqual(entryTarget(withTargets(FILE, { '*': { host: 'db', port: null, dbname: 'a\\b' } }), '*'), { host: 'db', port: null, dbname: 'a\\b' });
  });

  it('refuses an entry the file does not have', () => {
    assert.throws(() => withTargets(FILE, { nope: { host: 'x', port: null, dbname: null } }), /no entry "nope" in the \[databases\] section/);
  });

  it('admin-console names: bare when PgBouncer reads them as a word, double-quoted otherwise', () => {
    assert.equal(adminIdent('shop_1'), 'shop_1');
    assert.equal(adminIdent('Shop-EU'), '"Shop-EU"');
  });
});
