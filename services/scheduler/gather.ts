/**
 * Gathers requests into groups that are handled in one go: the scheduler creates (or deletes)
 * all the workloads of a group in one store transaction, instead of one transaction, and one
 * commit, per request. The first request that finds no group waiting puts one in the queue;
 * the requests that arrive while it waits there are taken into it when it runs, up to `max`,
 * and what is left (or arrives while it runs) forms the next group. So a lone request waits for
 * nothing more than before, and under load groups grow by themselves, to a size one store
 * transaction takes well. Waiting requests are taken round-robin by `keyOf` (their tenant,
 * fair-queue.ts), so one tenant's flood fills no group ahead of another tenant's request.
 */
import { FairQueue } from "./fair-queue";

/** One request of a group. */
export interface Gathered<T, R> {
	item: T;
	/** Position in the group: requests are answered in this order where order matters. */
	index: number;
	resolve(value: R): void;
	reject(err: unknown): void;
}

export class Gatherer<T, R> {
	private readonly pending = new FairQueue<Gathered<T, R>>();
	/** A group is in the queue and has not yet taken its requests. */
	private queued = false;

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
		private readonly max = 1000,
		/** Whose request it is: groups take the waiting ones round-robin by this key. */
		private readonly keyOf: (item: T) => string = () => ""
	) {}

	/** Whether requests of this key wait for the next group. */
	hasWaiting(key: string): boolean {
		return this.pending.has(key);
	}

	add(item: T): Promise<R> {
		return new Promise<R>((resolve, reject) => {
			this.pending.push(this.keyOf(item), { item, index: 0, resolve, reject });
			if (!this.queued) this.enqueue();
		});
	}

	/** Queues the next group: it takes its requests when it runs. */
	private enqueue(): void {
		this.queued = true;
		let group: Gathered<T, R>[] = [];
		this.queue(async () => {
			group = this.pending.take(this.max);
			group.forEach((g, index) => (g.index = index));
			this.queued = false;
			if (this.pending.size > 0) this.enqueue();
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
	}
}
