import { type LoopTimes, UtilizationMonitor } from "../../../services/shared/utilization";

describe("UtilizationMonitor", () => {
	it("averages what the loop did over the last window of samples", () => {
		let now: LoopTimes = { idle: 0, active: 0 };
		const m = new UtilizationMonitor(() => now, 100, 300);
		expect(m.utilization()).toBe(0);
		const step = (idle: number, active: number) => {
			now = { idle: now.idle + idle, active: now.active + active };
			m.sample();
		};
		step(100, 0);
		expect(m.utilization()).toBe(0);
		step(0, 100);
		expect(m.utilization()).toBe(0.5);
		step(50, 50);
		expect(m.utilization()).toBe(0.5);
		// The first sample falls out of the window of three.
		step(0, 100);
		expect(m.utilization()).toBeCloseTo(250 / 300);
	});

	it("samples on its own timer once started, until stopped", async () => {
		const m = new UtilizationMonitor(undefined, 10, 100);
		const stop = m.start(10);
		const end = Date.now() + 60;
		while (Date.now() < end) Math.sqrt(Math.random());
		await new Promise(resolve => setTimeout(resolve, 30));
		stop();
		expect(m.utilization()).toBeGreaterThan(0);
		expect(m.utilization()).toBeLessThanOrEqual(1);
	});
});
