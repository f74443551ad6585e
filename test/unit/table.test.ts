/**
 * The table renderer pads by the columns a terminal shows, not by `.length`:
 * CJK characters and most emoji take two columns, a combining accent none.
 * Each expectation is written out in full; padding by `.length` would shift
 * every column after a wide cell (the last test shows by how much).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTable } from '../../src/cli/format-plan.js';
import { displayWidth, pad, table } from '../../src/cli/table.js';

describe('displayWidth', () => {
  it('counts terminal columns: two for CJK and emoji, none for a combining accent or a colour code', () => {
    assert.equal(displayWidth('orders'), 6);
    assert.equal(displayWidth('注文'), 4);
    assert.equal(displayWidth('✅'), 2); // one UTF-16 unit, two columns
    assert.equal(displayWidth('👩‍💻'), 2); // a ZWJ sequence of five units
    assert.equal(displayWidth('café'), 4); // e + U+0301
    assert.equal(displayWidth('\u001b[31mred\u001b[39m'), 3);
  });

  it('pads to a width on either side', () => {
    assert.equal(pad('注文', 6), '注文  ');
    assert.equal(pad('注文', 6, 'right'), '  注文');
    assert.equal(pad('toolong', 3), 'toolong');
  });
});

describe('table', () => {
  it('lines up the columns after wide and combining characters', () => {
    const text = table(
      ['name', 'status', 'rows'],
      [
        ['注文', '✅', '12'],
        ['café', 'ok', '3'],
        ['orders', '👩‍💻 review', '1000'],
      ],
    );
    assert.equal(text, ['  name    status     rows', '  注文    ✅         12', '  café    ok         3', '  orders  👩‍💻 review  1000'].join('\n'));
    // Every line puts its third column at the same terminal column.
    const starts = text.split('\n').map((line) => displayWidth(line.slice(0, line.search(/\S+$/))));
    assert.deepEqual(starts, [21, 21, 21, 21]);
  });

  it('right-aligns the columns a plan table marks so, with wide cells', () => {
    assert.deepEqual(
      formatTable({
        title: 'tables',
        columns: [
          { key: 'table', title: 'table' },
          { key: 'rows', title: 'rows', align: 'right' },
        ],
        rows: [
          { table: '顧客', rows: 5 },
          { table: 'orders', rows: 1200 },
        ],
      }),
      ['tables:', '  table   rows', '  顧客       5', '  orders  1200'],
    );
  });
});
