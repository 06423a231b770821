/**
 * How many requests each key (a tenant) sent lately: the count of its current window plus the
 * one before it, so it covers one to two windows. A key's windows start with its first request
 * and follow on from there; a key with nothing in its last two windows is forgotten. Used by
 * the gateway's fair share (gateway/fair-share.ts) and to tell a light tenant beside a busy one
 * (scheduler/lifecycle.ts): what is in flight at this moment says little, since a flood held
 * back, or waiting out its Retry-After, may have nothing inside now.
 */
interface Windows {
	current: number;
	previous: number;
	/** When the current window began (ms). */
	start: number;
}

export class RecentCounts {
	private readonly keys = new Map<string, Windows>();

	constructor(
		private readonly windowMs = 1000,
		private readonly now: () => number = Date.now
	) {}

	add(key: string): void {
		let w = this.rolled(key);
		if (!w) {
			w = { current: 0, previous: 0, start: this.now() };
			this.keys.set(key, w);
		}
		w.current++;
	}

	/** The key's requests in the last one to two windows. */
	count(key: string): number {
		const w = this.rolled(key);
		return w ? w.current + w.previous : 0;
	}

	/** The highest count of any other key (0 when there is none). */
	busiestOther(key: string): number {
		let most = 0;
		for (const other of [...this.keys.keys()])
			if (other !== key) most = Math.max(most, this.count(other));
		return most;
	}

	/** The counts of all keys together. */
	total(): number {
		let all = 0;
		for (const key of [...this.keys.keys()]) all += this.count(key);
		return all;
	}

	/** The key's windows moved on to now; undefined once both are empty. */
	private rolled(key: string): Windows | undefined {
		const w = this.keys.get(key);
		if (!w) return undefined;
		const windows = Math.floor((this.now() - w.start) / this.windowMs);
		if (windows > 0) {
			w.previous = windows === 1 ? w.current : 0;
			w.current = 0;
			w.start += windows * this.windowMs;
		}
		if (w.current + w.previous > 0) return w;
		this.keys.delete(key);
		return undefined;
	}
}
