import { TenantRates, type RateOverride } from "../../../services/gateway/tenant-rates";

describe("tenant-rates", () => {
	it("fetches a tenant once, answers from memory, and refreshes behind a stale entry", async () => {
		let now = 0;
		let value: RateOverride = { reads: 5 };
		const calls: string[] = [];
		const cache = new TenantRates(
			async tenant => {
				calls.push(tenant);
				return value;
			},
			5000,
			() => now
		);
		const [a, b] = [cache.get("acme"), cache.get("acme")];
		expect(await a).toEqual({ reads: 5 });
		expect(await b).toEqual({ reads: 5 });
		expect(calls).toEqual(["acme"]);
		now = 4999;
		expect(cache.get("acme")).toEqual({ reads: 5 });
		value = { reads: 9 };
		now = 5000;
		// Stale: the old value at once, the new one fetched behind it.
		expect(cache.get("acme")).toEqual({ reads: 5 });
		await new Promise(r => setImmediate(r));
		expect(cache.get("acme")).toEqual({ reads: 9 });
		expect(calls).toEqual(["acme", "acme"]);
	});

	it("keeps what it knew (nothing: the defaults) when the call fails", async () => {
		const cache = new TenantRates(() => Promise.reject(new Error("no tenants service")));
		expect(await cache.get("acme")).toBeNull();
	});

	it("keeps a bounded number of tenants", async () => {
		const calls: string[] = [];
		const cache = new TenantRates(
			async tenant => {
				calls.push(tenant);
				return null;
			},
			5000,
			() => 0,
			2
		);
		for (const t of ["a", "b", "c", "a"]) await cache.get(t);
		expect(calls).toEqual(["a", "b", "c", "a"]);
	});
});
