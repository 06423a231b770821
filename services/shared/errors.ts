/**
 * The project's error classes. Client mistakes are MoleculerClientError subclasses (4xx, never
 * retried); faults that may pass are MoleculerRetryableError subclasses, so that Moleculer's
 * retry policy and circuit breaker see them. Each has a fixed message shape, an UPPER_SNAKE
 * type and a data object, as moleculer-web's own errors do.
 */
import { inspect } from "util";
import { Errors } from "moleculer";

export const ERR_NOT_FOUND = "NOT_FOUND";
export const ERR_CONFLICT = "CONFLICT";
export const ERR_FORBIDDEN = "FORBIDDEN";
export const ERR_INVALID = "INVALID_INPUT";
export const ERR_STORE_UNAVAILABLE = "STORE_UNAVAILABLE";

export class NotFoundError extends Errors.MoleculerClientError {
	constructor(kind: string, id: string) {
		super(`${kind} '${id}' not found.`, 404, ERR_NOT_FOUND, { kind, id });
	}
}

export class ConflictError extends Errors.MoleculerClientError {
	constructor(message: string, data: Record<string, unknown> = {}) {
		super(message, 409, ERR_CONFLICT, data);
	}
}

export class ForbiddenError extends Errors.MoleculerClientError {
	constructor(message: string, data: Record<string, unknown> = {}) {
		super(message, 403, ERR_FORBIDDEN, data);
	}
}

/** Input that passed the schema but makes no sense (a size of "12Zb", a bad label). */
export class InvalidInputError extends Errors.MoleculerClientError {
	constructor(message: string, data: Record<string, unknown> = {}) {
		super(message, 422, ERR_INVALID, data);
	}
}

/**
 * A node would start with a NODEID that a live node holds (its lease, services/nodes/lease.ts):
 * it refuses to start, and names the holder, so that the established node is left alone.
 */
export class NodeIdTakenError extends Errors.MoleculerClientError {
	constructor(nodeID: string, holder: { hostname: string; pid: number; startedAt: number }) {
		super(
			`NODEID '${nodeID}' is held by a live node (hostname ${holder.hostname}, pid ` +
				`${holder.pid}, since ${new Date(holder.startedAt).toISOString()}). Give this ` +
				"node another NODEID, or stop that node first.",
			409,
			"NODE_ID_TAKEN",
			{ nodeID, ...holder }
		);
	}
}

export const ERR_PRINCIPAL_UNVERIFIED = "PRINCIPAL_UNVERIFIED";

/**
 * A request from another node without a valid proof of its caller (services/shared/signed-
 * principal.ts): unsigned, expired, or not matching its sender, action or user. Not retried: the
 * calling node lacks the cluster key, or is not who it says.
 */
export class PrincipalUnverifiedError extends Errors.MoleculerClientError {
	constructor(action: string, sender: string, reason: string) {
		super(
			`The call to '${action}' from node '${sender}' carries no valid proof of its caller ` +
				`(${reason}); only nodes that hold the cluster key (ISA_CLUSTER_KEY) may call it.`,
			401,
			ERR_PRINCIPAL_UNVERIFIED,
			{ action, sender, reason }
		);
	}
}

/**
 * Why a node could not start, with what to do about it: printed as one line, and the exit
 * status a supervisor sees (bin/exit-codes.ts). Moleculer logs a failed start with the error
 * (`inspect`): the message is all there is to say, a stack would only hide it.
 */
export class StartupError extends Errors.MoleculerError {
	[inspect.custom](): string {
		return `${this.name}: ${this.message}`;
	}
}

const LISTEN_FIXES: Record<string, string> = {
	EADDRINUSE: "is in use (EADDRINUSE); stop what holds it or set PORT",
	EACCES: "may not be bound by this user (EACCES); use a port above 1023 or set PORT",
	EADDRNOTAVAIL: "is not an address of this host (EADDRNOTAVAIL); fix HOST"
};

/** The gateway could not listen on HOST:PORT. */
export class ListenError extends StartupError {
	constructor(host: string, port: number, code: string) {
		super(
			`port ${port} on ${host} ${LISTEN_FIXES[code] ?? `cannot be listened on (${code}); fix HOST or PORT`}.`,
			500,
			code === "EADDRINUSE" ? "PORT_IN_USE" : "LISTEN_FAILED",
			{ host, port, code }
		);
	}
}

/** The transporter did not answer within ISA_TRANSPORTER_TIMEOUT at start. */
export class TransporterUnreachableError extends StartupError {
	constructor(url: string, reason: string, waited: string) {
		super(
			`cannot reach the transporter ${url} (${reason}, waited ${waited}); start it, fix ` +
				"TRANSPORTER, or wait longer with ISA_TRANSPORTER_TIMEOUT.",
			503,
			"TRANSPORTER_UNREACHABLE",
			{ url, reason }
		);
	}
}

