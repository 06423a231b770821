/**
 * Gathers requests into groups that are handled in one go: the scheduler creates (or deletes)
 * all the workloads of a group in one store transaction, instead of one transaction, and one
 * commit, per request. The first request of a group puts the group in a queue, and the
 * requests that arrive while it waits there join it, up to `max`; those that arrive once it
 * runs (or find it full) form the next group. So a lone request waits for nothing more than
 * before, and under load groups grow by themselves, to a size one store transaction takes well.
 */

/** One request of a group. */
export interface Gathered<T, R> {
	item: T;
	/** Position in the group: requests are answered in this order where order matters. */
	index: number;
	resolve(value: R): void;
	reject(err: unknown): void;
}

export class Gatherer<T, R> {
	private waiting: Gathered<T, R>[] | null = null;

	constructor(
		/** Runs a task after those queued before it (the scheduler's serial queue). */
		private readonly queue: (task: () => Promise<void>) => Promise<void>,
		/**
		 * Handles a group of two or more in one go: settles what it can and resolves to the
		 * requests it leaves to `alone`, in order.
		 */
		private readonly together: (group: Gathered<T, R>[]) => Promise<Gathered<T, R>[]>,
		/** Handles one request by itself. */
		private readonly alone: (item: T) => Promise<R>,
		/** Most requests in one group. */
		private readonly max = 1000
	) {}

	add(item: T): Promise<R> {
		return new Promise<R>((resolve, reject) => {
			if (this.waiting && this.waiting.length < this.max) {
				this.waiting.push({ item, index: this.waiting.length, resolve, reject });
				return;
			}
			const group: Gathered<T, R>[] = [{ item, index: 0, resolve, reject }];
			this.waiting = group;
			this.queue(async () => {
				if (this.waiting === group) this.waiting = null;
				const left = group.length > 1 ? await this.together(group) : group;
				for (const g of left) {
					try {
						g.resolve(await this.alone(g.item));
					} catch (err) {
						g.reject(err);
					}
				}
			}).catch((err: unknown) => {
				// Settling twice is a no-op: only the requests `together` left get the error.
				for (const g of group) g.reject(err);
			});
		});
	}
}
