/**
 * A gateway's mutations, shared fairly between the tenants that are active. A tenant alone may
 * have its own bound in flight (ISA_QUEUE_TENANT_MUTATIONS); while other tenants are active the
 * gateway's budget (ISA_QUEUE_MUTATIONS) is split between them, at least MIN_SHARE each, so a
 * flooding tenant holds fewer of the node's CPU and audit commits while a quiet one is served.
 *
 * Only a tenant that sent more than its fair part of the mutations lately (more than the
 * average of the active tenants) is held to its share; the others may go up to their own bound.
 * A quiet tenant's requests pile up while the node stalls (a reconcile, a GC), and it would be
 * refused for a stall it did not cause.
 *
 * "Active" is not only "has a request in flight": a quiet tenant's request is inside for a few
 * ms, and a flood refilled to its full bound in between would be in front of the next one. A
 * tenant stays active for `windowMs` after it last sent a mutation.
 *
 * Mutations are counted as sent (`note`), refused or not: a flood cut back to its share, or shed
 * for lag, still sends the most. The counts of the last window tell who is held to its share,
 * and who is shed while the event loop lags (`busiest`): by what a tenant sent lately, not by
 * what it has inside at the moment, since a flood's clients waiting out their Retry-After have
 * nothing inside then.
 */
import { OverloadedError } from "../shared/errors";
import { RETRY_AFTER_S } from "../shared/admission";
import { RecentCounts } from "../shared/recent-counts";

/** Mutations in flight one active tenant is always allowed. */
export const MIN_SHARE = 1;

export interface FairShareLimits {
	/** Mutations in flight through the gateway, split between the active tenants. */
	budget: number;
	/** Mutations in flight of one tenant, alone or not. */
	perTenant: number;
	/** ms a tenant stays active after it last sent a mutation. */
	windowMs: number;
}

interface TenantState {
	inside: number;
	/** When it last sent a mutation (ms). */
	lastAt: number;
}

export class FairShare {
	private readonly tenants = new Map<string, TenantState>();
	/** Mutations each tenant sent during its last one to two windows. */
	private readonly sent: RecentCounts;

	constructor(
		private readonly limits: FairShareLimits,
		private readonly now: () => number = Date.now
	) {
		this.sent = new RecentCounts(limits.windowMs, now);
	}

	/** Tenants active now, `tenant` counted whether it is or not. */
	private active(tenant: string, now: number): number {
		let n = 1;
		for (const [other, s] of this.tenants) {
			if (other === tenant) continue;
			if (s.inside > 0 || now - s.lastAt < this.limits.windowMs) n++;
			// Kept while its counts are recent: a flood whose clients all wait out their
			// Retry-After at once is still the busiest when they come back.
			else if (now - s.lastAt >= 2 * this.limits.windowMs) this.tenants.delete(other);
		}
		return n;
	}

	/** How many mutations `tenant` may have in flight now. */
	share(tenant: string): number {
		const active = this.active(tenant, this.now());
		if (active === 1 || !this.overFairPart(tenant, active)) return this.limits.perTenant;
		const fair = Math.floor(this.limits.budget / active);
		return Math.min(this.limits.perTenant, Math.max(MIN_SHARE, fair));
	}

	/**
	 * Whether `tenant` sends more than its part while others are active: the one held back
	 * first when the node is busy (gateway/overload.ts).
	 */
	overPart(tenant: string): boolean {
		const active = this.active(tenant, this.now());
		return active > 1 && this.overFairPart(tenant, active);
	}

	/** Whether `tenant` sent more mutations lately than the active tenants' average. */
	private overFairPart(tenant: string, active: number): boolean {
		return this.recent(tenant) * active > this.sent.total();
	}

	/** Counts a mutation `tenant` sent, before it is let in or refused. */
	note(tenant: string): void {
		this.state(tenant).lastAt = this.now();
		this.sent.add(tenant);
	}

	/**
	 * Lets a mutation of `tenant` (noted) in, or throws OverloadedError (503) when it has its share in
	 * flight. The returned function lets it out; calling it twice is harmless.
	 */
	enter(tenant: string): () => void {
		const limit = this.share(tenant);
		const s = this.state(tenant);
		if (s.inside >= limit)
			throw new OverloadedError({
				queue: `the gateway's mutations of tenant '${tenant}'`,
				limit,
				retryAfter: RETRY_AFTER_S
			});
		s.inside++;
		let left = false;
		return () => {
			if (left) return;
			left = true;
			s.inside--;
		};
	}

	private state(tenant: string): TenantState {
		let s = this.tenants.get(tenant);
		if (!s) {
			s = { inside: 0, lastAt: this.now() };
			this.tenants.set(tenant, s);
		}
		return s;
	}

	/** Mutations `tenant` sent during the last one to two windows. */
	recent(tenant: string): number {
		return this.sent.count(tenant);
	}

	/** Mutations of `tenant` in flight now. */
	inside(tenant: string): number {
		return this.tenants.get(tenant)?.inside ?? 0;
	}

	/**
	 * Whether `tenant` sent lately no fewer mutations than any other tenant (ties count as
	 * busiest): the one to shed first while the node lags.
	 */
	busiest(tenant: string): boolean {
		return this.sent.busiestOther(tenant) <= this.recent(tenant);
	}
}
