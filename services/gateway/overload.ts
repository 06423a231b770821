/**
 * The gateway's side of load shedding. A 503 OVERLOADED (a full queue in a service behind the
 * gateway, or the gateway's own lag) goes out with `Retry-After` from the error's
 * `data.retryAfter` (gateway/errors.ts, for every error answer).
 *
 * `Shedder` admits each authenticated API request by its tenant, before the audit's entry: a
 * tenant has at most ISA_QUEUE_TENANT_MUTATIONS mutations in flight, and while the gateway's
 * event loop lags past ISA_SHED_LAG (services/shared/lag.ts) the tenants with the most
 * requests in flight are refused, so a flooding tenant is cut back while a quiet one is served. A refused request
 * did nothing and is not audited (recording it would cost a store write at the moment there is
 * no time for one). While it lags, `/ready` says "overloaded", so that a load balancer sends
 * traffic to another gateway; `/health` and `/ready` themselves are never shed.
 */
import { Admission } from "../shared/admission";
import { OverloadedError } from "../shared/errors";

/** Seconds a client shed for lag is told to wait. */
export const SHED_RETRY_AFTER_S = 1;

export class Shedder {
	/** Each tenant's API requests in flight through this gateway (counted, not bounded). */
	private readonly requests = new Admission("the gateway's requests", {
		total: Infinity,
		perTenant: Infinity
	});
	/** Each tenant's mutations in flight: bounded, so a flood holds few audit entries. */
	private readonly mutations: Admission;

	constructor(
		/** This process's event-loop lag now (ms): LagMonitor.lag. */
		private readonly lag: () => number,
		/** Lag past which requests are shed (ms); null: never. */
		private readonly threshold: number | null,
		/** Mutations of one tenant in flight at once. */
		tenantMutations: number
	) {
		this.mutations = new Admission("the gateway's mutations", {
			total: Infinity,
			perTenant: tenantMutations
		});
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
	 * the event loop lags, a tenant with no fewer requests in flight than any other is shed:
	 * a flood is cut back to what the node can still serve, and a quieter tenant is still
	 * served. A mutation also needs room in its tenant's bound. Returns the function that lets
	 * the request out (when its response closes).
	 */
	admit(tenant: string, mutation: boolean): () => void {
		const lagging = this.refusal();
		if (lagging && this.requests.inside(tenant) > 0 && this.requests.busiest(tenant))
			throw lagging;
		const leaveMutation = mutation ? this.mutations.enter(tenant) : null;
		const leave = this.requests.enter(tenant);
		return () => {
			leave();
			leaveMutation?.();
		};
	}

	/** /ready's check: "ok", or why this gateway sheds now. */
	readiness(): string {
		const refusal = this.refusal();
		return refusal
			? `overloaded: event-loop lag ${refusal.data.lag} ms, past ${this.threshold} ms`
			: "ok";
	}
}
