import { DisconnectWatch, pingInterval } from "../../../node-agent/disconnect";

const leased = (stopAfterMs?: number) => ({ workloadId: "w", replica: 0, stopAfterMs });

describe("DisconnectWatch", () => {
	it("pings thrice per stopAfter, between 100 ms and 2 s", () => {
		expect(pingInterval(3000)).toBe(1000);
		expect(pingInterval(150)).toBe(100);
		expect(pingInterval(60_000)).toBe(2000);
	});

	it("renews while the control plane is heard, and leaves replicas without stopAfter alone", () => {
		const w = new DisconnectWatch(0);
		w.heard(900);
		const tick = w.tick([leased(3000), leased()], 1000);
		expect(tick.renew).toEqual([leased(3000)]);
		expect(tick.stop).toEqual([]);
	});

	it("stops renewing soon, and stops the replica once stopAfter passed without a word", () => {
		const w = new DisconnectWatch(0);
		expect(w.tick([leased(3000)], 2500)).toEqual({ renew: [], stop: [] });
		expect(w.tick([leased(3000)], 3000).stop).toEqual([leased(3000)]);
		// Each replica by its own stopAfter.
		expect(w.tick([leased(3000), leased(10_000)], 5000).stop).toEqual([leased(3000)]);
	});

	it("counts nothing heard while disconnected, and renews nothing", () => {
		const w = new DisconnectWatch(0);
		w.transport(false);
		w.heard(1000);
		expect(w.silentFor(1000)).toBe(1000);
		expect(w.tick([leased(3000)], 1000).renew).toEqual([]);
		w.transport(true);
		w.heard(3500);
		expect(w.tick([leased(3000)], 3600).renew).toEqual([leased(3000)]);
	});
});
