/**
 * Request counts shared by every gateway of a cluster through Redis, without a round trip per
 * request. A gateway counts in its memory and sends what it counted every FLUSH_MS, every key in
 * one transaction, and hears back each key's total over all gateways. A request is decided on
 * that total plus what this gateway counted since: while a key is below NEAR of its limit, that
 * costs no wait at all; from there on each count goes to Redis at once and the request waits
 * for its place among all gateways' counts. So the limit holds to the request, except for what
 * other gateways counted below NEAR and have not sent yet: at most their last FLUSH_MS, and at
 * most LOCAL_SHARE of what was left per gateway for a burst. Once Redis has said a key is at
 * its limit, the rest of its window is refused here without asking again.
 *
 * A window is fixed and starts with a key's first request, as in rate-limiter-flexible: the
 * Redis key is created with the window's expiry (SET NX PX), counted (INCRBY) and asked how
 * long it has left (PTTL), in one MULTI, so no count lands in a key without an expiry. Each
 * answer tells a gateway where the shared window ends. A count Redis does not answer (down, or
 * slower than the client's command timeout) is kept as this gateway's own, so that in an
 * outage each gateway applies the limits by itself, as the library's insurance limiter does;
 * one that Redis took although the answer was lost then counts twice, which only errs towards
 * the limit. Counts not sent when their window ends belong to that window and are dropped.
 *
 * Measured (benchmark/gateway.bench.ts, the rate row): one Lua script per count, as the
 * library's RateLimiterRedis does, held a gateway to 40-57% of its throughput without limits.
 */
import type Redis from "ioredis";
import type { Count, Counter } from "./rate-limits";

/** ms between two sends of the counts. */
export const FLUSH_MS = 20;
/** The share of a limit from which each count waits for Redis. */
export const NEAR = 0.8;
/**
 * Of what is left of a limit, the part one gateway may count before Redis has it: a burst
 * that reaches several gateways at once is let through past the limit by at most this much
 * per gateway, and past it the counts wait for Redis as near the limit.
 */
export const LOCAL_SHARE = 0.05;

/** One key's counts in one window. */
interface KeyCount {
	/** When the window ends (ms), as Redis last said; until its first answer, a guess. */
	end: number;
	/** The total over all gateways, as Redis last answered (this gateway's sends included). */
	known: number;
	/** Counted here, not sent yet. */
	pending: number;
	/** Sent, not answered yet. */
	sent: number;
}

export class SharedCounts implements Counter {
	private readonly counts = new Map<string, KeyCount>();
	private timer: NodeJS.Timeout | null = null;

	constructor(
		private readonly redis: Redis,
		/** The Redis keys' prefix: the store's, and what is counted. */
		private readonly prefix: string,
		private readonly windowMs: number,
		private readonly now: () => number = Date.now
	) {}

	async hit(key: string, limit: number): Promise<Count> {
		const now = this.now();
		const c = this.current(key, now);
		c.pending++;
		// Sent with the next batch either way, which also forgets ended windows.
		this.schedule();
		const estimate = c.known + c.sent + c.pending;
		const unsent = c.sent + c.pending;
		const local =
			// Redis said the window is full: refused without asking again.
			c.known >= limit ||
			(estimate < limit * NEAR && unsent <= Math.max(1, (limit - c.known) * LOCAL_SHARE));
		if (local) return { consumed: estimate, msBeforeNext: c.end - now, window: c };
		// Its place among every gateway's counts, as Redis took them; this gateway's view
		// when Redis did not answer.
		const [total] = await this.send([[key, c]]);
		return {
			consumed: total ?? c.known + c.sent + c.pending,
			msBeforeNext: Math.max(0, c.end - this.now()),
			window: c
		};
	}

	async unhit(key: string, count: Count): Promise<void> {
		const c = this.counts.get(key);
		// Its window has ended (or the count is not one of ours): nothing to take back.
		if (!c || count.window !== c || this.now() >= c.end) return;
		c.pending--;
		this.schedule();
	}

	/** Sends what is pending now; the timer's sends stop. */
	async stop(): Promise<void> {
		if (this.timer) clearTimeout(this.timer);
		this.timer = null;
		await this.flush();
	}

	/** Every key's pending counts, in one transaction; windows that ended are forgotten. */
	async flush(): Promise<void> {
		this.timer = null;
		const now = this.now();
		const due: Array<[string, KeyCount]> = [];
		for (const [key, c] of this.counts) {
			if (now >= c.end) {
				// Kept until the answers still due for it have come.
				if (c.sent === 0) this.counts.delete(key);
			} else if (c.pending !== 0) due.push([key, c]);
		}
		await this.send(due);
	}

	private schedule(): void {
		if (!this.timer) this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
	}

	/**
	 * Sends these keys' pending counts; resolves to each key's total as Redis answered it
	 * (null: no answer, so this gateway keeps the count as its own). One connection answers in
	 * order, so a later answer of a key never says less than an earlier one of that key knew,
	 * unless its window ended in Redis: then the answer names a later end, and its total
	 * replaces what this gateway knew.
	 */
	private async send(due: Array<[string, KeyCount]>): Promise<Array<number | null>> {
		if (due.length === 0) return [];
		const batch = due.map(([key, c]) => {
			const n = c.pending;
			c.pending = 0;
			c.sent += n;
			return { redisKey: `${this.prefix}:${key}`, c, n };
		});
		let results: Array<[Error | null, unknown]> | null = null;
		if (this.redis.status === "ready") {
			const multi = this.redis.multi();
			for (const { redisKey, n } of batch) {
				multi.set(redisKey, 0, "PX", this.windowMs, "NX");
				multi.incrby(redisKey, n);
				multi.pttl(redisKey);
			}
			results = await multi.exec().catch(() => null);
		}
		const now = this.now();
		return batch.map(({ redisKey, c, n }, i) => {
			c.sent -= n;
			const [countErr, total] = results?.[3 * i + 1] ?? [null, null];
			const [ttlErr, ttl] = results?.[3 * i + 2] ?? [null, null];
			if (countErr || ttlErr || typeof total !== "number" || typeof ttl !== "number") {
				c.known += n;
				return null;
			}
			if (ttl < 0) {
				// A key without an expiry (not one of ours: each is made with one) would
				// count forever; it gets the window's.
				this.redis.pexpire(redisKey, this.windowMs).catch(() => undefined);
			}
			// PTTL is 0 in the key's last millisecond: that window ends now, not in a whole
			// window's time (taking 0 for "no expiry" once held a gateway in a full window
			// for the whole of the next one).
			const end = now + (ttl >= 0 ? ttl : this.windowMs);
			// Counted into a window that began after this gateway's: that one ended in Redis.
			if (end > c.end + this.windowMs / 2) c.known = total;
			else c.known = Math.max(c.known + n, total);
			c.end = end;
			return total;
		});
	}

	private current(key: string, now: number): KeyCount {
		let c = this.counts.get(key);
		if (!c || now >= c.end) {
			// A new object: answers still due for the old window change only that one.
			c = { end: now + this.windowMs, known: 0, pending: 0, sent: 0 };
			this.counts.set(key, c);
		}
		return c;
	}
}
