/**
 * The one work queue: items taken in order by at most `limit` workers at a
 * time. Each worker has a stable number (0 to limit - 1), so a caller can
 * give every worker its own session. Results come back in the items' order.
 * After a failure no worker takes a new item, and the first failure is
 * thrown once the items already taken have finished (nothing of ours still
 * runs on a session when the caller hears of it).
 */
export async function inParallel<T, R>(items: readonly T[], limit: number, work: (item: T, worker: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { readonly error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async (_, worker) => {
      for (let i = next++; i < items.length && failure === undefined; i = next++) {
        try {
          results[i] = await work(items[i] as T, worker);
        } catch (error) {
          failure ??= { error };
        }
      }
    }),
  );
  if (failure !== undefined) throw failure.error;
  return results;
}

/**
 * Two pieces of work at once (each on its own session, say). If either
 * fails, its error is thrown once both have settled, for the same reason as
 * above; the first one's error wins when both fail.
 */
export async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [first, second] = await Promise.allSettled([a, b]);
  if (first.status === 'rejected') throw first.reason;
  if (second.status === 'rejected') throw second.reason;
  return [first.value, second.value];
}
