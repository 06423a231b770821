/**
 * How busy this process's event loop has been lately: the share of the last `window` ms it
 * spent running code rather than waiting for I/O (Node's event-loop utilization, ELU). Lag
 * (lag.ts) says the loop stood still; utilization says it is close to standing still: at 100%
 * every request waits behind the ones ahead of it, although no single task is long. The gateway
 * holds back the tenants that send more than their part while the loop is this busy
 * (gateway/overload.ts), so that a flood fills the CPU only when no one else needs it.
 *
 * The reading is injected (Node's cumulative idle and active ms by default), so the arithmetic
 * is tested with plain numbers; `start` adds the timer that samples it.
 */
import { performance } from "perf_hooks";

/** ms between two samples. */
export const UTILIZATION_INTERVAL = 100;

/** ms of samples that `utilization()` averages over. */
export const UTILIZATION_WINDOW = 1000;

/** Cumulative ms the loop spent idle and active since the process started. */
export interface LoopTimes {
	idle: number;
	active: number;
}

const nodeLoopTimes = (): LoopTimes => {
	const { idle, active } = performance.eventLoopUtilization();
	return { idle, active };
};

export class UtilizationMonitor {
	private last: LoopTimes;
	/** The recent samples' deltas, oldest first, at most window / interval of them. */
	private readonly recent: LoopTimes[] = [];
	private readonly size: number;

	constructor(
		private readonly read: () => LoopTimes = nodeLoopTimes,
		interval = UTILIZATION_INTERVAL,
		window = UTILIZATION_WINDOW
	) {
		this.last = read();
		this.size = Math.max(1, Math.round(window / interval));
	}

	/** Takes a sample: what the loop did since the previous one. */
	sample(): void {
		const now = this.read();
		this.recent.push({
			idle: now.idle - this.last.idle,
			active: now.active - this.last.active
		});
		if (this.recent.length > this.size) this.recent.shift();
		this.last = now;
	}

	/** The share (0 to 1) of the window the loop was active; 0 before the first sample. */
	utilization(): number {
		let idle = 0;
		let active = 0;
		for (const s of this.recent) {
			idle += s.idle;
			active += s.active;
		}
		return idle + active > 0 ? active / (idle + active) : 0;
	}

	/** Samples every `interval` ms on an unref()ed timer. Returns the function that stops it. */
	start(interval = UTILIZATION_INTERVAL): () => void {
		this.last = this.read();
		const timer = setInterval(() => this.sample(), interval);
		timer.unref();
		return () => clearInterval(timer);
	}
}