/**
 * The store did not answer, or answered "not now" (Redis LOADING, BUSY, MASTERDOWN: then
 * `data.reply` names the reply); retrying later may work. `data.circuit: "open"` when it was
 * refused at once because the store failed just before (services/shared/store/fail-fast.ts).
 */
export class StoreUnavailableError extends Errors.MoleculerRetryableError {
	constructor(reason: string, data: Record<string, unknown> = {}) {
		super(`The store is unavailable: ${reason}`, 503, ERR_STORE_UNAVAILABLE, {
			reason,
			...data
		});
	}
}

export const ERR_STORE_REFUSED = "STORE_REFUSED";

/**
 * The store answered but refused a write (Redis out of memory at `maxmemory`, or a read-only
 * replica): nothing was written. Reads still work. Not retryable: a retry a moment later meets
 * the same refusal, only an operator's fix (memory, the primary's address) helps.
 */
export class StoreRefusedError extends Errors.MoleculerError {
	constructor(reason: string, reply: string) {
		super(`The store refused the write: ${reason}`, 503, ERR_STORE_REFUSED, {
			reason,
			reply
		});
	}
}

export const ERR_NODE_DOWN = "NODE_DOWN";

/**
 * What was asked needs a node the inventory knows is down (a replica's logs on it): answered
 * at once instead of waiting for the request's timeout. Not retryable: a retry a moment later
 * meets the same down node; the client may ask again once the node is back.
 */
export class NodeDownError extends Errors.MoleculerError {
	constructor(nodes: string[], what: string) {
		super(
			`${nodes.length === 1 ? `Node '${nodes[0]}' is` : `Nodes ${nodes.map(n => `'${n}'`).join(", ")} are`} down: ${what}.`,
			503,
			ERR_NODE_DOWN,
			{ nodes }
		);
	}
}

/**
 * The audit record of a mutation could not be made durable, so the mutation was refused and
 * nothing changed (the gateway fails closed).
 */
export class AuditUnavailableError extends Errors.MoleculerRetryableError {
	constructor(reason: string) {
		super(
			"The audit log is unavailable, so the change was refused; nothing changed. Try again.",
			503,
			"AUDIT_UNAVAILABLE",
			{ reason }
		);
	}
}

/** A tenant's quota would be exceeded; nothing was reserved. */
export class QuotaExceededError extends Errors.MoleculerClientError {
	constructor(message: string, data: Record<string, unknown>) {
		super(message, 403, "QUOTA_EXCEEDED", data);
	}
}

export const ERR_COMMAND_NOT_ALLOWED = "COMMAND_NOT_ALLOWED";
export const ERR_MODULE_NOT_ALLOWED = "MODULE_NOT_ALLOWED";
export const ERR_MODULE_NOT_FOUND = "MODULE_NOT_FOUND";

/** A process replica's command is not in the node's ISA_ALLOWED_COMMANDS. */
export class CommandNotAllowedError extends Errors.MoleculerClientError {
	constructor(command: string, nodeID: string) {
		super(
			`Command '${command}' is not allowed on node '${nodeID}'. To allow it, ` +
				`add it to ISA_ALLOWED_COMMANDS on node ${nodeID}, e.g. ISA_ALLOWED_COMMANDS=${command} ` +
				"(comma separated executable names, paths or globs such as /opt/bin/*).",
			403,
			ERR_COMMAND_NOT_ALLOWED,
			{ command, nodeID }
		);
	}
}

/** A service replica's module name is absolute, has `..` or leaves the service directories. */
export class ModuleNotAllowedError extends Errors.MoleculerClientError {
	constructor(module: string, dirs: string[]) {
		super(
			`Service module '${module}' is not allowed: it must be a relative name inside the ` +
				`service directories (${dirs.join(", ")}), without '..'.`,
			403,
			ERR_MODULE_NOT_ALLOWED,
			{ module, dirs }
		);
	}
}

/** No service directory of the node holds the replica's module. */
export class ModuleNotFoundError extends Errors.MoleculerClientError {
	constructor(module: string, dirs: string[], extensions: string[]) {
		super(
			`Service module '${module}' not found in ${dirs.join(", ")} ` +
				`(tried ${extensions.map(ext => module + ext).join(", ")}; set ISA_SERVICE_DIRS).`,
			404,
			ERR_MODULE_NOT_FOUND,
			{ module, dirs }
		);
	}
}

