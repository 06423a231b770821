/**
 * What a replica does after its process ended, by its workload's `restart` block: start again
 * after an exponential, jittered backoff (1 s, 2 s, 4 s… at most 5 min by default), or end
 * `failed`/`stopped` once the policy says so or `maxRestarts` is spent. Pure, so that the
 * delays and the decisions are unit-tested without processes or timers.
 */
import type { ReplicaSpec } from "../../services/shared/types";

export interface Backoff {
	/** ms before the first restart; each further one doubles it. */
	base: number;
	/** The longest wait, in ms. */
	cap: number;
	/**
	 * How far a delay is spread (0.2: ±20%), so that replicas that failed together (a node's
	 * missing library, a dependency down) do not all start again in the same instant.
	 */
	jitter: number;
}

export const DEFAULT_BACKOFF: Backoff = { base: 1000, cap: 300_000, jitter: 0.2 };

/**
 * Delay before restart number `restarts + 1`: base·2^restarts at most cap, spread by ±jitter
 * (`random` in [0, 1), 0.5 spreads nothing), and never below base nor above cap.
 */
export function backoffDelay(
	restarts: number,
	backoff: Backoff = DEFAULT_BACKOFF,
	random: () => number = Math.random
): number {
	// 2 ** 60 already passes any cap; a larger exponent would only overflow to Infinity.
	const plain = Math.min(backoff.cap, backoff.base * 2 ** Math.min(restarts, 60));
	const spread = plain * (1 + backoff.jitter * (2 * random() - 1));
	return Math.round(Math.min(backoff.cap, Math.max(backoff.base, spread)));
}

/** After an exit: start again (attempt number `attempt`), or end in `state`. */
export type AfterExit =
	| { restart: true; attempt: number; of: number | null }
	| { restart: false; state: "failed" | "stopped"; reason: string };

/**
 * What the policy says after an exit. `restarts`: restarts made so far; `failure`: a non-zero
 * exit, a signal or a failed spawn. maxRestarts 0 is unlimited.
 */
export function afterExit(
	restart: ReplicaSpec["restart"],
	restarts: number,
	reason: string,
	failure: boolean
): AfterExit {
	const again = restart.policy === "always" || (restart.policy === "on-failure" && failure);
	if (!again) return { restart: false, state: failure ? "failed" : "stopped", reason };
	if (restart.maxRestarts > 0 && restarts >= restart.maxRestarts)
		return {
			restart: false,
			state: "failed",
			reason: `${reason}; gave up after ${restarts} restart${restarts === 1 ? "" : "s"}`
		};
	return { restart: true, attempt: restarts + 1, of: restart.maxRestarts || null };
}

/** "exited with code 1; restarting in 4 s (restart 3 of 5)". */
export function restartReason(
	reason: string,
	delay: number,
	attempt: number,
	of: number | null
): string {
	return `${reason}; restarting in ${formatDelay(delay)} (restart ${attempt}${of ? ` of ${of}` : ""})`;
}

/** 250 → "250 ms", 4000 → "4 s", 1500 → "1.5 s", 150000 → "2.5 min". */
export function formatDelay(ms: number): string {
	if (ms < 1000) return `${ms} ms`;
	if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
	return `${Number((ms / 60_000).toFixed(1))} min`;
}
