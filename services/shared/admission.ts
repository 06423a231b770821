/**
 * Per-tenant bounds on work in flight. `Admission` counts the requests each tenant, and all
 * tenants together, have inside (the scheduler's creates, the gateway's mutations) and refuses
 * one past the limits with 503 OVERLOADED and `Retry-After`, before it does anything: a
 * flooding tenant is told to wait while a quiet one is still let in.
 */
import { OverloadedError } from "./errors";

/** Seconds a refused caller is told to wait (Retry-After). */
export const RETRY_AFTER_S = 1;

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

	/** Whether no other tenant has more requests inside than `tenant` (ties count as busiest). */
	busiest(tenant: string): boolean {
		const mine = this.byTenant.get(tenant) ?? 0;
		for (const [other, n] of this.byTenant) if (other !== tenant && n > mine) return false;
		return true;
	}

	/** Requests of `tenant` inside now (all tenants' without one). */
	inside(tenant?: string): number {
		return tenant === undefined ? this.total : (this.byTenant.get(tenant) ?? 0);
	}
}
