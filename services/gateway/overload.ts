/**
 * The gateway's side of load shedding. A 503 OVERLOADED (a full queue in a service behind the
 * gateway, or the gateway's own lag) goes out with `Retry-After`, set by `setRetryAfter` from
 * the error's `data.retryAfter`; the gateway's `sendError` calls it for every error answer,
 * because moleculer-web drops a callee's `ctx.meta.$responseHeaders` when the call fails.
 *
 * While the gateway's event loop lags past ISA_SHED_LAG (services/shared/lag.ts), `Shedder`
 * refuses API requests with 503 before they are authenticated, parsed or audited (a shed
 * request did nothing, and recording it would cost a store write at the moment there is no
 * time for one), and `/ready` says "overloaded", so that a load balancer sends traffic to
 * another gateway. `/health` and `/ready` themselves are never shed.
 */
import type { ServerResponse } from "http";
import { ERR_OVERLOADED, OverloadedError } from "../shared/errors";

/** Seconds a client shed for lag is told to wait. */
export const SHED_RETRY_AFTER_S = 1;

/** The Retry-After (whole seconds, at least 1) an error asks for, or null. */
export function retryAfterOf(err: unknown): number | null {
	const e = err as { type?: unknown; data?: { retryAfter?: unknown } } | null;
	if (e?.type !== ERR_OVERLOADED) return null;
	const s = Number(e.data?.retryAfter);
	return Number.isFinite(s) ? Math.max(1, Math.ceil(s)) : null;
}

/** Puts Retry-After on an error answer that is not yet sent, when the error asks for one. */
export function setRetryAfter(res: ServerResponse, err: unknown): void {
	const s = retryAfterOf(err);
	if (s !== null && !res.headersSent) res.setHeader("Retry-After", String(s));
}

export class Shedder {
	constructor(
		/** This process's event-loop lag now (ms): LagMonitor.lag. */
		private readonly lag: () => number,
		/** Lag past which requests are shed (ms); null: never. */
		private readonly threshold: number | null
	) {}

	/** The error to answer instead of serving a request now, or null to serve it. */
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

	/** /ready's check: "ok", or why this gateway sheds now. */
	readiness(): string {
		const refusal = this.refusal();
		return refusal
			? `overloaded: event-loop lag ${refusal.data.lag} ms, past ${this.threshold} ms`
			: "ok";
	}
}
