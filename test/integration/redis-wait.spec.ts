/**
 * ISA_REDIS_WAIT_REPLICAS over real redis-servers: a write is answered once a replica has it;
 * with no replica to confirm it, it is refused with 503 STORE_UNAVAILABLE within the wait's
 * timeout, saying why (it is on the primary all the same).
 */
import { ERR_STORE_UNAVAILABLE } from "../../services/shared/errors";
import { RedisStore } from "../../services/shared/store";
import { eventually } from "../helpers/cluster";
import { startRedis, type TestServer } from "../helpers/servers";

describe("Redis writes that wait for a replica", () => {
	let primary: TestServer;
	let replica: TestServer | null = null;
	const stores: RedisStore[] = [];
	const open = (url: string, replicas: number, timeoutMs = 300) => {
		const store = new RedisStore(url, { prefix: "wait", wait: { replicas, timeoutMs } });
		stores.push(store);
		return store;
	};

	beforeAll(async () => {
		primary = await startRedis();
	});
	afterAll(async () => {
		await Promise.all(stores.map(s => s.close()));
		await replica?.stop();
		await primary.stop();
	});

	it("refuses a write no replica confirmed, naming the setting, and keeps it on the primary", async () => {
		const store = open(primary.url, 1);
		const started = Date.now();
		const err = await store.put("docs", "a", { n: 1 }).catch(e => e);
		expect(err).toMatchObject({
			code: 503,
			type: ERR_STORE_UNAVAILABLE,
			data: { replicas: 0, wanted: 1 }
		});
		expect(err.message).toMatch(/reached 0 of the 1 replica\(s\) ISA_REDIS_WAIT_REPLICAS/);
		// Within the wait's timeout, not the store's.
		expect(Date.now() - started).toBeLessThan(2000);
		expect(await open(primary.url, 0).get("docs", "a")).toMatchObject({ value: { n: 1 } });
	});

	it("answers a write once a replica has it", async () => {
		replica = await startRedis(undefined, { replicaOf: primary.port });
		// WAIT answers as soon as the replica has the write; a loaded machine may take a while.
		const store = open(primary.url, 1, 5000);
		await eventually(
			async () => (await store.put("docs", "b", { n: 2 }).catch(() => 0)) > 0,
			10_000,
			"the replica in sync"
		);
		expect(await store.transact([], [{ collection: "docs", id: "c", value: { n: 3 } }])).toBe(
			true
		);
		expect(await open(replica.url, 0).get("docs", "c")).toMatchObject({ value: { n: 3 } });
	});
});
