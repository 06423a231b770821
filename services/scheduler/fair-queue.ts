/**
 * Fairness between tenants in front of the scheduler. Creates wait in one queue per tenant and
 * are taken round-robin, one per tenant in turn, so a tenant with thousands waiting does not
 * put its creates ahead of another tenant's one: that one goes into the next group
 * (gather.ts). `Admission` bounds how many creates each tenant, and all tenants together, may
 * have in the scheduler at once; past that a create is refused with 503 OVERLOADED and
 * `Retry-After`, so a flooding tenant is told to wait while a quiet one is still let in.
 */
import { OverloadedError } from "../shared/errors";

/** Seconds a refused caller is told to wait (Retry-After). */
export const RETRY_AFTER_S = 1;

export class FairQueue<T> {
	/** Waiting items per key, in arrival order; a key is here only while it has items. */
	private readonly byKey = new Map<string, T[]>();
	/** The keys in the order they are served next. */
	private readonly turn: string[] = [];
	private count = 0;

	get size(): number {
		return this.count;
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

export interface AdmissionLimits {
	/** Requests in the scheduler at once, all tenants together. */
	total: number;
	/** Requests of one tenant at once. */
	perTenant: number;
}

/** Counts the requests each tenant has in the scheduler, and refuses those past the limits. */
export class Admission {
	private readonly byTenant = new Map<string, number>();
	private total = 0;

	constructor(
		/** What the refusal names (e.g. "the scheduler's creates"). */
		private readonly queue: string,
		private readonly limits: AdmissionLimits
	) {}

	/**
	 * Lets a request of `tenant` in, or throws OverloadedError (503). The returned function
	 * lets it out; calling it twice is harmless.
	 */
	enter(tenant: string): () => void {
		const mine = this.byTenant.get(tenant) ?? 0;
		if (mine >= this.limits.perTenant)
			throw new OverloadedError({
				queue: `${this.queue} of tenant '${tenant}'`,
				limit: this.limits.perTenant,
				retryAfter: RETRY_AFTER_S
			});
		if (this.total >= this.limits.total)
			throw new OverloadedError({
				queue: this.queue,
				limit: this.limits.total,
				retryAfter: RETRY_AFTER_S
			});
		this.byTenant.set(tenant, mine + 1);
		this.total++;
		let left = false;
		return () => {
			if (left) return;
			left = true;
			this.total--;
			const n = (this.byTenant.get(tenant) ?? 1) - 1;
			if (n > 0) this.byTenant.set(tenant, n);
			else this.byTenant.delete(tenant);
		};
	}

	/** Requests of `tenant` in the scheduler now (all tenants' without one). */
	inside(tenant?: string): number {
		return tenant === undefined ? this.total : (this.byTenant.get(tenant) ?? 0);
	}
}
