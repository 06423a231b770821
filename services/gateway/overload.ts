/**
 * The gateway's side of load shedding. A 503 OVERLOADED (a full queue in a service behind the
 * gateway, or the gateway's own lag) goes out with `Retry-After` from the error's
 * `data.retryAfter` (gateway/errors.ts, for every error answer).
 *
 * `Shedder` admits each authenticated API request by its tenant, before the audit's entry: a
 * tenant has at most its fair share of the gateway's mutations in flight (gateway/fair-share.ts:
 * ISA_QUEUE_TENANT_MUTATIONS alone, ISA_QUEUE_MUTATIONS split between the active tenants), and
 * while the gateway's event loop lags past ISA_SHED_LAG (services/shared/lag.ts) the busiest
 * tenants are refused, so a flooding tenant is cut back while a quiet one is served. Before it
 * lags, while the loop is busier than ISA_SHED_BUSY (services/shared/utilization.ts), a tenant
 * sending more mutations than its part while other tenants are active, and at least
 * HOLD_BACK_MIN of them lately, is refused: at full CPU
 * every request waits behind the ones ahead of it, so a flood that fills the CPU is let in only
 * while nobody else needs it (alone it has the node to itself). A refused
 * request did nothing and is not audited (recording it would cost a store write at the moment
 * there is no time for one). While it lags, `/ready` says "overloaded", so that a load balancer
 * sends traffic to another gateway; `/health` and `/ready` themselves are never shed.
 */
import { Admission } from "../shared/admission";
import { FairShare, type FairShareLimits } from "./fair-share";
import { OverloadedError } from "../shared/errors";

/**
 * ms a tenant counts as active after its last mutation: longer than the gap between a quiet
 * tenant's requests (10 a second in the noisy-neighbour benchmark), as long as the Retry-After
 * a flood is told to wait.
 */
export const FAIR_SHARE_WINDOW_MS = 1000;

/**
 * Mutations a tenant sent in the last one to two windows below which it is never held back
 * for a busy loop: a flood sends hundreds a second, while a script or a test that creates a
 * few objects as one tenant after another only looks, for a moment, like more than its part.
 */
export const HOLD_BACK_MIN = 50;

/** Seconds a client shed for lag is told to wait. */
export const SHED_RETRY_AFTER_S = 1;

export class Shedder {
	/** Each tenant's API requests in flight through this gateway (counted, not bounded). */
	private readonly requests = new Admission("the gateway's requests", {
		total: Infinity,
		perTenant: Infinity
	});
	/** Each tenant's mutations in flight: bounded by its fair share. */
	private readonly mutations: FairShare;

	constructor(
		/** This process's event-loop lag now (ms): LagMonitor.lag. */
		private readonly lag: () => number,
		/** Lag past which requests are shed (ms); null: never. */
		private readonly threshold: number | null,
		/** The bounds on mutations in flight (gateway/fair-share.ts). */
		mutations: FairShareLimits,
		/** This process's event-loop utilization now (0 to 1): UtilizationMonitor.utilization. */
		private readonly utilization: () => number = () => 0,
		/** Utilization past which a tenant over its part is held back; null: never. */
		private readonly busyAt: number | null = null,
		now: () => number = Date.now
	) {
		this.mutations = new FairShare(mutations, now);
	}

	/** The error that sheds a request while the event loop lags, or null when it does not. */
	refusal(): OverloadedError | null {
		if (this.threshold === null) return null;
		const lag = this.lag();
		if (lag <= this.threshold) return null;
		return new OverloadedError({
			queue: "the gateway's event loop",
			limit: this.threshold,
			retryAfter: SHED_RETRY_AFTER_S,
			lag: Math.round(lag)
		});
	}

	/**
	 * Lets an authenticated API request of `tenant` in, or throws OverloadedError (503). While
	 * the event loop lags, the busiest tenant is shed: for a mutation, the one that sent the
	 * most mutations lately (with few in flight at a given moment, a flood whose clients wait
	 * out their Retry-After is still the flood); for a read, one with no fewer requests in
	 * flight than any other. A tenant with nothing of the kind in flight is served, so that
	 * none stops altogether. A flood is cut back to what the node can still serve, and a
	 * quieter tenant is still served. A mutation also needs room in its tenant's fair share.
	 * Returns the function that lets the request out (when its response closes).
	 */
	admit(tenant: string, mutation: boolean): () => void {
		const lagging = this.refusal();
		if (mutation) this.mutations.note(tenant);
		const busiest = mutation
			? this.mutations.inside(tenant) > 0 && this.mutations.busiest(tenant)
			: this.requests.inside(tenant) > 0 && this.requests.busiest(tenant);
		if (lagging && busiest) throw lagging;
		if (mutation) this.holdBack(tenant);
		const leaveMutation = mutation ? this.mutations.enter(tenant) : null;
		const leave = this.requests.enter(tenant);
		return () => {
			leave();
			leaveMutation?.();
		};
	}

	/** Refuses a mutation of a tenant over its part while the event loop is busy. */
	private holdBack(tenant: string): void {
		if (this.busyAt === null) return;
		const utilization = this.utilization();
		if (utilization <= this.busyAt) return;
		if (this.mutations.recent(tenant) < HOLD_BACK_MIN || !this.mutations.overPart(tenant))
			return;
		throw new OverloadedError({
			queue: "the gateway's event loop",
			limit: this.busyAt,
			tenant,
			retryAfter: SHED_RETRY_AFTER_S,
			utilization: Math.round(utilization * 100) / 100
		});
	}

	/** /ready's check: "ok", or why this gateway sheds now. */
	readiness(): string {
		const refusal = this.refusal();
		return refusal
			? `overloaded: event-loop lag ${refusal.data.lag} ms, past ${this.threshold} ms`
			: "ok";
	}
}
