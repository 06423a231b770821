import type { ServerResponse } from "http";
import { Errors } from "moleculer";
import { OverloadedError } from "../../../services/shared/errors";
import {
	retryAfterOf,
	setRetryAfter,
	SHED_RETRY_AFTER_S,
	Shedder
} from "../../../services/gateway/overload";

function response(headersSent = false) {
	const headers: Record<string, string> = {};
	const res = {
		headersSent,
		setHeader: (name: string, value: string) => (headers[name] = value)
	} as unknown as ServerResponse;
	return { res, headers };
}

describe("Retry-After", () => {
	it("is the OVERLOADED error's retryAfter in whole seconds, at least 1", () => {
		const err = (retryAfter: number) =>
			new OverloadedError({ queue: "q", limit: 1, retryAfter });
		expect(retryAfterOf(err(1))).toBe(1);
		expect(retryAfterOf(err(2.2))).toBe(3);
		expect(retryAfterOf(err(0))).toBe(1);
		// Only an overload asks for a wait: other 503s are not told when to come back.
		expect(retryAfterOf(new Errors.MoleculerRetryableError("x", 503, "NOT_READY"))).toBeNull();
		expect(retryAfterOf(null)).toBeNull();
		// As it arrives over the transporter: a plain object with the same fields.
		expect(retryAfterOf({ type: "OVERLOADED", code: 503, data: { retryAfter: 5 } })).toBe(5);
	});

	it("is set on an answer not yet sent, and only for an overload", () => {
		const a = response();
		setRetryAfter(a.res, new OverloadedError({ queue: "q", limit: 1, retryAfter: 2 }));
		expect(a.headers).toEqual({ "Retry-After": "2" });
		const b = response();
		setRetryAfter(b.res, new Error("boom"));
		expect(b.headers).toEqual({});
		const c = response(true);
		setRetryAfter(c.res, new OverloadedError({ queue: "q", limit: 1, retryAfter: 2 }));
		expect(c.headers).toEqual({});
	});
});

describe("Shedder", () => {
	it("refuses while the lag is past the threshold, and says so in /ready", () => {
		let lag = 0;
		const shedder = new Shedder(() => lag, 200, 16);
		expect(shedder.refusal()).toBeNull();
		expect(shedder.readiness()).toBe("ok");
		lag = 200;
		expect(shedder.refusal()).toBeNull();
		lag = 350.4;
		const err = shedder.refusal();
		expect(err).toBeInstanceOf(OverloadedError);
		expect(err).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			message:
				"Too busy: the gateway's event loop lags 350 ms, past its limit of 200 ms; nothing was done. Try again in 1 s.",
			data: {
				queue: "the gateway's event loop",
				limit: 200,
				lag: 350,
				retryAfter: SHED_RETRY_AFTER_S
			}
		});
		expect(shedder.readiness()).toBe("overloaded: event-loop lag 350 ms, past 200 ms");
		lag = 0;
		expect(shedder.refusal()).toBeNull();
	});

	it("never sheds without a threshold (ISA_SHED_LAG=0)", () => {
		const shedder = new Shedder(() => 10_000, null, 16);
		expect(shedder.refusal()).toBeNull();
		expect(shedder.readiness()).toBe("ok");
	});

	it("while lagging, sheds the tenants with the most in flight and serves the others", () => {
		let lag = 0;
		const shedder = new Shedder(() => lag, 200, 16);
		const flood = [shedder.admit("flood", true), shedder.admit("flood", false)];
		lag = 500;
		expect(() => shedder.admit("flood", true)).toThrow(
			expect.objectContaining({
				type: "OVERLOADED",
				data: expect.objectContaining({ lag: 500 })
			})
		);
		// The quiet tenant holds fewer than the flood: served, again and again up to as many.
		const quiet = [shedder.admit("quiet", true), shedder.admit("quiet", false)];
		// Now as busy as the flood: shed too, while the lag lasts.
		expect(() => shedder.admit("quiet", false)).toThrow(OverloadedError);
		expect(() => shedder.admit("flood", false)).toThrow(OverloadedError);
		// A tenant with nothing in flight is always served.
		const third = shedder.admit("third", false);
		for (const leave of [...flood, ...quiet, third]) leave();
		lag = 0;
		expect(() => shedder.admit("flood", true)).not.toThrow();
	});

	it("bounds each tenant's mutations in flight, lag or not; reads are not bounded", () => {
		const shedder = new Shedder(() => 0, 200, 2);
		const held = [shedder.admit("a", true), shedder.admit("a", true)];
		expect(() => shedder.admit("a", true)).toThrow(
			expect.objectContaining({
				code: 503,
				type: "OVERLOADED",
				data: { queue: "the gateway's mutations of tenant 'a'", limit: 2, retryAfter: 1 }
			})
		);
		expect(() => shedder.admit("a", false)).not.toThrow();
		expect(() => shedder.admit("b", true)).not.toThrow();
		held[0]();
		expect(() => shedder.admit("a", true)).not.toThrow();
	});
});
