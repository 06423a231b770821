/**
 * How late this process's event loop runs: a timer that should fire every `interval` ms is
 * watched, and each time it (or anyone asking) comes later than that, the difference is lag,
 * time in which the process could do nothing at all (a long synchronous task, garbage
 * collection, a starved CPU). The gateway sheds requests while its lag is high, and the
 * inventory does not count the reports it could not hear while it stood still
 * (services/nodes/liveness.ts). The clock is injected (monotonic by default), so the arithmetic
 * is tested with plain numbers; `start` adds the timer.
 */
import { performance } from "perf_hooks";

/** How often the timer beats (ms). */
export const LAG_INTERVAL = 100;

/** Lateness below this is a timer's ordinary jitter, not lag (ms). */
export const LAG_TOLERANCE = 10;

/** How long a lag counts in `lag()` after the beat that measured it (ms). */
export const LAG_WINDOW = 1000;

export class LagMonitor {
	/** When the latest beat came (the monitor's clock, monotonic). */
	private last: number;
	/** Recent beats' lag, oldest first: what `lag()` takes its maximum over. */
	private readonly recent: Array<{ at: number; lag: number }> = [];

	constructor(
		private readonly clock: () => number = () => performance.now(),
		private readonly interval = LAG_INTERVAL,
		private readonly window = LAG_WINDOW
	) {
		this.last = clock();
	}

	/**
	 * A beat now: how much later than `interval` after the previous beat it came (0 within the
	 * tolerance). Each stretch of lag is reported by exactly one beat, whoever calls it.
	 */
	beat(): number {
		const now = this.clock();
		const late = now - this.last - this.interval;
		this.last = Math.max(this.last, now);
		const lag = late >= LAG_TOLERANCE ? late : 0;
		if (lag > 0) this.recent.push({ at: now, lag });
		while (this.recent.length && now - this.recent[0].at > this.window) this.recent.shift();
		return lag;
	}

	/** The largest lag measured within the window, or the lag of a beat overdue now. */
	lag(): number {
		const now = this.clock();
		let max = Math.max(0, now - this.last - this.interval);
		if (max < LAG_TOLERANCE) max = 0;
		for (const r of this.recent) if (now - r.at <= this.window) max = Math.max(max, r.lag);
		return max;
	}

	/**
	 * Beats every `interval` ms on an unref()ed timer, calling `onLag` with each beat's lag
	 * (ms) above the tolerance. Returns the function that stops it.
	 */
	start(onLag?: (lag: number) => void): () => void {
		this.last = this.clock();
		const timer = setInterval(() => {
			const lag = this.beat();
			if (lag > 0) onLag?.(lag);
		}, this.interval);
		timer.unref();
		return () => clearInterval(timer);
	}
}
