import {
	Blocks,
	makeCounter,
	RateLimiter,
	rateHeaders,
	subjectRates,
	tenantRates,
	verdict,
	type Count,
	type Counter
} from "../../../services/gateway/rate-limits";
import { RateLimitedError } from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";

/** Counts per key in one window that never ends, ms before it does fixed. */
function fakeCounter(msBeforeNext = 400): Counter & { counts: Map<string, number> } {
	const counts = new Map<string, number>();
	return {
		counts,
		async hit(key: string): Promise<Count> {
			counts.set(key, (counts.get(key) ?? 0) + 1);
			return { consumed: counts.get(key)!, msBeforeNext };
		},
		async unhit(key: string): Promise<void> {
			counts.set(key, (counts.get(key) ?? 0) - 1);
		}
	};
}

const settings = {
	enabled: true,
	tenant: { reads: 4, writes: 2 },
	subjectShare: 0.5,
	authFailures: 3
};
const alice: Principal = { sub: "alice", tenant: "acme", roles: ["viewer"] } as Principal;
const bob: Principal = { sub: "bob", tenant: "acme", roles: ["viewer"] } as Principal;

describe("rate-limits", () => {
	it("decides a count against a limit, with the RateLimit-* headers", () => {
		expect(verdict(3, { consumed: 3, msBeforeNext: 1 })).toEqual({
			allowed: true,
			limit: 3,
			remaining: 0,
			reset: 1
		});
		expect(verdict(3, { consumed: 5, msBeforeNext: 1500 })).toMatchObject({
			allowed: false,
			remaining: 0,
			reset: 2
		});
		expect(rateHeaders(verdict(10, { consumed: 4, msBeforeNext: 900 }))).toEqual({
			"RateLimit-Limit": "10",
			"RateLimit-Remaining": "6",
			"RateLimit-Reset": "1"
		});
	});

	it("takes a tenant's overrides over the defaults, and a subject's share of at least 1", () => {
		expect(tenantRates({ reads: 50, writes: 10 }, { writes: 3 })).toEqual({
			reads: 50,
			writes: 3
		});
		expect(tenantRates({ reads: 50, writes: 10 }, null)).toEqual({ reads: 50, writes: 10 });
		expect(subjectRates({ reads: 50, writes: 1 }, 0.5)).toEqual({ reads: 25, writes: 1 });
	});

	it("limits a subject to its share, and does not charge its tenant for what it refused", async () => {
		const requests = fakeCounter();
		const limiter = new RateLimiter(settings, { requests, failures: fakeCounter() });
		const outcomes = [];
		for (let i = 0; i < 4; i++) outcomes.push(await limiter.admit(alice, false, null));
		expect(outcomes.map(o => o.refusal === null)).toEqual([true, true, false, false]);
		const refusal = outcomes[2].refusal!;
		expect(refusal).toBeInstanceOf(RateLimitedError);
		expect(refusal).toMatchObject({
			code: 429,
			type: "RATE_LIMITED",
			data: { scope: "subject", key: "alice", kind: "reads", limit: 2, retryAfter: 1 }
		});
		expect(outcomes[2].headers).toMatchObject({ "RateLimit-Remaining": "0" });
		// alice's refused reads left the tenant's budget to bob.
		expect(requests.counts.get("r:t:acme")).toBe(2);
		const forBob = [
			await limiter.admit(bob, false, null),
			await limiter.admit(bob, false, null)
		];
		expect(forBob.every(o => o.refusal === null)).toBe(true);
		expect((await limiter.admit(bob, false, null)).refusal?.data).toMatchObject({
			scope: "subject"
		});
		// Writes are counted apart.
		expect((await limiter.admit(alice, true, null)).refusal).toBeNull();
	});

	it("refuses past the tenant's limit, its record's override included", async () => {
		const limiter = new RateLimiter(
			{ ...settings, subjectShare: 1 },
			{ requests: fakeCounter(), failures: fakeCounter() }
		);
		const first = await limiter.admit(alice, true, { writes: 1 });
		expect(first.refusal).toBeNull();
		expect(first.headers).toEqual({
			"RateLimit-Limit": "1",
			"RateLimit-Remaining": "0",
			"RateLimit-Reset": "1"
		});
		expect((await limiter.admit(bob, true, { writes: 1 })).refusal?.data).toMatchObject({
			scope: "tenant",
			key: "acme",
			kind: "writes",
			limit: 1
		});
	});

	it("blocks an address past its failed authentications until the window ends", async () => {
		let now = 1_000_000;
		const limiter = new RateLimiter(
			settings,
			{ requests: fakeCounter(), failures: fakeCounter(30_000) },
			() => now
		);
		for (let i = 0; i < 3; i++) expect(await limiter.failed("10.0.0.9")).toBeNull();
		expect(limiter.blocked("10.0.0.9")).toBeNull();
		const refusal = await limiter.failed("10.0.0.9");
		expect(refusal?.data).toMatchObject({
			scope: "address",
			key: "10.0.0.9",
			kind: "authentication failures",
			limit: 3,
			window: 60,
			retryAfter: 30
		});
		expect(limiter.blocked("10.0.0.9")?.data).toMatchObject({ retryAfter: 30 });
		expect(limiter.blocked("10.0.0.8")).toBeNull();
		expect(await limiter.failed(null)).toBeNull();
		now += 30_000;
		expect(limiter.blocked("10.0.0.9")).toBeNull();
	});

	it("keeps a bounded number of blocks, live ones over expired ones", () => {
		const blocks = new Blocks(2);
		blocks.block("a", 100, 0);
		blocks.block("b", 10, 0);
		blocks.block("c", 100, 50);
		expect([blocks.blockedFor("a", 50), blocks.blockedFor("b", 50)]).toEqual([50, 0]);
		blocks.block("d", 100, 50);
		expect(blocks.blockedFor("a", 50)).toBe(0);
		expect(blocks.blockedFor("d", 50)).toBe(50);
	});

	it("counts in memory without a Redis store, one window per key", async () => {
		const counter = makeCounter(null, "test", 1);
		expect((await counter.hit("k", 10)).consumed).toBe(1);
		const second = await counter.hit("k", 10);
		expect(second.consumed).toBe(2);
		expect(second.msBeforeNext).toBeLessThanOrEqual(1000);
		expect((await counter.hit("other", 10)).consumed).toBe(1);
		// A count taken back (a request another count refused).
		await counter.unhit("k", second);
		expect((await counter.hit("k", 10)).consumed).toBe(2);
	});
});
