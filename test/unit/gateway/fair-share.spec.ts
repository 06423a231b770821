import { OverloadedError } from "../../../services/shared/errors";
import { FairShare, MIN_SHARE } from "../../../services/gateway/fair-share";

describe("FairShare", () => {
	const make = (budget: number, perTenant: number) => {
		const clock = { now: 0 };
		const share = new FairShare({ budget, perTenant, windowMs: 1000 }, () => clock.now);
		const send = (tenant: string) => {
			share.note(tenant);
			return share.enter(tenant);
		};
		return { clock, share, send };
	};

	it("lets a tenant alone have its own bound in flight", () => {
		const { share, send } = make(8, 16);
		for (let i = 0; i < 16; i++) send("flood");
		expect(share.inside("flood")).toBe(16);
		let err: unknown;
		try {
			send("flood");
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(OverloadedError);
		expect(err).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			data: { queue: "the gateway's mutations of tenant 'flood'", limit: 16, retryAfter: 1 }
		});
	});

	it("holds the tenant that sends the most to its part of the budget while another is active", () => {
		const { clock, share, send } = make(16, 16);
		const flood = Array.from({ length: 16 }, () => send("flood"));
		clock.now = 100;
		// The quiet tenant is let in over a full flood: it is below its share.
		const quiet = send("quiet");
		quiet();
		expect(share.share("flood")).toBe(8);
		expect(share.share("quiet")).toBe(16);
		// The flood's next ones are refused until it is below 8 in flight...
		for (const leave of flood.slice(0, 8)) leave();
		expect(() => send("flood")).toThrow(OverloadedError);
		flood[8]();
		expect(() => send("flood")).not.toThrow();
		// ...for as long as the quiet tenant stays active (a window after its last request).
		clock.now = 1099;
		expect(share.share("flood")).toBe(8);
		clock.now = 1100;
		expect(share.share("flood")).toBe(16);
	});

	it("never refuses a tenant below its fair part for a pile-up it did not cause", () => {
		const { share, send } = make(4, 16);
		for (let i = 0; i < 20; i++) send("flood")();
		// A stall: the quiet tenant's open-loop requests pile up past the flood's share.
		const quiet = Array.from({ length: 6 }, () => send("quiet"));
		expect(share.inside("quiet")).toBe(6);
		expect(share.share("flood")).toBe(2);
		for (const leave of quiet) leave();
	});

	it("splits the budget between every active tenant, at least MIN_SHARE each", () => {
		const { share, send } = make(3, 16);
		for (let i = 0; i < 10; i++) send("flood")();
		for (const t of ["a", "b", "c", "d"]) send(t)();
		expect(share.share("flood")).toBe(MIN_SHARE);
		expect(() => send("flood")).not.toThrow();
		expect(() => send("flood")).toThrow(OverloadedError);
	});

	it("counts what a tenant sent in the last window or two, refused or not", () => {
		const { clock, share, send } = make(16, 1);
		send("flood");
		expect(() => send("flood")).toThrow(OverloadedError);
		expect(share.recent("flood")).toBe(2);
		clock.now = 1500;
		expect(share.recent("flood")).toBe(2);
		send("quiet")();
		expect(share.busiest("flood")).toBe(true);
		expect(share.busiest("quiet")).toBe(false);
		clock.now = 2500;
		expect(share.recent("flood")).toBe(0);
		expect(share.recent("nobody")).toBe(0);
	});

	it("lets a mutation out once however often its leave is called", () => {
		const { share, send } = make(16, 16);
		const leave = send("a");
		send("a");
		leave();
		leave();
		expect(share.inside("a")).toBe(1);
	});
});