/** Nothing can serve the request right now (no healthy endpoint, no node with the action). */
export class ServiceUnavailableError extends Errors.MoleculerRetryableError {
	constructor(message: string, data: Record<string, unknown>) {
		super(message, 503, "SERVICE_UNAVAILABLE", data);
	}
}

export const ERR_SERVICE_NOT_AVAILABLE = "SERVICE_NOT_AVAILABLE";

/**
 * No node can take a call of the action now: no node offers it, or the broker's circuit breaker
 * is open on every node that does (services/gateway/errors.ts says which). Moleculer's own
 * ServiceNotFoundError and ServiceNotAvailableError say 404, as if the route did not exist.
 */
export class ActionUnavailableError extends Errors.MoleculerRetryableError {
	constructor(message: string, data: { action: string } & Record<string, unknown>) {
		super(message, 503, ERR_SERVICE_NOT_AVAILABLE, data);
	}
}

export const ERR_STORE_IDENTITY_MISMATCH = "STORE_IDENTITY_MISMATCH";

/**
 * The store is not the one this cluster knows (restarted empty, an old backup, another
 * cluster's): the control services are read-only until an operator adopts it. Not retryable:
 * only the adoption (services/shared/store/identity.ts) makes the same request work.
 */
export class StoreIdentityMismatchError extends Errors.MoleculerError {
	constructor(message: string, data: Record<string, unknown>) {
		super(message, 503, ERR_STORE_IDENTITY_MISMATCH, data);
	}
}

export const ERR_OVERLOADED = "OVERLOADED";

/** What an OverloadedError carries: the queue, its limit, and seconds to wait. */
export interface Overload {
	queue: string;
	limit: number;
	/** Seconds: the HTTP `Retry-After` header. */
	retryAfter: number;
	/** When the bound is the event loop's lag: the lag measured (ms; `limit` is ms too). */
	lag?: number;
	/** When the bound is the event loop's utilization: the utilization (0 to 1, as `limit`). */
	utilization?: number;
	/** When one tenant is held back: which. */
	tenant?: string;
}

function overloadText(data: Overload): string {
	if (data.lag !== undefined)
		return `${data.queue} lags ${Math.round(data.lag)} ms, past its limit of ${data.limit} ms`;
	if (data.utilization !== undefined) {
		const pct = (share: number) => `${Math.round(share * 100)}%`;
		return (
			`${data.queue} is ${pct(data.utilization)} busy, past ${pct(data.limit)}, and tenant ` +
			`'${data.tenant}' sends more than its part while other tenants are active`
		);
	}
	return `${data.queue} (at most ${data.limit} at once)`;
}

/**
 * A bounded queue is full (a tenant's creates in the scheduler, the scheduler's queue), or the
 * gateway's event loop lags: the request was refused before it did anything. Retryable: the
 * same request works once the queue drains; `retryAfter` becomes the HTTP `Retry-After`
 * header (services/gateway/overload.ts).
 */
export class OverloadedError extends Errors.MoleculerRetryableError {
	constructor(data: Overload) {
		super(
			`Too busy: ${overloadText(data)}; nothing was done. Try again in ${data.retryAfter} s.`,
			503,
			ERR_OVERLOADED,
			{ ...data }
		);
	}
}

export const ERR_RATE_LIMITED = "RATE_LIMITED";

/** What a RateLimitedError carries: whose budget ran out, its size, and seconds to wait. */
export interface RateLimit {
	/** Whose requests are counted: a tenant's, a token subject's, or a source address's. */
	scope: "tenant" | "subject" | "address";
	/** The tenant, subject or address. */
	key: string;
	/** What is counted: reads, writes, or failed authentications. */
	kind: "reads" | "writes" | "authentication failures";
	/** How many fit in one window. */
	limit: number;
	/** The window, in seconds. */
	window: number;
	/** Seconds until the window ends: the HTTP `Retry-After` header. */
	retryAfter: number;
}

/**
 * A tenant, a token or an address sent more requests than its rate limit lets through in one
 * window (services/gateway/rate-limits.ts): nothing was done. A client error (429): the same
 * request works after `retryAfter` seconds, but retrying sooner only meets the same limit.
 */
export class RateLimitedError extends Errors.MoleculerClientError {
	constructor(data: RateLimit) {
		const whose =
			data.scope === "address" ? `address ${data.key}` : `${data.scope} '${data.key}'`;
		super(
			`Rate limit reached: ${whose} may make ${data.limit} ${data.kind} per ${data.window === 1 ? "second" : `${data.window} s`}; nothing was done. Try again in ${data.retryAfter} s.`,
			429,
			ERR_RATE_LIMITED,
			{ ...data }
		);
	}
}
