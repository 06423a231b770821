/**
 * What the client is told when a request fails: the one place where an error becomes an HTTP
 * answer's status, body and Retry-After. An error keeps its class, code, type, message and data
 * from the callee to the client, with two exceptions, both Moleculer's and moleculer-web's way of
 * saying "nobody can take this call now", which they put as 404 (as if the route did not exist)
 * or as a bare "Service unavailable":
 *
 * - Moleculer's ServiceNotFoundError / ServiceNotAvailableError about an action (no node offers
 *   it; or the broker's circuit breaker is open on every node that does): a call the API routes
 *   to, or one a service makes on the way;
 * - moleculer-web's ServiceUnavailableError, untyped, when the route's own action has no node.
 *
 * Both become ActionUnavailableError (services/shared/availability.ts): 503 SERVICE_NOT_AVAILABLE
 * naming the action and saying why.
 * moleculer-web's own 4xx (401, 404 of an unknown route, 413, 429…) stay as they are; it refuses
 * actions that are not published with ServiceNotFoundError too, which this gateway's routes never
 * meet: they name published actions only (`mappingPolicy: "restrict"`).
 */
import type { IncomingMessage, ServerResponse } from "http";
import type { ServiceBroker } from "moleculer";
import { actionUnavailableNow } from "../shared/availability";

interface ErrorLike {
	name?: unknown;
	code?: unknown;
	type?: unknown;
	retryable?: unknown;
	data?: unknown;
}

/** Moleculer's "no endpoint for the action" errors (404, retryable). */
const NO_ENDPOINT = new Set(["ServiceNotFoundError", "ServiceNotAvailableError"]);

/** Seconds a client should wait before it tries again, per 503 type, unless the error says. */
const RETRY_AFTER: Record<string, number> = {
	STORE_UNAVAILABLE: 2,
	SERVICE_NOT_AVAILABLE: 5
};

function dataOf(err: ErrorLike): Record<string, unknown> {
	return err.data && typeof err.data === "object" ? (err.data as Record<string, unknown>) : {};
}

/**
 * The action that nobody can take, if `err` says so: the action in Moleculer's error, or the
 * route's own (`routeAction`) for moleculer-web's untyped 503.
 */
export function unavailableAction(err: unknown, routeAction: string | undefined): string | null {
	if (!err || typeof err !== "object") return null;
	const e = err as ErrorLike;
	const action = dataOf(e).action;
	if (typeof e.name === "string" && NO_ENDPOINT.has(e.name) && typeof action === "string")
		return action;
	if (e.name === "ServiceUnavailableError" && e.code === 503 && !e.type && routeAction)
		return routeAction;
	return null;
}

/**
 * Seconds for a Retry-After header: on a 429 (a rate limit, which says when its window ends) and
 * on a 503 that a retry can help (a retryable one), the error's own `data.retryAfter` when it
 * has one.
 */
export function retryAfterSeconds(err: unknown): number | null {
	if (!err || typeof err !== "object") return null;
	const e = err as ErrorLike;
	const own = dataOf(e).retryAfter;
	const given =
		typeof own === "number" && Number.isFinite(own) && own > 0 ? Math.ceil(own) : null;
	if (e.code === 429) return given ?? 1;
	if (e.code !== 503 || e.retryable !== true) return null;
	return given ?? (typeof e.type === "string" ? RETRY_AFTER[e.type] : undefined) ?? 1;
}

/** The error as the client gets it (see the module's comment). */
export function clientError(
	broker: ServiceBroker,
	err: unknown,
	routeAction: string | undefined
): unknown {
	const action = unavailableAction(err, routeAction);
	return action ? actionUnavailableNow(broker, action) : err;
}

/** The part of the gateway that answers an error (moleculer-web's service). */
export interface ErrorAnswerer {
	broker: ServiceBroker;
	logger: { warn(...args: unknown[]): void; error(...args: unknown[]): void };
	settings: { log4XXResponses?: boolean };
	sendError(req: unknown, res: unknown, err: unknown): void;
}

/**
 * The gateway's `errorHandler` (moleculer-web's, which every failed request reaches): the error
 * as the client gets it, Retry-After on a 429 and on a 503 that a retry can help, one log line for a 503 (a
 * dependency's state, not a fault of the gateway) and moleculer-web's stack for other 5xx.
 */
export function answerError(
	host: ErrorAnswerer,
	req: IncomingMessage & { $alias?: { action?: string | null }; originalUrl?: string },
	res: ServerResponse,
	err: unknown
): void {
	const answer = clientError(host.broker, err, req.$alias?.action ?? undefined) as ErrorLike &
		Partial<Error>;
	const seconds = retryAfterSeconds(answer);
	if (seconds !== null && !res.headersSent && res.getHeader("Retry-After") === undefined)
		res.setHeader("Retry-After", String(seconds));
	const code = typeof answer?.code === "number" ? answer.code : 500;
	if (code === 503) {
		// The path only: a query may hold a token (the event stream's ?token=).
		const path = (req.originalUrl ?? req.url ?? "").split("?")[0];
		host.logger.warn(
			`${req.method} ${path}: 503 ${String(answer.type ?? "")} ${answer.message}`
		);
	} else if (host.settings.log4XXResponses || code < 400 || code >= 500)
		host.logger.error(
			"   Request error!",
			answer?.name,
			":",
			answer?.message,
			"\n",
			answer?.stack
		);
	host.sendError(req, res, answer);
}
