import {
	afterExit,
	backoffDelay,
	DEFAULT_BACKOFF,
	formatDelay,
	restartReason
} from "../../../../node-agent/runner/restart-policy";

const middle = () => 0.5;

describe("backoffDelay", () => {
	it("doubles from 1 s up to 5 min, without jitter in the middle of the spread", () => {
		expect(
			[0, 1, 2, 3, 4, 8, 9, 20, 5000].map(n => backoffDelay(n, DEFAULT_BACKOFF, middle))
		).toEqual([1000, 2000, 4000, 8000, 16000, 256_000, 300_000, 300_000, 300_000]);
	});

	it("spreads each delay by ±20%, never below the base nor above the cap", () => {
		const low = () => 0;
		const high = () => 0.999999;
		expect(backoffDelay(3, DEFAULT_BACKOFF, low)).toBe(6400);
		expect(backoffDelay(3, DEFAULT_BACKOFF, high)).toBe(9600);
		expect(backoffDelay(0, DEFAULT_BACKOFF, low)).toBe(1000);
		expect(backoffDelay(0, DEFAULT_BACKOFF, high)).toBe(1200);
		expect(backoffDelay(30, DEFAULT_BACKOFF, low)).toBe(240_000);
		expect(backoffDelay(30, DEFAULT_BACKOFF, high)).toBe(300_000);
	});

	it("gives replicas that fail together different delays", () => {
		const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
		expect(delays.size).toBeGreaterThan(10);
		for (const d of delays) {
			expect(d).toBeGreaterThanOrEqual(12_800);
			expect(d).toBeLessThanOrEqual(19_200);
		}
	});

	it("takes another base and cap", () => {
		const backoff = { base: 10, cap: 50, jitter: 0 };
		expect([0, 1, 2, 3, 4].map(n => backoffDelay(n, backoff))).toEqual([10, 20, 40, 50, 50]);
	});
});

describe("afterExit", () => {
	const exit = "exited with code 1";

	it("never: a failure fails, a clean exit stops", () => {
		const policy = { policy: "never" as const, maxRestarts: 5 };
		expect(afterExit(policy, 0, exit, true)).toEqual({
			restart: false,
			state: "failed",
			reason: exit
		});
		expect(afterExit(policy, 0, "exited with code 0", false)).toEqual({
			restart: false,
			state: "stopped",
			reason: "exited with code 0"
		});
	});

	it("on-failure: restarts a failure until maxRestarts, then fails; a clean exit stops", () => {
		const policy = { policy: "on-failure" as const, maxRestarts: 2 };
		expect(afterExit(policy, 0, exit, true)).toEqual({ restart: true, attempt: 1, of: 2 });
		expect(afterExit(policy, 1, exit, true)).toEqual({ restart: true, attempt: 2, of: 2 });
		expect(afterExit(policy, 2, exit, true)).toEqual({
			restart: false,
			state: "failed",
			reason: `${exit}; gave up after 2 restarts`
		});
		expect(afterExit(policy, 0, "exited with code 0", false)).toMatchObject({
			restart: false,
			state: "stopped"
		});
	});

	it("always: restarts a clean exit too; maxRestarts 0 is unlimited", () => {
		const policy = { policy: "always" as const, maxRestarts: 0 };
		expect(afterExit(policy, 0, "exited with code 0", false)).toEqual({
			restart: true,
			attempt: 1,
			of: null
		});
		expect(afterExit(policy, 10_000, exit, true)).toMatchObject({
			restart: true,
			attempt: 10_001
		});
	});
});

describe("restartReason", () => {
	it("says what ended, when it starts again and which restart that is", () => {
		expect(restartReason("exited with code 1", 4000, 3, 5)).toBe(
			"exited with code 1; restarting in 4 s (restart 3 of 5)"
		);
		expect(restartReason("killed by SIGKILL", 150_000, 9, null)).toBe(
			"killed by SIGKILL; restarting in 2.5 min (restart 9)"
		);
	});

	it("formats delays in ms, s and min", () => {
		expect([250, 1000, 1500, 59_999, 60_000, 300_000].map(formatDelay)).toEqual([
			"250 ms",
			"1 s",
			"1.5 s",
			"60 s",
			"1 min",
			"5 min"
		]);
	});
});
