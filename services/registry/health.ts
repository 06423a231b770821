/**
 * The health of a checked target as a pure rise/fall state machine (HAProxy's `rise`/`fall`,
 * Kubernetes' success/failure thresholds): one check result in, the next state out, so that a
 * single slow answer does not flip a resource and the registry can emit an event on `changed`.
 *
 * Choices:
 * - A target starts "unknown" and leaves it by the same thresholds as any other status: it
 *   becomes healthy after `healthyThreshold` consecutive successes, unhealthy after
 *   `unhealthyThreshold` consecutive failures. With a threshold of 1 the first result decides.
 *   Until then it stays "unknown" rather than guessing, since nothing has been shown yet.
 * - Only consecutive results count: a success resets the failure count and the other way round,
 *   so healthy → unhealthy takes `unhealthyThreshold` failures in a row, and back likewise.
 * - Thresholds below 1 (or not numbers) count as 1: every result would otherwise decide or none.
 * - `latencyMs` and `checkedAt` are those of the latest check, failed or not (a failed check's
 *   latency shows how long it took to fail, e.g. the timeout).
 * - `error` is the latest failure's. A success drops it, except while the target is still
 *   unhealthy, where it keeps saying why.
 */
import type { CheckResult } from "./checkers/base";

export type HealthStatus = "healthy" | "unhealthy" | "unknown";

export interface HealthState {
	status: HealthStatus;
	checkedAt: number | null;
	latencyMs: number | null;
	error?: string;
	/** Consecutive successful checks up to now (0 after a failure). */
	successes: number;
	/** Consecutive failed checks up to now (0 after a success). */
	failures: number;
}

export interface HealthThresholds {
	healthyThreshold: number;
	unhealthyThreshold: number;
}

/** The `health` of a resource or endpoint in API answers. */
export interface PublicHealth {
	status: HealthStatus;
	checkedAt: number | null;
	latencyMs: number | null;
	error?: string;
}

export function initialHealth(): HealthState {
	return { status: "unknown", checkedAt: null, latencyMs: null, successes: 0, failures: 0 };
}

function atLeastOne(threshold: number): number {
	return Number.isFinite(threshold) ? Math.max(1, Math.floor(threshold)) : 1;
}

/** The state after `result`, checked at `at` (ms since the epoch); `changed`: the status moved. */
export function nextHealth(
	prev: HealthState,
	result: CheckResult,
	at: number,
	thresholds: HealthThresholds
): { state: HealthState; changed: boolean } {
	const successes = result.ok ? prev.successes + 1 : 0;
	const failures = result.ok ? 0 : prev.failures + 1;
	let status = prev.status;
	if (result.ok && successes >= atLeastOne(thresholds.healthyThreshold)) status = "healthy";
	if (!result.ok && failures >= atLeastOne(thresholds.unhealthyThreshold)) status = "unhealthy";
	const error = result.ok
		? status === "unhealthy"
			? prev.error
			: undefined
		: (result.error ?? "check failed");
	const state: HealthState = {
		status,
		checkedAt: at,
		latencyMs: result.latencyMs,
		successes,
		failures
	};
	if (error !== undefined) state.error = error;
	return { state, changed: status !== prev.status };
}

/** What the API shows: the state without the counters. */
export function publicHealth(state: HealthState): PublicHealth {
	const { status, checkedAt, latencyMs, error } = state;
	return error === undefined
		? { status, checkedAt, latencyMs }
		: { status, checkedAt, latencyMs, error };
}
