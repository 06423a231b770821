/**
 * The project's error classes. Client mistakes are MoleculerClientError subclasses (4xx, never
 * retried); faults that may pass are MoleculerRetryableError subclasses, so that Moleculer's
 * retry policy and circuit breaker see them. Each has a fixed message shape, an UPPER_SNAKE
 * type and a data object, as moleculer-web's own errors do.
 */
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

/** The store did not answer; retrying later may work. */
export class StoreUnavailableError extends Errors.MoleculerRetryableError {
	constructor(reason: string) {
		super(`The store is unavailable: ${reason}`, 503, ERR_STORE_UNAVAILABLE, { reason });
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
}

/**
 * A bounded queue is full (a tenant's creates in the scheduler, the scheduler's queue), or the
 * gateway's event loop lags: the request was refused before it did anything. Retryable: the
 * same request works once the queue drains; `retryAfter` becomes the HTTP `Retry-After`
 * header (services/gateway/overload.ts).
 */
export class OverloadedError extends Errors.MoleculerRetryableError {
	constructor(data: Overload) {
		const what =
			data.lag === undefined
				? `${data.queue} (at most ${data.limit} at once)`
				: `${data.queue} lags ${Math.round(data.lag)} ms, past its limit of ${data.limit} ms`;
		super(
			`Too busy: ${what}; nothing was done. Try again in ${data.retryAfter} s.`,
			503,
			ERR_OVERLOADED,
			{ ...data }
		);
	}
}
