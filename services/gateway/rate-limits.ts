/**
 * The gateways' rate limits: reads and writes per tenant and per token subject, and failed
 * authentications per source address.
 *
 * The counts are kept where every gateway of the cluster sees them: in Redis when the store is
 * Redis, so that N gateways together let a tenant through at its limit, not N times it. Request
 * counts are sent in batches every few ms and waited for only near a limit (shared-counts.ts);
 * failed authentications, rare, with rate-limiter-flexible's RateLimiterRedis (one atomic Lua
 * script per count). If Redis does not answer (RATE_STORE_TIMEOUT_MS) a count stays in this
 * process's memory (for the library, its insurance limiter): a Redis outage neither stops all
 * traffic nor lifts the limits; each gateway then applies them by itself. With the embedded
 * store there is one node, so one gateway: the counts are in its memory (RateLimiterMemory),
 * which is exact and costs no database write per request.
 *
 * Counting is a fixed window (RATE_WINDOW_S for requests) that starts with a key's first
 * request, in Redis as in memory, and a tenant may send its whole second's budget at once
 * (that is the burst). A request refused by its subject's limit has its tenant's count given
 * back, so one runaway token cannot use up what its tenant's other tokens are left.
 *
 * Failed authentications (a token that does not verify) are counted per address over
 * AUTH_WINDOW_S. Past the limit the address is blocked until the window ends, valid token or
 * not, in every gateway that has seen one of its failures past the limit: otherwise an attacker
 * would still tell a right guess (200) from a wrong one (429). The block is kept in memory, so a
 * request that authenticates costs no count at all.
 */
import Redis, { type RedisOptions } from "ioredis";
import { connectRedis, redisTarget } from "../shared/store/redis-target";
import {
	RateLimiterMemory,
	RateLimiterRedis,
	type RateLimiterAbstract
} from "rate-limiter-flexible";
import type { RateLimitSettings, RequestRates } from "../shared/env";
import { RateLimitedError, type RateLimit } from "../shared/errors";
import type { Principal } from "../shared/principal";
import { SharedCounts } from "./shared-counts";

/** Seconds of one window of request counts. */
export const RATE_WINDOW_S = 1;
/** Seconds of one window of failed authentications. */
export const AUTH_WINDOW_S = 60;
/** ms a count waits for Redis before this process's memory counts instead. */
export const RATE_STORE_TIMEOUT_MS = 500;
/** Blocked addresses one gateway remembers at most; the oldest go first. */
export const MAX_BLOCKED = 100_000;

/** How many events a key has had in its current window, and when that window ends. */
export interface Count {
	consumed: number;
	msBeforeNext: number;
	/** The counter's own mark of the window counted in, for unhit. */
	window?: object;
}

/** Counts one more event under a key in its current window. */
export interface Counter {
	/** `limit`: the key's limit, for a counter that counts more exactly near it. */
	hit(key: string, limit: number): Promise<Count>;
	/**
	 * Takes back the event `count` answered (a request refused by another count, see
	 * RateLimiter.admit); nothing once the window it was counted in has ended.
	 */
	unhit(key: string, count: Count): Promise<void>;
}

/** Where the counts are: shared in Redis, or in this process. */
export type CountStore = { redis: Redis; prefix: string } | null;

/** Counts that are never refused by the library itself: the limit is decided here. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

function counter(limiter: RateLimiterAbstract): Counter {
	return {
		async hit(key) {
			const res = await limiter.consume(key);
			return { consumed: res.consumedPoints, msBeforeNext: res.msBeforeNext };
		},
		async unhit(key) {
			await limiter.reward(key, 1);
		}
	};
}

/**
 * The gateway's own small Redis client for what the cluster's gateways share per request (rate
 * counts, used event tickets), with the store's URL and connection options (credentials, TLS):
 * it never queues a command while disconnected and waits RATE_STORE_TIMEOUT_MS at most, so a
 * count or a ticket falls back to this process at once rather than holding the request. `log`
 * is told when they move to this process and back.
 */
