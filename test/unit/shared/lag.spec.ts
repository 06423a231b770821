import { LAG_TOLERANCE, LagMonitor } from "../../../services/shared/lag";

describe("LagMonitor", () => {
	let now = 0;
	const clock = () => now;

	beforeEach(() => (now = 1000));

	it("reports a beat that came late by more than the tolerance, once", () => {
		const m = new LagMonitor(clock, 100, 1000);
		now += 100 + LAG_TOLERANCE - 1;
		expect(m.beat()).toBe(0);
		now += 600;
		expect(m.beat()).toBe(500);
		// A beat right after (the sweep's own) finds nothing more to report.
		now += 5;
		expect(m.beat()).toBe(0);
	});

	it("keeps the largest lag for the window, and counts a beat overdue now", () => {
		const m = new LagMonitor(clock, 100, 1000);
		now += 400;
		expect(m.beat()).toBe(300);
		now += 100;
		m.beat();
		expect(m.lag()).toBe(300);
		for (let i = 0; i < 10; i++) {
			now += 100;
			m.beat();
		}
		// 1 s later the lag is forgotten...
		expect(m.lag()).toBe(0);
		// ...but a stall in progress counts before any beat measures it.
		now += 350;
		expect(m.lag()).toBe(250);
	});

	it("beats on its own timer and tells each lag", async () => {
		const lags: number[] = [];
		const m = new LagMonitor(undefined, 20, 1000);
		const stop = m.start(lag => lags.push(lag));
		await new Promise(resolve => setTimeout(resolve, 30));
		const until = Date.now() + 150;
		while (Date.now() < until);
		await new Promise(resolve => setTimeout(resolve, 30));
		stop();
		expect(lags.length).toBeGreaterThanOrEqual(1);
		expect(Math.max(...lags)).toBeGreaterThan(100);
		expect(m.lag()).toBeGreaterThan(100);
	});
});
