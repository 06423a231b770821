/**
 * Fairness between tenants in front of the scheduler. Creates wait in one queue per tenant and
 * are taken round-robin, one per tenant in turn, so a tenant with thousands waiting does not
 * put its creates ahead of another tenant's one: that one goes into the next group
 * (gather.ts). How many creates each tenant may have in the scheduler at once is bounded by
 * services/shared/admission.ts.
 */

export class FairQueue<T> {
	/** Waiting items per key, in arrival order; a key is here only while it has items. */
	private readonly byKey = new Map<string, T[]>();
	/** The keys in the order they are served next. */
	private readonly turn: string[] = [];
	private count = 0;

	get size(): number {
		return this.count;
	}

	/** Whether items of `key` wait. */
	has(key: string): boolean {
		return this.byKey.has(key);
	}

	push(key: string, item: T): void {
		const items = this.byKey.get(key);
		if (items) items.push(item);
		else {
			this.byKey.set(key, [item]);
			this.turn.push(key);
		}
		this.count++;
	}

	/**
	 * Takes up to `max` items: one of each waiting key in turn, round after round, each key's
	 * own in arrival order. A key that still has items after this keeps its place in the turn.
	 */
	take(max: number): T[] {
		const out: T[] = [];
		let i = 0;
		while (out.length < max && this.turn.length > 0) {
			if (i >= this.turn.length) i = 0;
			const key = this.turn[i];
			const items = this.byKey.get(key)!;
			out.push(items.shift()!);
			this.count--;
			if (items.length === 0) {
				this.byKey.delete(key);
				this.turn.splice(i, 1);
			} else i++;
		}
		// Whoever was next when `max` was reached is first next time.
		if (i > 0 && i < this.turn.length) this.turn.push(...this.turn.splice(0, i));
		return out;
	}
}