export function sharedRedis(
	url: string,
	connection: RedisOptions,
	log: { warn(m: string): void; info(m: string): void }
): Redis {
	const redis = connectRedis(redisTarget(url), {
		...connection,
		enableOfflineQueue: false,
		maxRetriesPerRequest: 0,
		retryStrategy: times => Math.min(times * 50, 500),
		connectTimeout: 3000,
		commandTimeout: RATE_STORE_TIMEOUT_MS
	});
	let down = false;
	redis.on("error", (err: Error) => {
		if (down) return;
		down = true;
		log.warn(
			`Rate limit counts and used event tickets are kept in this process until Redis answers: ${err.message}`
		);
	});
	redis.on("ready", () => {
		if (!down) return;
		down = false;
		log.info("Rate limit counts and used event tickets are shared through Redis again.");
	});
	return redis;
}

/** The request counter over windows of `window` seconds, in `store` (shared-counts.ts). */
export function requestCounter(
	store: CountStore,
	window: number
): Counter & { stop?(): Promise<void> } {
	if (!store) return makeCounter(null, "requests", window);
	return new SharedCounts(store.redis, `${store.prefix}:rate:requests`, window * 1000);
}

/** A counter over windows of `window` seconds, in `store` (see the module's comment). */
export function makeCounter(store: CountStore, name: string, window: number): Counter {
	const memory = new RateLimiterMemory({ points: UNBOUNDED, duration: window });
	if (!store) return counter(memory);
	return counter(
		new RateLimiterRedis({
			storeClient: store.redis,
			keyPrefix: `${store.prefix}:rate:${name}`,
			points: UNBOUNDED,
			duration: window,
			// A connection that is down is not waited for: memory counts at once.
			rejectIfRedisNotReady: true,
			insuranceLimiter: memory
		})
	);
}

/** The answer to one count against one limit. */
export interface Verdict {
	allowed: boolean;
	limit: number;
	remaining: number;
	/** Whole seconds until the window ends (at least 1). */
	reset: number;
}

export function verdict(limit: number, count: Count): Verdict {
	return {
		allowed: count.consumed <= limit,
		limit,
		remaining: Math.max(0, limit - count.consumed),
		reset: Math.max(1, Math.ceil(count.msBeforeNext / 1000))
	};
}

/** The IETF draft's RateLimit-* headers of the verdict that binds (the least remaining). */
export function rateHeaders(v: Verdict): Record<string, string> {
	return {
		"RateLimit-Limit": String(v.limit),
		"RateLimit-Remaining": String(v.remaining),
		"RateLimit-Reset": String(v.reset)
	};
}

/** A tenant's rates: its record's overrides (`rateLimits`) over the defaults. */
export function tenantRates(
	defaults: RequestRates,
	override: Partial<RequestRates> | null | undefined
): RequestRates {
	return {
		reads: override?.reads ?? defaults.reads,
		writes: override?.writes ?? defaults.writes
	};
}

/** One token subject's share of its tenant's rates; at least one request per window. */
export function subjectRates(rates: RequestRates, share: number): RequestRates {
	return {
		reads: Math.max(1, Math.floor(rates.reads * share)),
		writes: Math.max(1, Math.floor(rates.writes * share))
	};
}

/** Addresses blocked until a time (ms), bounded in number. */
export class Blocks {
	private readonly until = new Map<string, number>();

	constructor(private readonly max = MAX_BLOCKED) {}

	block(address: string, until: number, now: number): void {
		this.until.delete(address);
		this.until.set(address, until);
		if (this.until.size <= this.max) return;
		for (const [key, end] of this.until) if (end <= now) this.until.delete(key);
		// Still full of live blocks: the oldest block goes (a Map keeps insertion order).
		while (this.until.size > this.max) this.until.delete(this.until.keys().next().value!);
	}

	/** ms the address is still blocked for; 0 when it is not. */
	blockedFor(address: string, now: number): number {
		const end = this.until.get(address);
		if (end === undefined) return 0;
		if (end > now) return end - now;
		this.until.delete(address);
		return 0;
	}
}

