import type { IncomingMessage, ServerResponse } from "http";
import { PassThrough } from "stream";
import zlib from "zlib";
import { Errors } from "moleculer";
import ApiGateway from "moleculer-web";
import {
	BadContentEncodingError,
	bodyError,
	BodyTooDeepError,
	checkBody,
	deeperThan,
	mapBodyErrors,
	MAX_BODY_DEPTH,
	type Middleware,
	UnsupportedContentEncodingError,
	UnsupportedMediaTypeError
} from "../../../services/gateway/body";
import { thrown } from "../../helpers/errors";

/** A nested object `depth` levels deep: {a: {a: … 1}}. */
function nested(depth: number): unknown {
	let v: unknown = 1;
	for (let i = 0; i < depth; i++) v = { a: v };
	return v;
}

const request = (headers: Record<string, string>, body?: unknown) =>
	({ headers, body }) as IncomingMessage & { body?: unknown };

describe("deeperThan", () => {
	it("counts objects and arrays, not values", () => {
		expect(deeperThan(nested(3), 3)).toBe(false);
		expect(deeperThan(nested(4), 3)).toBe(true);
		expect(deeperThan([[[1]]], 3)).toBe(false);
		expect(deeperThan([[[[1]]]], 3)).toBe(true);
		expect(deeperThan("text", 0)).toBe(false);
		expect(deeperThan(null, 0)).toBe(false);
	});

	it("walks a body far deeper than the limit without recursion", () => {
		expect(deeperThan(nested(100_000), MAX_BODY_DEPTH)).toBe(true);
	});
});

describe("checkBody", () => {
	const json = { "content-type": "application/json; charset=utf-8", "content-length": "20" };

	it("passes a JSON or YAML body within the limit, and a request without a body", () => {
		expect(() => checkBody(request(json, nested(MAX_BODY_DEPTH)))).not.toThrow();
		expect(() =>
			checkBody(
				request({ "content-type": "application/yaml", "content-length": "9" }, "a: 1")
			)
		).not.toThrow();
		expect(() => checkBody(request({ "content-length": "0" }, {}))).not.toThrow();
		expect(() => checkBody(request({}, {}))).not.toThrow();
	});

	it("refuses a body nested deeper than the limit with 400", () => {
		const err = thrown<BodyTooDeepError>(() =>
			checkBody(request(json, nested(MAX_BODY_DEPTH + 1)))
		);
		expect(err).toBeInstanceOf(BodyTooDeepError);
		expect(err).toMatchObject({ code: 400, type: "BODY_TOO_DEEP", data: { limit: 64 } });
	});

	it("refuses a body without a readable Content-Type with 415 and the fix", () => {
		const none = thrown<UnsupportedMediaTypeError>(() =>
			checkBody(request({ "content-length": "12" }, {}))
		);
		expect(none).toMatchObject({
			code: 415,
			type: "UNSUPPORTED_MEDIA_TYPE",
			data: { contentType: null }
		});
		expect(none.message).toMatch(/Content-Type: application\/json/);
		const form = thrown<UnsupportedMediaTypeError>(() =>
			checkBody(
				request(
					{
						"content-type": "application/x-www-form-urlencoded",
						"transfer-encoding": "chunked"
					},
					{}
				)
			)
		);
		expect(form).toMatchObject({
			code: 415,
			data: { contentType: "application/x-www-form-urlencoded" }
		});
	});
});

