import { OverloadedError } from "../../../services/shared/errors";
import { HOLD_BACK_MIN, SHED_RETRY_AFTER_S, Shedder } from "../../../services/gateway/overload";
import { retryAfterSeconds } from "../../../services/gateway/errors";

describe("Retry-After of an overload", () => {
	it("is the OVERLOADED error's retryAfter in whole seconds, also as it arrives over the transporter", () => {
		const err = (retryAfter: number) =>
			new OverloadedError({ queue: "q", limit: 1, retryAfter });
		expect(retryAfterSeconds(err(1))).toBe(1);
		expect(retryAfterSeconds(err(2.2))).toBe(3);
		expect(
			retryAfterSeconds({
				type: "OVERLOADED",
				code: 503,
				retryable: true,
				data: { retryAfter: 5 }
			})
		).toBe(5);
	});
});

describe("Shedder", () => {
	const limits = (perTenant: number) => ({ budget: perTenant, perTenant, windowMs: 1000 });
	/** A shedder whose loop never lags and is always fully busy, past `busyAt`. */
	const fullyBusy = (busyAt: number | null) =>
		new Shedder(
			() => 0,
			200,
			limits(16),
			() => 1,
			busyAt
		);

	it("refuses while the lag is past the threshold, and says so in /ready", () => {
		let lag = 0;
		const shedder = new Shedder(() => lag, 200, limits(16));
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
		const shedder = new Shedder(() => 10_000, null, limits(16));
		expect(shedder.refusal()).toBeNull();
		expect(shedder.readiness()).toBe("ok");
	});

	it("while lagging, sheds reads of the tenants with the most in flight and serves the others", () => {
		let lag = 0;
		const shedder = new Shedder(() => lag, 200, limits(16));
		const flood = [shedder.admit("flood", false), shedder.admit("flood", false)];
		lag = 500;
		expect(() => shedder.admit("flood", false)).toThrow(
			expect.objectContaining({
				type: "OVERLOADED",
				data: expect.objectContaining({ lag: 500 })
			})
		);
		// The quiet tenant holds fewer than the flood: served, again and again up to as many.
		const quiet = [shedder.admit("quiet", false), shedder.admit("quiet", false)];
		// Now as busy as the flood: shed too, while the lag lasts.
		expect(() => shedder.admit("quiet", false)).toThrow(OverloadedError);
		expect(() => shedder.admit("flood", false)).toThrow(OverloadedError);
		// A tenant with nothing in flight is always served.
		const third = shedder.admit("third", false);
		for (const leave of [...flood, ...quiet, third]) leave();
		lag = 0;
		expect(() => shedder.admit("flood", false)).not.toThrow();
	});

	it("while lagging, sheds mutations of the tenant that sent the most lately, not of the one with the most in flight", () => {
		let lag = 0;
		let now = 0;
		const shedder = new Shedder(
			() => lag,
			200,
			limits(16),
			() => now
		);
		// The flood sent five; now its clients wait out a Retry-After, none in flight.
		for (let i = 0; i < 5; i++) shedder.admit("flood", true)();
		shedder.admit("quiet", true)();
		lag = 500;
		now = 1500;
		// With nothing in flight a tenant is served (none stops altogether), then shed.
		const flood = shedder.admit("flood", true);
		expect(() => shedder.admit("flood", true)).toThrow(OverloadedError);
		// The quiet tenant sent fewer: served while it stays below the flood, even with more
		// in flight than the flood has.
		const quiet = [1, 2, 3, 4, 5].map(() => shedder.admit("quiet", true));
		// Now it sent as many as the flood did (seven, the refused one counted): shed too.
		expect(() => shedder.admit("quiet", true)).toThrow(OverloadedError);
		for (const leave of [flood, ...quiet]) leave();
	});

	it("bounds each tenant's mutations in flight, lag or not; reads are not bounded", () => {
		const shedder = new Shedder(() => 0, 200, { budget: 16, perTenant: 2, windowMs: 1000 });
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

	it("while the event loop is busy, holds back a tenant sending more than its part, and no other", () => {
		let busy = 0.9;
		let now = 0;
		const shedder = new Shedder(
			() => 0,
			200,
			limits(16),
			() => busy,
			0.5,
			() => now
		);
		// Alone, a tenant has the node to itself however busy it is.
		for (let i = 0; i < HOLD_BACK_MIN; i++) shedder.admit("flood", true)();
		// Beside another active tenant it is over its part: refused, the other is served.
		shedder.admit("quiet", true)();
		let refused: unknown;
		try {
			shedder.admit("flood", true);
		} catch (err) {
			refused = err;
		}
		expect(refused).toBeInstanceOf(OverloadedError);
		expect(refused).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			message:
				"Too busy: the gateway's event loop is 90% busy, past 50%, and tenant 'flood' sends more than its part while other tenants are active; nothing was done. Try again in 1 s.",
			data: { limit: 0.5, utilization: 0.9, tenant: "flood", retryAfter: SHED_RETRY_AFTER_S }
		});
		expect(() => shedder.admit("quiet", true)()).not.toThrow();
		// Reads are not held back; a loop that is not busy holds back no one.
		expect(() => shedder.admit("flood", false)()).not.toThrow();
		busy = 0.5;
		expect(() => shedder.admit("flood", true)()).not.toThrow();
		// Once the other tenant has been quiet for the window, the flood is alone again.
		busy = 0.9;
		now += 5000;
		expect(() => shedder.admit("flood", true)()).not.toThrow();
	});

	it("holds back no tenant that sent fewer than HOLD_BACK_MIN mutations lately", () => {
		const shedder = fullyBusy(0.5);
		shedder.admit("quiet", true)();
		for (let i = 1; i < HOLD_BACK_MIN; i++)
			expect(() => shedder.admit("script", true)()).not.toThrow();
		expect(() => shedder.admit("script", true)).toThrow(OverloadedError);
	});

	it("never holds back by utilization without a limit (ISA_SHED_BUSY=0)", () => {
		const shedder = fullyBusy(null);
		shedder.admit("quiet", true)();
		for (let i = 0; i < 20; i++) expect(() => shedder.admit("flood", true)()).not.toThrow();
	});
});