/** What `admit` says: the headers to send, and the refusal when over a limit. */
export interface Admission {
	headers: Record<string, string>;
	refusal: RateLimitedError | null;
}

export class RateLimiter {
	private readonly blocks = new Blocks();

	constructor(
		private readonly settings: RateLimitSettings,
		private readonly counters: { requests: Counter; failures: Counter },
		private readonly now: () => number = Date.now
	) {}

	/**
	 * Counts a request of `user` (a write or a read), first against its subject's limit, then,
	 * if that let it through, against its tenant's (`override`: the tenant record's rates).
	 */
	async admit(
		user: Principal,
		write: boolean,
		override: Partial<RequestRates> | null
	): Promise<Admission> {
		const kind = write ? "writes" : "reads";
		const tenant = tenantRates(this.settings.tenant, override);
		const subject = subjectRates(tenant, this.settings.subjectShare);
		const tag = write ? "w" : "r";
		const checks: Array<{
			scope: "subject" | "tenant";
			key: string;
			id: string;
			limit: number;
		}> = [];
		// A share of 100% makes the subject's limit the tenant's: counting it twice is waste.
		if (subject[kind] < tenant[kind])
			checks.push({
				scope: "subject",
				key: `${tag}:s:${user.tenant}:${user.sub}`,
				id: user.sub,
				limit: subject[kind]
			});
		checks.push({
			scope: "tenant",
			key: `${tag}:t:${user.tenant}`,
			id: user.tenant,
			limit: tenant[kind]
		});
		// Counted together, one round trip to Redis rather than one after the other; what a
		// refusal by the subject's count counted against its tenant is given back, so that one
		// runaway token does not use up its tenant's budget (for a moment the tenant's count
		// is one higher than it should be).
		const counts = await Promise.all(
			checks.map(c => this.counters.requests.hit(c.key, c.limit))
		);
		let binding: Verdict | null = null;
		for (const [i, check] of checks.entries()) {
			const v = verdict(check.limit, counts[i]);
			if (!binding || v.remaining < binding.remaining) binding = v;
			if (!v.allowed) {
				for (const [j, later] of checks.entries())
					if (j > i) await this.counters.requests.unhit(later.key, counts[j]);
				return {
					headers: rateHeaders(v),
					refusal: this.refusal(check.scope, check.id, kind, v, RATE_WINDOW_S)
				};
			}
		}
		return { headers: rateHeaders(binding!), refusal: null };
	}

	/** The refusal of a blocked address (429), or null. */
	blocked(address: string | null): RateLimitedError | null {
		if (address === null) return null;
		const ms = this.blocks.blockedFor(address, this.now());
		if (ms === 0) return null;
		return this.failureRefusal(address, Math.ceil(ms / 1000));
	}

	/**
	 * Counts a failed authentication from `address`; past the limit the address is blocked
	 * until its window ends, and the refusal (429) is returned to answer instead of the 401.
	 */
	async failed(address: string | null): Promise<RateLimitedError | null> {
		if (address === null) return null;
		const limit = this.settings.authFailures;
		const v = verdict(limit, await this.counters.failures.hit(address, limit));
		if (v.allowed) return null;
		this.blocks.block(address, this.now() + v.reset * 1000, this.now());
		return this.failureRefusal(address, v.reset);
	}

	private failureRefusal(address: string, retryAfter: number): RateLimitedError {
		return new RateLimitedError({
			scope: "address",
			key: address,
			kind: "authentication failures",
			limit: this.settings.authFailures,
			window: AUTH_WINDOW_S,
			retryAfter
		});
	}

	private refusal(
		scope: RateLimit["scope"],
		key: string,
		kind: RateLimit["kind"],
		v: Verdict,
		window: number
	): RateLimitedError {
		return new RateLimitedError({
			scope,
			key,
			kind,
			limit: v.limit,
			window,
			retryAfter: v.reset
		});
	}
}
