/**
 * The one work queue: items in order, never more than the limit at once,
 * each worker with a stable number, and after a failure no new item taken
 * and nothing still running when the caller hears of it; `both` the same
 * for two pieces of work.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { both, inParallel } from '../../src/parallel.js';

describe('inParallel', () => {
  it('returns results in the items order, with at most limit running, and numbers workers 0 to limit - 1', async () => {
    let running = 0;
    let most = 0;
    const workers = new Set<number>();
    const items = Array.from({ length: 20 }, (_, i) => i);
    // Later items finish sooner, so completion order is not the items' order.
    const results = await inParallel(items, 3, async (item, worker) => {
      running++;
      most = Math.max(most, running);
      workers.add(worker);
      await sleep(20 - item);
      running--;
      return item * 2;
    });
    assert.deepEqual(
      results,
      items.map((i) => i * 2),
    );
    assert.equal(most, 3);
    assert.deepEqual([...workers].sort(), [0, 1, 2]);
  });

  it('a worker runs its items one after another', async () => {
    const busy = new Set<number>();
    await inParallel(
      Array.from({ length: 12 }, (_, i) => i),
      4,
      async (_item, worker) => {
        assert.ok(!busy.has(worker), `worker ${worker} was given a second item while busy`);
        busy.add(worker);
        await sleep(1);
        busy.delete(worker);
      },
    );
  });

  it('after a failure takes no new item, and throws the first failure once the items taken have finished', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    await assert.rejects(
      inParallel(
        Array.from({ length: 10 }, (_, i) => i),
        2,
        async (item) => {
          started.push(item);
          if (item === 1) throw new Error('item 1 failed');
          await sleep(30);
          finished.push(item);
        },
      ),
      /item 1 failed/,
    );
    // Item 0 was running when item 1 failed: it finished before the caller heard, and nothing else started.
    assert.deepEqual(started, [0, 1]);
    assert.deepEqual(finished, [0]);
  });

  it('with no items does no work', async () => {
    assert.deepEqual(await inParallel([], 4, () => Promise.reject(new Error('called'))), []);
  });
});

describe('both', () => {
  it('runs the two at once and returns both values', async () => {
    let running = 0;
    let most = 0;
    const work = async <T>(value: T) => {
      running++;
      most = Math.max(most, running);
      await sleep(20);
      running--;
      return value;
    };
    assert.deepEqual(await both(work('a'), work(1)), ['a', 1]);
    assert.equal(most, 2);
  });

  it('throws a failure only after the other piece has finished, and the first one wins', async () => {
    let otherDone = false;
    const slow = sleep(50).then(() => {
      otherDone = true;
      return 'slow';
    });
    await assert.rejects(both(Promise.reject(new Error('fast')), slow), (error: Error) => error.message === 'fast' && otherDone);
    await assert.rejects(both(Promise.reject(new Error('one')), Promise.reject(new Error('two'))), /one/);
    otherDone = false;
    const slowToo = sleep(50).then(() => {
      otherDone = true;
    });
    await assert.rejects(both(slowToo, Promise.reject(new Error('second'))), (error: Error) => error.message === 'second' && otherDone);
  });
});
