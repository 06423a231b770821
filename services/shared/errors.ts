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

/** The store did not answer; retrying later may work. */
export class StoreUnavailableError extends Errors.MoleculerRetryableError {
	constructor(reason: string) {
		super(`The store is unavailable: ${reason}`, 503, ERR_STORE_UNAVAILABLE, { reason });
	}
}