describe("bodyError", () => {
	/** An error shaped as body-parser's http-errors make them. */
	const parserError = (status: number, type: string, extra: object = {}) =>
		Object.assign(new Error("parser says no"), { status, type, ...extra });

	it("maps each body-parser failure to a client error with an UPPER_SNAKE type", () => {
		const cases: Array<[unknown, number, string, object?]> = [
			[
				parserError(415, "encoding.unsupported", { encoding: "br" }),
				415,
				"UNSUPPORTED_CONTENT_ENCODING",
				{ encoding: "br", supported: ["identity", "gzip", "deflate"] }
			],
			[
				parserError(415, "charset.unsupported", { charset: "latin-9" }),
				415,
				"UNSUPPORTED_CHARSET",
				{ charset: "latin-9" }
			],
			[parserError(400, "entity.parse.failed"), 400, "INVALID_JSON"],
			[
				parserError(413, "entity.too.large", { limit: 1024, length: 2048 }),
				413,
				"BODY_TOO_LARGE",
				{ limit: 1024, length: 2048 }
			],
			[parserError(400, "request.aborted"), 400, "REQUEST_ABORTED"],
			[
				parserError(400, "request.size.invalid", { expected: 3, received: 2 }),
				400,
				"BODY_LENGTH_MISMATCH",
				{ expected: 3, received: 2 }
			],
			[parserError(403, "entity.verify.failed"), 400, "BODY_REFUSED"],
			[parserError(413, "parameters.too.many"), 413, "BAD_BODY"]
		];
		for (const [input, code, type, data] of cases) {
			const err = bodyError(input);
			expect(err).toBeInstanceOf(Errors.MoleculerClientError);
			expect(err).toMatchObject({ code, type, ...(data ? { data } : {}) });
		}
	});

	it("maps a real zlib failure (a string code, no status moleculer-web reads) to 400", () => {
		let zerr: unknown;
		try {
			zlib.gunzipSync(Buffer.from("not gzip"));
		} catch (e) {
			zerr = Object.assign(e as Error, { status: 400 });
		}
		const err = bodyError(zerr, "gzip");
		expect(err).toBeInstanceOf(BadContentEncodingError);
		expect(err).toMatchObject({
			code: 400,
			type: "BAD_CONTENT_ENCODING",
			data: { encoding: "gzip", reason: "incorrect header check" }
		});
	});

	it("keeps a Moleculer error, and a server-side failure stays a 500", () => {
		const own = new UnsupportedMediaTypeError("text/plain");
		expect(bodyError(own)).toBe(own);
		expect(bodyError(parserError(500, "stream.not.readable"))).toMatchObject({
			code: 500,
			type: "BODY_READ_FAILED"
		});
	});
});

describe("mapBodyErrors with body-parser", () => {
	const bodyParser = (
		ApiGateway as unknown as { bodyParser: Record<"json", (o: object) => Middleware> }
	).bodyParser;
	const json = mapBodyErrors(bodyParser.json({ limit: "1kb", strict: true }));

	/** Runs the JSON parser over a request with these headers and bytes. */
	function parse(headers: Record<string, string>, bytes: Buffer) {
		const req = Object.assign(new PassThrough(), {
			headers: { "content-length": String(bytes.length), ...headers }
		}) as unknown as IncomingMessage & { body?: unknown };
		const done = new Promise<{ err?: unknown; body?: unknown }>(resolve =>
			json(req, {} as ServerResponse, err => resolve({ err, body: req.body }))
		);
		(req as unknown as PassThrough).end(bytes);
		return done;
	}
	const type = { "content-type": "application/json" };

	it("reads gzip and deflate bodies", async () => {
		const body = Buffer.from('{"a":1}');
		for (const [encoding, packed] of [
			["gzip", zlib.gzipSync(body)],
			["deflate", zlib.deflateSync(body)]
		] as const)
			expect(await parse({ ...type, "content-encoding": encoding }, packed)).toEqual({
				err: undefined,
				body: { a: 1 }
			});
	});

	it("answers a broken or truncated gzip body with 400 and an unknown encoding with 415", async () => {
		const broken = await parse({ ...type, "content-encoding": "gzip" }, Buffer.from("xx"));
		expect(broken.err).toBeInstanceOf(BadContentEncodingError);
		const cut = zlib.gzipSync(Buffer.from('{"a":1}')).subarray(0, 12);
		const truncated = await parse({ ...type, "content-encoding": "GZIP" }, cut);
		expect(truncated.err).toMatchObject({ code: 400, type: "BAD_CONTENT_ENCODING" });
		const br = await parse({ ...type, "content-encoding": "br" }, Buffer.from("{}"));
		expect(br.err).toBeInstanceOf(UnsupportedContentEncodingError);
		expect(br.err).toMatchObject({ code: 415, data: { encoding: "br" } });
	});

	it("answers malformed JSON with 400 INVALID_JSON and a large body with 413", async () => {
		expect((await parse(type, Buffer.from("{x"))).err).toMatchObject({
			code: 400,
			type: "INVALID_JSON"
		});
		const big = Buffer.from(JSON.stringify({ pad: "x".repeat(2000) }));
		expect((await parse(type, big)).err).toMatchObject({ code: 413, type: "BODY_TOO_LARGE" });
	});
});
