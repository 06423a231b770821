/**
 * How many requests each key (a tenant) sent lately: the count of the current window plus the
 * one before it, so it covers one to two windows and costs two map updates per request. Used
 * to tell a light tenant beside a busy one (scheduler/lifecycle.ts), where what is in flight
 * at this moment says little: a flood held back by the gateway may have nothing inside now.
 */
export class RecentCounts {
	private current = new Map<string, number>();
	private previous = new Map<string, number>();
	private since: number;

	constructor(
		private readonly windowMs = 1000,
		private readonly now: () => number = Date.now
	) {
		this.since = now();
	}

	add(key: string): void {
		this.roll();
		this.current.set(key, (this.current.get(key) ?? 0) + 1);
	}

	/** The key's requests in the last one to two windows. */
	count(key: string): number {
		this.roll();
		return (this.current.get(key) ?? 0) + (this.previous.get(key) ?? 0);
	}

	/**
	 * The highest count of any other key (0 when there is none): one pass over the keys of the
	 * last two windows, those that sent anything lately.
	 */
	busiestOther(key: string): number {
		this.roll();
		let most = 0;
		for (const window of [this.current, this.previous])
			for (const other of window.keys())
				if (other !== key) most = Math.max(most, this.count(other));
		return most;
	}

	private roll(): void {
		const elapsed = this.now() - this.since;
		if (elapsed < this.windowMs) return;
		// A window with nothing in between leaves no previous one.
		this.previous = elapsed < 2 * this.windowMs ? this.current : new Map();
		this.current = new Map();
		this.since += elapsed - (elapsed % this.windowMs);
	}
}
