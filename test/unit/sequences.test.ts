/** Sequence next values, decisions, source/target matching and the Oracle source, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedOracle } from '../../src/db/connections.js';
import { openOracle, OUT_FORMAT_OBJECT, type OracleBinds, type OracleConnection, type OracleConnector } from '../../src/db/oracle.js';
import { DatabaseError } from '../../src/errors.js';
import { inScope, matchSequences, type Pair, type Scope } from '../../src/sequences/match.js';
import {
  decide,
  displayName,
  nextAfterData,
  nextValue,
  sourceNext,
  type DecideOptions,
  type Decision,
  type PgSequence,
  type SequenceState,
  type SourceValue,
} from '../../src/sequences/model.js';
import { globMatcher } from '../../src/runbook/patterns.js';
import { readOracleSequences } from '../../src/sequences/oracle-source.js';

const INT_MAX = 2147483647n;
const BIGINT_MAX = 9223372036854775807n;

let oids = 0;
function seq(schema: string, name: string, over: Partial<Omit<PgSequence, 'schema' | 'name'>> = {}): PgSequence {
  oids += 1;
  return {
    oid: String(16000 + oids),
    schema,
    name,
    type: 'bigint',
    start: 1n,
    increment: 1n,
    min: 1n,
    max: BIGINT_MAX,
    cycle: false,
    ...over,
  };
}

const asc = seq('app', 'asc', { min: 1n, max: 100n });
const ascCycle = seq('app', 'asc_cycle', { min: 1n, max: 100n, cycle: true });
const desc = seq('app', 'desc', { increment: -5n, min: -100n, max: -1n, start: -1n });
const descCycle = seq('app', 'desc_cycle', { increment: -5n, min: -100n, max: -1n, start: -1n, cycle: true });
const int4 = seq('app', 'int4', { type: 'integer', max: INT_MAX });

const st = (lastValue: bigint, isCalled: boolean): SequenceState => ({ lastValue, isCalled });

describe('nextValue', () => {
  const cases: readonly [string, Pick<PgSequence, 'increment' | 'min' | 'max' | 'cycle'>, SequenceState, bigint | null][] = [
    ['is_called false -> last_value', asc, st(41n, false), 41n],
    ['is_called false at max -> last_value', asc, st(100n, false), 100n],
    ['is_called true -> last_value + increment', asc, st(41n, true), 42n],
    ['increment 10', { ...asc, increment: 10n }, st(41n, true), 51n],
    ['reaching max exactly', asc, st(99n, true), 100n],
    ['ascending at max, no cycle -> null', asc, st(100n, true), null],
    ['ascending past max with big step, no cycle -> null', { ...asc, increment: 10n }, st(95n, true), null],
    ['ascending at max, cycle -> min', ascCycle, st(100n, true), 1n],
    ['descending, is_called false', desc, st(-1n, false), -1n],
    ['descending, is_called true', desc, st(-1n, true), -6n],
    ['descending reaching min exactly', desc, st(-95n, true), -100n],
    ['descending at min, no cycle -> null', desc, st(-100n, true), null],
    ['descending past min, no cycle -> null', desc, st(-97n, true), null],
    ['descending at min, cycle -> max', descCycle, st(-100n, true), -1n],
    ['bigint beyond 2^53 keeps precision', seq('a', 'b'), st(9007199254740993n, true), 9007199254740994n],
    ['bigint max, no cycle -> null', seq('a', 'b'), st(BIGINT_MAX, true), null],
  ];
  for (const [title, s, state, expected] of cases) {
    it(title, () => {
      assert.equal(nextValue(s, state), expected);
    });
  }
});

describe('sourceNext', () => {
  it('carries schema, name, next and exact evidence', () => {
    const s = seq('hr', 'emp_seq', { increment: 1n });
    assert.deepEqual(sourceNext(s, st(41n, true)), {
      schema: 'hr',
      name: 'emp_seq',
      next: 42n,
      evidence: 'last_value=41 is_called=true increment=1',
    });
  });

  it('is_called false and a negative increment', () => {
    assert.deepEqual(sourceNext(desc, st(-1n, false)), {
      schema: 'app',
      name: 'desc',
      next: -1n,
      evidence: 'last_value=-1 is_called=false increment=-5',
    });
  });

  it('carries the owner when there is one, and null when exhausted', () => {
    const owner = { schema: 'app', table: 'orders', column: 'id', identity: true };
    const s = seq('app', 'orders_id_seq', { max: 10n, owner });
    const value = sourceNext(s, st(10n, true));
    assert.deepEqual(value, {
      schema: 'app',
      name: 'orders_id_seq',
      next: null,
      owner,
      evidence: 'last_value=10 is_called=true increment=1',
    });
  });

  it('has no owner key at all when the sequence has none', () => {
    assert.equal('owner' in sourceNext(asc, st(1n, true)), false);
  });
});

describe('nextAfterData', () => {
  const cases: readonly [string, PgSequence, bigint | null, bigint | null][] = [
    ['ascending: max + increment', asc, 41n, 42n],
    ['ascending step 10', { ...asc, increment: 10n }, 41n, 51n],
    ['descending: min - |increment|', desc, -41n, -46n],
    ['descending step -1', { ...desc, increment: -1n }, -41n, -42n],
    ['ascending beyond 2^53', seq('a', 'b'), 9007199254740993n, 9007199254740994n],
    ['null (empty table) stays null, ascending', asc, null, null],
    ['null stays null, descending', desc, null, null],
  ];
  for (const [title, s, extreme, expected] of cases) {
    it(title, () => {
      assert.equal(nextAfterData(s, extreme), expected);
    });
  }
});

describe('decide', () => {
  const strict: DecideOptions = { allowDecrease: false, margin: 0n };
  const loose: DecideOptions = { allowDecrease: true, margin: 0n };
  const cases: readonly [string, PgSequence, bigint | null, bigint | null, DecideOptions, Decision][] = [
    ['advance when the source is ahead', asc, 10n, 50n, strict, { action: 'advance', next: 50n }],
    ['unchanged when equal', asc, 50n, 50n, strict, { action: 'unchanged', next: 50n }],
    ['unchanged when equal, even if allowDecrease', asc, 50n, 50n, loose, { action: 'unchanged', next: 50n }],
    [
      'blocked decrease when the source is behind',
      asc,
      60n,
      50n,
      strict,
      {
        action: 'kept-ahead',
        next: 60n,
        reason: 'the target is already at 60; moving it to 50 would hand out values again (allowDecrease: true permits it)',
      },
    ],
    ['decrease when allowDecrease', asc, 60n, 50n, loose, { action: 'decrease', next: 50n }],
    ['ascending margin is added', asc, 10n, 50n, { allowDecrease: false, margin: 10n }, { action: 'advance', next: 60n }],
    ['ascending margin can make equal', asc, 60n, 50n, { allowDecrease: false, margin: 10n }, { action: 'unchanged', next: 60n }],
    ['descending advance (source further down)', desc, -10n, -50n, strict, { action: 'advance', next: -50n }],
    ['descending margin is subtracted', desc, -10n, -50n, { allowDecrease: false, margin: 10n }, { action: 'advance', next: -60n }],
    [
      'descending blocked when the source is above the target',
      desc,
      -50n,
      -10n,
      strict,
      {
        action: 'kept-ahead',
        next: -50n,
        reason: 'the target is already at -50; moving it to -10 would hand out values again (allowDecrease: true permits it)',
      },
    ],
    ['descending decrease when allowed', desc, -50n, -10n, loose, { action: 'decrease', next: -10n }],
    [
      'out of range above an integer sequence',
      int4,
      5n,
      3000000000n,
      strict,
      { action: 'out-of-range', next: 3000000000n, reason: '3000000000 is outside integer sequence bounds [1, 2147483647]' },
    ],
    [
      'out of range only because of the margin',
      int4,
      5n,
      INT_MAX,
      { allowDecrease: false, margin: 1n },
      { action: 'out-of-range', next: INT_MAX + 1n, reason: '2147483648 is outside integer sequence bounds [1, 2147483647]' },
    ],
    ['at the integer max exactly is in range', int4, 5n, INT_MAX, strict, { action: 'advance', next: INT_MAX }],
    ['out of range below min', asc, 5n, 0n, loose, { action: 'out-of-range', next: 0n, reason: '0 is outside bigint sequence bounds [1, 100]' }],
    [
      'descending margin below min is out of range',
      desc,
      -10n,
      -95n,
      { allowDecrease: false, margin: 10n },
      { action: 'out-of-range', next: -105n, reason: '-105 is outside bigint sequence bounds [-100, -1]' },
    ],
    [
      'exhausted source is out of range',
      asc,
      10n,
      null,
      loose,
      { action: 'out-of-range', next: null, reason: 'the source sequence is exhausted (its next nextval would fail)' },
    ],
    ['cycling sequence moving backwards is an advance', ascCycle, 90n, 5n, strict, { action: 'advance', next: 5n }],
    ['cycling descending sequence moving backwards is an advance', descCycle, -90n, -5n, strict, { action: 'advance', next: -5n }],
    [
      'exhausted target (current null) is a blocked decrease',
      asc,
      null,
      50n,
      strict,
      {
        action: 'kept-ahead',
        next: null,
        reason: 'the target is already at its bound; moving it to 50 would hand out values again (allowDecrease: true permits it)',
      },
    ],
    ['exhausted target with allowDecrease is a decrease', asc, null, 50n, loose, { action: 'decrease', next: 50n }],
  ];
  for (const [title, s, current, source, options, expected] of cases) {
    it(title, () => {
      assert.deepEqual(decide(s, current, source, options), expected);
    });
  }
});

describe('displayName', () => {
  const cases: readonly [string, string, string][] = [
    ['public', 'orders_id_seq', 'public.orders_id_seq'],
    ['_x', 'a$1', '_x.a$1'],
    ['App', 'seq', '"App".seq'],
    ['app', 'EMP_SEQ', 'app."EMP_SEQ"'],
    ['my schema', 'my seq', '"my schema"."my seq"'],
    ['app', 'a"b', 'app."a""b"'],
    ['app', 'séq', 'app."séq"'],
    ['app', '1seq', 'app."1seq"'],
    ['app', 'ISEQ$$_7001', 'app."ISEQ$$_7001"'],
    ['app', '', 'app.""'],
  ];
  for (const [schema, name, expected] of cases) {
    it(`${JSON.stringify(schema)} ${JSON.stringify(name)} -> ${expected}`, () => {
      assert.equal(displayName(schema, name), expected);
    });
  }
});

describe('globMatcher', () => {
  const cases: readonly [readonly string[], string, boolean][] = [
    [['app.*'], 'app.orders_id_seq', true],
    [['app.*'], 'app.', true],
    [['app.*'], 'other.orders_id_seq', false],
    [['app.*'], 'xapp.seq', false],
    [['app.*'], 'APP.seq', false],
    [['app.*'], 'app.line\nbreak', true],
    [['app.seq?'], 'app.seq1', true],
    [['app.seq?'], 'app.seq', false],
    [['app.seq?'], 'app.seq12', false],
    [['app.s'], 'appxs', false],
    [['app.s'], 'app.s', true],
    [['a+b'], 'a+b', true],
    [['a+b'], 'aab', false],
    [['f(x)'], 'f(x)', true],
    [['f(x)'], 'fx', false],
    [['a|b'], 'a', false],
    [['a|b'], 'a|b', true],
    [['[ab]'], 'a', false],
    [['[ab]'], '[ab]', true],
    [['x$'], 'x$', true],
    [['^x'], '^x', true],
    [['a{2}'], 'aa', false],
    [['a\\b'], 'a\\b', true],
    [['app.a', 'app.b'], 'app.b', true],
    [['app.a', 'app.b'], 'app.c', false],
    [[], 'anything', false],
  ];
  for (const [patterns, name, expected] of cases) {
    it(`${JSON.stringify(patterns)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
      assert.equal(globMatcher(patterns)(name), expected);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// matchSequences / inScope

const src = (schema: string, name: string, next: bigint | null, owner?: SourceValue['owner']): SourceValue => ({
  schema,
  name,
  next,
  ...(owner !== undefined ? { owner } : {}),
  evidence: `e:${schema}.${name}`,
});

/** A pair reduced to comparable names: target and source as `schema.name`. */
function brief(pairs: readonly Pair[]) {
  return pairs.map((p) => ({
    at: `${p.schema}.${p.name}`,
    target: p.target === undefined ? null : `${p.target.schema}.${p.target.name}`,
    source: p.source === undefined ? null : `${p.source.schema}.${p.source.name}`,
    ...(p.conflict !== undefined ? { conflict: p.conflict } : {}),
  }));
}

