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
	/** Mutations sent during the window that began at windowStart, and during the one before. */
	current: number;
	previous: number;
	windowStart: number;
}

export class FairShare {
	private readonly tenants = new Map<string, TenantState>();

	constructor(
		private readonly limits: FairShareLimits,
		private readonly now: () => number = Date.now
	) {}

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
		let all = 0;
		for (const other of [...this.tenants.keys()]) all += this.recent(other);
		return this.recent(tenant) * active > all;
	}

	/** Counts a mutation `tenant` sent, before it is let in or refused. */
	note(tenant: string): void {
		const now = this.now();
		const s = this.state(tenant, now);
		s.lastAt = now;
		s.current++;
	}

	/**
	 * Lets a mutation of `tenant` (noted) in, or throws OverloadedError (503) when it has its share in
	 * flight. The returned function lets it out; calling it twice is harmless.
	 */
	enter(tenant: string): () => void {
		const now = this.now();
		const limit = this.share(tenant);
		const s = this.state(tenant, now);
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

	/** The tenant's state, its window counts moved on to `now`. */
	private state(tenant: string, now: number): TenantState {
		let s = this.tenants.get(tenant);
		if (!s) {
			s = { inside: 0, lastAt: now, current: 0, previous: 0, windowStart: now };
			this.tenants.set(tenant, s);
		}
		const windows = Math.floor((now - s.windowStart) / this.limits.windowMs);
		if (windows > 0) {
			s.previous = windows === 1 ? s.current : 0;
			s.current = 0;
			s.windowStart += windows * this.limits.windowMs;
		}
		return s;
	}

	/** Mutations `tenant` sent during the last one to two windows. */
	recent(tenant: string): number {
		if (!this.tenants.has(tenant)) return 0;
		const s = this.state(tenant, this.now());
		return s.current + s.previous;
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
		const mine = this.recent(tenant);
		for (const other of [...this.tenants.keys()])
			if (other !== tenant && this.recent(other) > mine) return false;
		return true;
	}
}
