import type { IncomingMessage } from "http";
import {
	BodyTooDeepError,
	checkBody,
	deeperThan,
	MAX_BODY_DEPTH,
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