describe('matchSequences', () => {
  it('pairs exact names and keeps the objects themselves', () => {
    const t = seq('app', 'orders_id_seq');
    const s = src('app', 'orders_id_seq', 42n);
    const pairs = matchSequences([t], [s], {}, { foldCase: false });
    assert.equal(pairs.length, 1);
    assert.equal(pairs[0]?.target, t);
    assert.equal(pairs[0]?.source, s);
    assert.deepEqual(brief(pairs), [{ at: 'app.orders_id_seq', target: 'app.orders_id_seq', source: 'app.orders_id_seq' }]);
  });

  it('folds Oracle upper case to lower case when foldCase is true', () => {
    const pairs = matchSequences([seq('hr', 'emp_seq')], [src('HR', 'EMP_SEQ', 7n)], {}, { foldCase: true });
    assert.deepEqual(brief(pairs), [{ at: 'hr.emp_seq', target: 'hr.emp_seq', source: 'HR.EMP_SEQ' }]);
  });

  it('prefers the exact quoted name over the folded one', () => {
    const targets = [seq('hr', 'emp_seq'), seq('hr', 'EMP_SEQ')];
    const pairs = matchSequences(targets, [src('HR', 'EMP_SEQ', 7n)], {}, { foldCase: true });
    assert.deepEqual(brief(pairs), [
      { at: 'hr.EMP_SEQ', target: 'hr.EMP_SEQ', source: 'HR.EMP_SEQ' },
      { at: 'hr.emp_seq', target: 'hr.emp_seq', source: null },
    ]);
  });

  it('prefers an exact quoted schema and name over the folded ones', () => {
    const targets = [seq('hr', 'emp_seq'), seq('HR', 'EMP_SEQ')];
    const pairs = matchSequences(targets, [src('HR', 'EMP_SEQ', 7n)], {}, { foldCase: true });
    assert.deepEqual(brief(pairs), [
      { at: 'HR.EMP_SEQ', target: 'HR.EMP_SEQ', source: 'HR.EMP_SEQ' },
      { at: 'hr.emp_seq', target: 'hr.emp_seq', source: null },
    ]);
  });

  it('does not fold when foldCase is false: missing on target, plus the target-only sequence', () => {
    const pairs = matchSequences([seq('hr', 'emp_seq')], [src('HR', 'EMP_SEQ', 7n)], {}, { foldCase: false });
    assert.deepEqual(brief(pairs), [
      { at: 'HR.EMP_SEQ', target: null, source: 'HR.EMP_SEQ' },
      { at: 'hr.emp_seq', target: 'hr.emp_seq', source: null },
    ]);
    assert.equal('target' in (pairs[0] ?? {}), false);
    assert.equal('source' in (pairs[1] ?? {}), false);
  });

  it('matches an owned sequence by table and column when the names differ', () => {
    const target = seq('hr', 'orders_id_seq', { owner: { schema: 'hr', table: 'orders', column: 'id', identity: true } });
    const source = src('HR', 'ISEQ$$_7001', 1001n, { schema: 'HR', table: 'ORDERS', column: 'ID' });
    const pairs = matchSequences([target], [source], {}, { foldCase: true });
    assert.equal(pairs.length, 1);
    assert.equal(pairs[0]?.target, target);
    assert.equal(pairs[0]?.source, source);
    assert.deepEqual(brief(pairs), [{ at: 'hr.orders_id_seq', target: 'hr.orders_id_seq', source: 'HR.ISEQ$$_7001' }]);
  });

  it('does not fold owners when foldCase is false', () => {
    const target = seq('hr', 'orders_id_seq', { owner: { schema: 'hr', table: 'orders', column: 'id', identity: true } });
    const source = src('hr', 'ISEQ$$_7001', 1001n, { schema: 'hr', table: 'ORDERS', column: 'ID' });
    const pairs = matchSequences([target], [source], {}, { foldCase: false });
    assert.deepEqual(brief(pairs), [
      { at: 'hr.ISEQ$$_7001', target: null, source: 'hr.ISEQ$$_7001' },
      { at: 'hr.orders_id_seq', target: 'hr.orders_id_seq', source: null },
    ]);
  });

  it('maps schemas, for names and owners', () => {
    const owned = seq('app', 'orders_id_seq', { owner: { schema: 'app', table: 'orders', column: 'id', identity: true } });
    const named = seq('app', 'emp_seq');
    const sources = [src('HR', 'ISEQ$$_7001', 1001n, { schema: 'HR', table: 'ORDERS', column: 'ID' }), src('HR', 'EMP_SEQ', 7n)];
    const pairs = matchSequences([owned, named], sources, { schemas: { HR: 'app' } }, { foldCase: true });
    assert.deepEqual(brief(pairs), [
      { at: 'app.orders_id_seq', target: 'app.orders_id_seq', source: 'HR.ISEQ$$_7001' },
      { at: 'app.emp_seq', target: 'app.emp_seq', source: 'HR.EMP_SEQ' },
    ]);
  });

  it('a source missing on target is placed in the mapped schema', () => {
    const pairs = matchSequences([], [src('HR', 'NEW_SEQ', 1n)], { schemas: { HR: 'app' } }, { foldCase: true });
    assert.deepEqual(brief(pairs), [{ at: 'app.new_seq', target: null, source: 'HR.NEW_SEQ' }]);
  });

  it('reports a conflict when two sources map to one target', () => {
    const target = seq('app', 'x');
    const pairs = matchSequences([target], [src('a', 'x', 1n), src('b', 'x', 2n)], { schemas: { a: 'app', b: 'app' } }, { foldCase: false });
    assert.deepEqual(brief(pairs), [
      { at: 'app.x', target: 'app.x', source: 'a.x' },
      { at: 'app.x', target: 'app.x', source: 'b.x', conflict: 'both a.x and b.x map to it' },
    ]);
  });

  it('reports a conflict when an owned source and a named source reach the same target', () => {
    const target = seq('hr', 'orders_id_seq', { owner: { schema: 'hr', table: 'orders', column: 'id', identity: true } });
    const sources = [src('HR', 'ISEQ$$_7001', 1001n, { schema: 'HR', table: 'ORDERS', column: 'ID' }), src('HR', 'ORDERS_ID_SEQ', 5n)];
    const pairs = matchSequences([target], sources, {}, { foldCase: true });
    assert.deepEqual(brief(pairs), [
      { at: 'hr.orders_id_seq', target: 'hr.orders_id_seq', source: 'HR.ISEQ$$_7001' },
      { at: 'hr.orders_id_seq', target: 'hr.orders_id_seq', source: 'HR.ORDERS_ID_SEQ', conflict: 'both HR.ISEQ$$_7001 and HR.ORDERS_ID_SEQ map to it' },
    ]);
  });

  it('lists target-only sequences as pairs without a source, after the sourced ones', () => {
    const pairs = matchSequences([seq('app', 'b'), seq('app', 'a')], [src('app', 'a', 1n)], {}, { foldCase: false });
    assert.deepEqual(brief(pairs), [
      { at: 'app.a', target: 'app.a', source: 'app.a' },
      { at: 'app.b', target: 'app.b', source: null },
    ]);
  });

  it('filters by include and exclude on the target schema.name', () => {
    const targets = [seq('app', 'orders_id_seq'), seq('app', 'tmp_seq'), seq('other', 'orders_id_seq')];
    const sources = [src('app', 'orders_id_seq', 1n), src('app', 'tmp_seq', 1n), src('other', 'orders_id_seq', 1n)];
    const pairs = matchSequences(targets, sources, { include: ['app.*'], exclude: ['app.tmp*'] }, { foldCase: false });
    assert.deepEqual(brief(pairs), [{ at: 'app.orders_id_seq', target: 'app.orders_id_seq', source: 'app.orders_id_seq' }]);
  });

  it('include is matched against the target name, not the source name', () => {
    const pairs = matchSequences([seq('hr', 'emp_seq')], [src('HR', 'EMP_SEQ', 1n)], { include: ['hr.emp_seq'] }, { foldCase: true });
    assert.deepEqual(brief(pairs), [{ at: 'hr.emp_seq', target: 'hr.emp_seq', source: 'HR.EMP_SEQ' }]);
  });

  it('with a schema map, skips unmapped source schemas and leaves unmapped target schemas out of scope', () => {
    const targets = [seq('app', 'emp_seq'), seq('other', 'emp_seq'), seq('app', 'only_target')];
    const sources = [src('HR', 'EMP_SEQ', 7n), src('SALES', 'EMP_SEQ', 9n), src('other', 'emp_seq', 3n)];
    const pairs = matchSequences(targets, sources, { schemas: { HR: 'app' } }, { foldCase: true });
    assert.deepEqual(brief(pairs), [
      { at: 'app.emp_seq', target: 'app.emp_seq', source: 'HR.EMP_SEQ' },
      { at: 'app.only_target', target: 'app.only_target', source: null },
    ]);
  });

  it('skips an unmapped source schema even when its name is a mapped target schema', () => {
    const target = seq('app', 'emp_seq');
    const pairs = matchSequences([target], [src('app', 'emp_seq', 7n)], { schemas: { HR: 'app' } }, { foldCase: false });
    assert.deepEqual(brief(pairs), [{ at: 'app.emp_seq', target: 'app.emp_seq', source: null }]);
  });

  it('returns nothing for nothing', () => {
    assert.deepEqual(matchSequences([], [], {}, { foldCase: true }), []);
  });
});

