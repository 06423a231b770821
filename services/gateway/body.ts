/**
 * Checks of a request body that the JSON parser does not make: a body nested deeper than any
 * API document needs is refused before it reaches a service (a deeply nested document once
 * passed validation, was stored, and then broke every list that read it back), and a body
 * without a media type the API reads is refused instead of being dropped unread (the
 * request would otherwise be told that fields it did send are missing).
 */
import type { IncomingMessage } from "http";
import { Errors } from "moleculer";

/** Deepest nesting of objects and arrays a request body may have; no API document needs 10. */
export const MAX_BODY_DEPTH = 64;

/** The media types the API parses: JSON, and YAML for POST /apply. */
const READ_TYPES = /^(application\/(json|yaml|x-yaml)|text\/yaml)\b/i;

/** 400 for a body nested deeper than MAX_BODY_DEPTH. */
export class BodyTooDeepError extends Errors.MoleculerClientError {
	constructor(limit: number) {
		super(`The request body is nested deeper than ${limit} levels.`, 400, "BODY_TOO_DEEP", {
			limit
		});
	}
}

/** 415 for a body without a media type the API reads. */
export class UnsupportedMediaTypeError extends Errors.MoleculerClientError {
	constructor(got: string | undefined) {
		super(
			got
				? `A request body of type '${got}' is not read: send 'Content-Type: application/json'.`
				: "The request has a body but no Content-Type: send 'Content-Type: application/json'.",
			415,
			"UNSUPPORTED_MEDIA_TYPE",
			{ contentType: got ?? null }
		);
	}
}

/** Whether a parsed body nests objects or arrays deeper than `limit`. Iterative: no recursion. */
export function deeperThan(value: unknown, limit: number): boolean {
	const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
	while (stack.length) {
		const { v, depth } = stack.pop()!;
		if (v === null || typeof v !== "object") continue;
		if (depth >= limit) return true;
		for (const child of Object.values(v)) stack.push({ v: child, depth: depth + 1 });
	}
	return false;
}

/** Whether the request carries body bytes (a length above 0, or a chunked body). */
function hasBody(req: IncomingMessage): boolean {
	const length = req.headers["content-length"];
	if (length !== undefined) return Number(length) > 0;
	return req.headers["transfer-encoding"] !== undefined;
}

/** Throws the client error for a body the API must not take; passes everything else. */
export function checkBody(req: IncomingMessage & { body?: unknown }): void {
	if (hasBody(req)) {
		const type = req.headers["content-type"];
		if (!type || !READ_TYPES.test(type)) throw new UnsupportedMediaTypeError(type);
	}
	if (deeperThan(req.body, MAX_BODY_DEPTH)) throw new BodyTooDeepError(MAX_BODY_DEPTH);
}
