import type { CheckResult } from "../../../services/registry/checkers/base";
import {
	HealthState,
	HealthThresholds,
	initialHealth,
	nextHealth,
	publicHealth
} from "../../../services/registry/health";

const up: CheckResult = { ok: true, latencyMs: 3 };
const down = (error = "connect ECONNREFUSED 127.0.0.1:5432"): CheckResult => ({
	ok: false,
	latencyMs: 1,
	error
});

/** Feeds results one by one (checked at 1000, 2000, ...) and returns every step. */
function run(results: CheckResult[], thresholds: HealthThresholds, from = initialHealth()) {
	const steps: { state: HealthState; changed: boolean }[] = [];
	let state = from;
	results.forEach((result, i) => {
		const step = nextHealth(state, result, (i + 1) * 1000, thresholds);
		steps.push(step);
		state = step.state;
	});
	return steps;
}

const statuses = (steps: { state: HealthState }[]) => steps.map(s => s.state.status);
const twoAndThree = { healthyThreshold: 2, unhealthyThreshold: 3 };

describe("initialHealth", () => {
	it("is unknown, never checked", () => {
		expect(initialHealth()).toEqual({
			status: "unknown",
			checkedAt: null,
			latencyMs: null,
			successes: 0,
			failures: 0
		});
	});
});

describe("nextHealth", () => {
	it("decides on the first result when the thresholds are 1", () => {
		const ones = { healthyThreshold: 1, unhealthyThreshold: 1 };
		expect(run([up], ones)[0]).toMatchObject({ state: { status: "healthy" }, changed: true });
		expect(run([down()], ones)[0]).toMatchObject({
			state: { status: "unhealthy" },
			changed: true
		});
	});

	it("stays unknown until healthyThreshold successes in a row", () => {
		const steps = run([up, up], twoAndThree);
		expect(statuses(steps)).toEqual(["unknown", "healthy"]);
		expect(steps.map(s => s.changed)).toEqual([false, true]);
	});

	it("stays unknown until unhealthyThreshold failures in a row", () => {
		expect(statuses(run([down(), down(), down()], twoAndThree))).toEqual([
			"unknown",
			"unknown",
			"unhealthy"
		]);
	});

	it("counts only consecutive results", () => {
		// up, down, up: never two successes in a row, never three failures in a row.
		expect(statuses(run([up, down(), up, down(), down()], twoAndThree))).toEqual([
			"unknown",
			"unknown",
			"unknown",
			"unknown",
			"unknown"
		]);
	});

	it("keeps a healthy target healthy through fewer than unhealthyThreshold failures", () => {
		const steps = run([up, up, down(), down(), up, down(), down(), down()], twoAndThree);
		expect(statuses(steps)).toEqual([
			"unknown",
			"healthy",
			"healthy",
			"healthy",
			"healthy",
			"healthy",
			"healthy",
			"unhealthy"
		]);
		expect(steps.filter(s => s.changed).map(s => s.state.status)).toEqual([
			"healthy",
			"unhealthy"
		]);
	});

	it("needs healthyThreshold successes to recover", () => {
		const ones = { healthyThreshold: 1, unhealthyThreshold: 1 };
		const [fallen] = run([down()], ones);
		const steps = run([up, down(), up, up], twoAndThree, fallen.state);
		expect(statuses(steps)).toEqual(["unhealthy", "unhealthy", "unhealthy", "healthy"]);
	});

	it("keeps the counters, the time and the latency of the latest check", () => {
		const [, second] = run([up, down("timed out after 500 ms")], twoAndThree);
		expect(second.state).toEqual({
			status: "unknown",
			checkedAt: 2000,
			latencyMs: 1,
			error: "timed out after 500 ms",
			successes: 0,
			failures: 1
		});
	});

	it("drops the error on success, except while still unhealthy", () => {
		const steps = run([down("HTTP 503 from /health (expected 200)"), up, up], {
			healthyThreshold: 2,
			unhealthyThreshold: 1
		});
		expect(steps.map(s => s.state.error)).toEqual([
			"HTTP 503 from /health (expected 200)",
			"HTTP 503 from /health (expected 200)",
			undefined
		]);
		expect("error" in steps[2].state).toBe(false);

		const healthy = run([up, up, down("boom"), up], twoAndThree);
		expect(healthy.map(s => s.state.error)).toEqual([undefined, undefined, "boom", undefined]);
	});

	it("names a failure that came without an error", () => {
		const [step] = run([{ ok: false, latencyMs: 0 }], twoAndThree);
		expect(step.state.error).toBe("check failed");
	});

	it.each([0, -3, NaN])("counts a threshold of %p as 1", threshold => {
		const thresholds = { healthyThreshold: threshold, unhealthyThreshold: threshold };
		expect(statuses(run([up, down()], thresholds))).toEqual(["healthy", "unhealthy"]);
	});

	it("does not change its input", () => {
		const prev = initialHealth();
		const copy = { ...prev };
		nextHealth(prev, down(), 1, twoAndThree);
		expect(prev).toEqual(copy);
	});
});

describe("publicHealth", () => {
	it("shows status, checkedAt, latencyMs and the error, not the counters", () => {
		const [step] = run([down()], { healthyThreshold: 1, unhealthyThreshold: 1 });
		expect(publicHealth(step.state)).toEqual({
			status: "unhealthy",
			checkedAt: 1000,
			latencyMs: 1,
			error: "connect ECONNREFUSED 127.0.0.1:5432"
		});
		expect(publicHealth(initialHealth())).toEqual({
			status: "unknown",
			checkedAt: null,
			latencyMs: null
		});
	});
});