describe('inScope', () => {
  const cases: readonly [string, Scope, string, string, boolean][] = [
    ['empty scope takes everything', {}, 'any', 'thing', true],
    ['empty include list takes everything', { include: [] }, 'any', 'thing', true],
    ['mapped target schema', { schemas: { HR: 'app' } }, 'app', 's', true],
    ['source schema name is not a target schema', { schemas: { HR: 'app' } }, 'HR', 's', false],
    ['unmapped target schema', { schemas: { HR: 'app' } }, 'other', 's', false],
    ['include matches schema.name', { include: ['app.orders_*'] }, 'app', 'orders_id_seq', true],
    ['include does not match', { include: ['app.orders_*'] }, 'app', 'items_id_seq', false],
    ['include matches the whole name only', { include: ['orders_*'] }, 'app', 'orders_id_seq', false],
    ['exclude wins over include', { include: ['app.*'], exclude: ['app.orders_id_seq'] }, 'app', 'orders_id_seq', false],
    ['exclude alone', { exclude: ['*.tmp_*'] }, 'app', 'tmp_1', false],
    ['exclude alone, no match', { exclude: ['*.tmp_*'] }, 'app', 'keep', true],
    ['schema map and include both apply', { schemas: { HR: 'app' }, include: ['*.keep'] }, 'other', 'keep', false],
  ];
  for (const [title, scope, schema, name, expected] of cases) {
    it(title, () => {
      assert.equal(inScope(scope)(schema, name), expected);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Oracle source through an injected connection

const resolved: ResolvedOracle = {
  kind: 'oracle',
  identity: { name: 'ora', kind: 'oracle', target: 'scott@db:1521/ORCL' },
  spec: { connectString: 'db:1521/ORCL', user: 'scott', password: 'tiger' },
  passwordSource: 'password',
  secrets: ['tiger'],
  warnings: [],
};

interface Call {
  readonly sql: string;
  readonly binds: OracleBinds;
  readonly options: { outFormat: number };
}

function fakeOracle(canned: { sequences?: unknown[]; identities?: unknown[]; schema?: unknown[]; fail?: Error }) {
  const calls: Call[] = [];
  let closed = 0;
  const specs: ResolvedOracle['spec'][] = [];
  const connection: OracleConnection = {
    async execute(sql, binds, options) {
      calls.push({ sql, binds, options });
      if (canned.fail !== undefined) throw canned.fail;
      if (sql.includes('all_sequences')) return { rows: canned.sequences ?? [] };
      if (sql.includes('all_tab_identity_columns')) return { rows: canned.identities ?? [] };
      if (sql.includes('SYS_CONTEXT')) return { rows: canned.schema ?? [] };
      throw new Error(`unexpected SQL: ${sql}`);
    },
    async close() {
      closed += 1;
    },
  };
  const connector: OracleConnector = async (spec) => {
    specs.push(spec);
    return connection;
  };
  return { calls, connector, specs, closed: () => closed };
}

const seqRow = (owner: string, name: string, last: string, inc = '1', cache = '20') => ({
  SEQUENCE_OWNER: owner,
  SEQUENCE_NAME: name,
  LAST_NUMBER: last,
  INCREMENT_BY: inc,
  CACHE_SIZE: cache,
});

describe('oracle source', () => {
  it('reads the mapped owners with bind variables and maps rows exactly', async () => {
    const fake = fakeOracle({
      sequences: [
        seqRow('HR', 'EMP_SEQ', '41'),
        seqRow('HR', 'BIG_SEQ', '9007199254740993', '1', '0'),
        seqRow('HR', 'ISEQ$$_7001', '1001'),
        seqRow('HR', 'DOWN_SEQ', '-20', '-5', '20'),
      ],
      identities: [{ OWNER: 'HR', TABLE_NAME: 'ORDERS', COLUMN_NAME: 'ID', SEQUENCE_NAME: 'ISEQ$$_7001' }],
    });
    const session = await openOracle('ora', resolved, fake.connector);
    assert.equal(session.connectionName, 'ora');
    assert.deepEqual(fake.specs, [resolved.spec]);

    const values = await readOracleSequences(session, ['HR']);

    assert.equal(fake.calls.length, 2);
    const [seqCall, identCall] = fake.calls;
    assert.ok(seqCall !== undefined && identCall !== undefined);
    assert.deepEqual(seqCall.binds, { o0: 'HR' });
    assert.deepEqual(seqCall.options, { outFormat: 4002 });
    assert.equal(OUT_FORMAT_OBJECT, 4002);
    assert.match(seqCall.sql, /FROM all_sequences/);
    assert.match(seqCall.sql, /TO_CHAR\(last_number\)/);
    assert.match(seqCall.sql, /WHERE sequence_owner IN \(:o0\)/);
    assert.doesNotMatch(seqCall.sql, /'HR'/);
    assert.deepEqual(identCall.binds, { o0: 'HR' });
    assert.deepEqual(identCall.options, { outFormat: 4002 });
    assert.match(identCall.sql, /FROM all_tab_identity_columns/);
    assert.match(identCall.sql, /WHERE owner IN \(:o0\)/);

    assert.deepEqual(values, [
      { schema: 'HR', name: 'EMP_SEQ', next: 41n, evidence: 'LAST_NUMBER=41 INCREMENT_BY=1 CACHE=20' },
      { schema: 'HR', name: 'BIG_SEQ', next: 9007199254740993n, evidence: 'LAST_NUMBER=9007199254740993 INCREMENT_BY=1 CACHE=0' },
      {
        schema: 'HR',
        name: 'ISEQ$$_7001',
        next: 1001n,
        owner: { schema: 'HR', table: 'ORDERS', column: 'ID' },
        evidence: 'LAST_NUMBER=1001 INCREMENT_BY=1 CACHE=20',
      },
      { schema: 'HR', name: 'DOWN_SEQ', next: -20n, evidence: 'LAST_NUMBER=-20 INCREMENT_BY=-5 CACHE=20' },
    ]);
    // 9007199254740993 is not representable as a double: proves the text path.
    assert.notEqual(values[1]?.next, BigInt(Number('9007199254740993')));
    assert.equal(values.filter((v) => 'owner' in v).length, 1);

    await session.close();
    assert.equal(fake.closed(), 1);
  });

  it('binds several owners as :o0, :o1', async () => {
    const fake = fakeOracle({});
    const session = await openOracle('ora', resolved, fake.connector);
    assert.deepEqual(await readOracleSequences(session, ['HR', 'SALES']), []);
    assert.equal(fake.calls.length, 2);
    for (const call of fake.calls) {
      assert.deepEqual(call.binds, { o0: 'HR', o1: 'SALES' });
      assert.match(call.sql, /IN \(:o0, :o1\)/);
    }
  });

  it('matches identity rows by owner and sequence name, not name alone', async () => {
    const fake = fakeOracle({
      sequences: [seqRow('HR', 'ISEQ$$_1', '5'), seqRow('SALES', 'ISEQ$$_1', '6')],
      identities: [{ OWNER: 'SALES', TABLE_NAME: 'ORDERS', COLUMN_NAME: 'ID', SEQUENCE_NAME: 'ISEQ$$_1' }],
    });
    const session = await openOracle('ora', resolved, fake.connector);
    const values = await readOracleSequences(session, ['HR', 'SALES']);
    assert.deepEqual(
      values.map((v) => [v.schema, v.name, v.owner ?? null]),
      [
        ['HR', 'ISEQ$$_1', null],
        ['SALES', 'ISEQ$$_1', { schema: 'SALES', table: 'ORDERS', column: 'ID' }],
      ],
    );
  });

  it('without mapped owners, reads the current schema first and uses it', async () => {
    const fake = fakeOracle({ schema: [{ SCHEMA: 'SCOTT' }], sequences: [seqRow('SCOTT', 'S1', '3')] });
    const session = await openOracle('ora', resolved, fake.connector);
    const values = await readOracleSequences(session, []);
    assert.equal(fake.calls.length, 3);
    assert.match(fake.calls[0]?.sql ?? '', /SYS_CONTEXT\('USERENV', 'CURRENT_SCHEMA'\)/);
    assert.deepEqual(fake.calls[0]?.binds, {});
    assert.deepEqual(fake.calls[0]?.options, { outFormat: 4002 });
    assert.deepEqual(fake.calls[1]?.binds, { o0: 'SCOTT' });
    assert.match(fake.calls[1]?.sql ?? '', /FROM all_sequences/);
    assert.deepEqual(fake.calls[2]?.binds, { o0: 'SCOTT' });
    assert.deepEqual(values, [{ schema: 'SCOTT', name: 'S1', next: 3n, evidence: 'LAST_NUMBER=3 INCREMENT_BY=1 CACHE=20' }]);
  });

  it('fails plainly when the current schema cannot be read', async () => {
    const fake = fakeOracle({ schema: [] });
    const session = await openOracle('ora', resolved, fake.connector);
    await assert.rejects(readOracleSequences(session, []), { message: 'ora: could not read the current schema' });
    assert.equal(fake.calls.length, 1);
  });

  it('turns a driver error into a DatabaseError naming the connection and the SQL', async () => {
    const fake = fakeOracle({ fail: new Error('ORA-00942: table or view does not exist') });
    const session = await openOracle('ora', resolved, fake.connector);
    let caught: unknown;
    try {
      await readOracleSequences(session, ['HR']);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof DatabaseError, `expected a DatabaseError, got ${String(caught)}`);
    assert.equal(caught.name, 'DatabaseError');
    assert.equal(caught.message, 'ORA-00942: table or view does not exist');
    assert.equal(caught.details.connection, 'ora');
    assert.equal(caught.details.sql, fake.calls[0]?.sql);
    assert.match(caught.details.sql ?? '', /FROM all_sequences/);
    assert.equal(caught.details.sqlstate, undefined);
    assert.equal(fake.calls.length, 1);
  });

  it('a non-Error thrown by the driver still becomes a DatabaseError', async () => {
    const connection: OracleConnection = {
      execute: async () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- what this test is about: a driver that throws a string
        throw 'socket closed';
      },
      close: async () => {
        throw new Error('already closed');
      },
    };
    const session = await openOracle('ora', resolved, async () => connection);
    await assert.rejects(session.query('SELECT 1 FROM dual'), (error: unknown) => {
      assert.ok(error instanceof DatabaseError);
      assert.equal(error.message, 'socket closed');
      assert.deepEqual(error.details, { connection: 'ora', sql: 'SELECT 1 FROM dual' });
      return true;
    });
    // close() swallows the driver's close error
    await session.close();
  });

  it('a connector that throws gives a DatabaseError without the password', async () => {
    const connector: OracleConnector = async () => {
      throw new Error('ORA-01017: invalid credential or not authorized; logon denied');
    };
    let caught: unknown;
    try {
      await openOracle('ora', resolved, connector);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof DatabaseError, `expected a DatabaseError, got ${String(caught)}`);
    assert.ok(caught.message.startsWith('cannot connect to scott@db:1521/ORCL'), caught.message);
    assert.equal(caught.message, 'cannot connect to scott@db:1521/ORCL: ORA-01017: invalid credential or not authorized; logon denied');
    assert.equal(caught.message.includes('tiger'), false);
    assert.deepEqual(caught.details, { connection: 'ora' });
    assert.equal(JSON.stringify(caught.details).includes('tiger'), false);
  });
});
