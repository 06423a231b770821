/**
 * Checks of a request body that the JSON parser does not make: a body nested deeper than any
 * API document needs is refused before it reaches a service (a deeply nested document once
 * passed validation, was stored, and then broke every list that read it back), and a body
 * without a media type the API reads is refused instead of being dropped unread (the
 * request would otherwise be told that fields it did send are missing).
 */
import type { IncomingMessage, ServerResponse } from "http";
import { Errors } from "moleculer";
import { deeperThan } from "../shared/depth";

export { deeperThan };

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

/** Content-Encodings the body parsers undo (body-parser inflates these and nothing else). */
export const SUPPORTED_ENCODINGS = ["identity", "gzip", "deflate"] as const;

/** 400 for a compressed body that does not decompress (a broken or truncated gzip stream). */
export class BadContentEncodingError extends Errors.MoleculerClientError {
	constructor(encoding: string, reason: string) {
		super(
			`The request body is not valid ${encoding} data (${reason}).`,
			400,
			"BAD_CONTENT_ENCODING",
			{ encoding, reason }
		);
	}
}

/** 415 for a Content-Encoding the gateway cannot undo, with the ones it can. */
export class UnsupportedContentEncodingError extends Errors.MoleculerClientError {
	constructor(encoding: string) {
		super(
			`Content-Encoding '${encoding}' is not supported: send the body uncompressed, gzip or deflate.`,
			415,
			"UNSUPPORTED_CONTENT_ENCODING",
			{ encoding, supported: [...SUPPORTED_ENCODINGS] }
		);
	}
}

/** 415 for a charset the body cannot be decoded from. */
export class UnsupportedCharsetError extends Errors.MoleculerClientError {
	constructor(charset: string) {
		super(
			`The charset '${charset}' is not supported: send the body as UTF-8.`,
			415,
			"UNSUPPORTED_CHARSET",
			{ charset, supported: ["utf-8"] }
		);
	}
}

/** Any other body the parsers refuse: malformed JSON, a cut-off upload, a wrong length. */
export class BadBodyError extends Errors.MoleculerClientError {
	constructor(message: string, code: number, type: string, data: Record<string, unknown> = {}) {
		super(message, code, type, data);
	}
}

/** What body-parser (via http-errors, raw-body or zlib) puts on the errors it passes on. */
interface ParserError {
	message?: string;
	status?: number;
	type?: string;
	code?: unknown;
	encoding?: string;
	charset?: string;
	limit?: number;
	length?: number;
	expected?: number;
	received?: number;
}

/**
 * The client error for a failure of body-parser. Its errors carry an HTTP `status` and a dotted
 * `type`, except zlib's, which keep a string `code` ("Z_DATA_ERROR"); moleculer-web reads a
 * string code as no code and answers 500, so every one is mapped here to a fixed UPPER_SNAKE
 * type. `encoding` is the request's Content-Encoding, for the message.
 */
export function bodyError(err: unknown, encoding = "identity"): Errors.MoleculerError {
	if (err instanceof Errors.MoleculerError) return err;
	const e = (err ?? {}) as ParserError;
	const message = e.message ?? String(err);
	switch (e.type) {
		case "encoding.unsupported":
			return new UnsupportedContentEncodingError(e.encoding ?? encoding);
		case "charset.unsupported":
			return new UnsupportedCharsetError(e.charset ?? "unknown");
		case "entity.parse.failed":
			return new BadBodyError(
				`The request body is not valid JSON: ${message}`,
				400,
				"INVALID_JSON"
			);
		case "entity.too.large":
			return new BadBodyError(
				`The request body is larger than ${e.limit} bytes.`,
				413,
				"BODY_TOO_LARGE",
				{ limit: e.limit, length: e.length }
			);
		case "request.aborted":
			return new BadBodyError(
				"The request was aborted before its body arrived.",
				400,
				"REQUEST_ABORTED"
			);
		case "request.size.invalid":
			return new BadBodyError(
				`The request body has ${e.received} bytes, not the ${e.expected} its Content-Length says.`,
				400,
				"BODY_LENGTH_MISMATCH",
				{ expected: e.expected, received: e.received }
			);
		case "entity.verify.failed":
			return new BadBodyError(
				`The request body was refused: ${message}`,
				400,
				"BODY_REFUSED"
			);
	}
	if (typeof e.code === "string" && e.code.startsWith("Z_"))
		return new BadContentEncodingError(encoding, message);
	const status = typeof e.status === "number" ? e.status : 500;
	if (status >= 400 && status < 500)
		return new BadBodyError(
			`The request body could not be read: ${message}`,
			status,
			"BAD_BODY"
		);
	return new Errors.MoleculerError(
		`The request body could not be read: ${message}`,
		500,
		"BODY_READ_FAILED"
	);
}

type Next = (err?: unknown) => void;
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/** A body-parser middleware whose errors reach the route as the client errors of bodyError. */
export function mapBodyErrors(parser: Middleware): Middleware {
	return (req, res, next) =>
		parser(req, res, err => {
			if (err === undefined || err === null) return next();
			const encoding = String(req.headers["content-encoding"] ?? "identity").toLowerCase();
			next(bodyError(err, encoding));
		});
}
