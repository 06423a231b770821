import Redis from "ioredis";
import { NEAR, SharedCounts } from "../../services/gateway/shared-counts";
import { redisSpentTickets } from "../../services/gateway/ticket";
import { startRedis, type TestServer } from "../helpers/servers";

/** Windows this long (ms): the tests wait for one to end. */
const WINDOW = 1000;

/** Two gateways' counts over one redis-server, each with its own connection. */
describe("SharedCounts over a real redis-server", () => {
	let redis: TestServer;
	const clients: Redis[] = [];
	const connect = () => {
		const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
		clients.push(client);
		return new Promise<Redis>(resolve => client.once("ready", () => resolve(client)));
	};
	const counts = async (window = WINDOW) =>
		new SharedCounts(await connect(), "test:rate", window);
	const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));
	const ready = (client: Redis) =>
		new Promise<void>(resolve =>
			client.status === "ready" ? resolve() : client.once("ready", () => resolve())
		);

	beforeAll(async () => {
		redis = await startRedis();
	});
	afterAll(async () => {
		for (const c of clients) c.disconnect();
		await redis.stop();
	});

	it("answers below the limit at once and sends the counts in batches, with the window's expiry", async () => {
		const a = await counts();
		const answers = [];
		for (let i = 0; i < 10; i++) answers.push(await a.hit("t:acme", 1000));
		expect(answers.map(c => c.consumed)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
		expect(answers[0].msBeforeNext).toBeGreaterThan(WINDOW - 50);
		await a.flush();
		expect(await clients[0].get("test:rate:t:acme")).toBe("10");
		const ttl = await clients[0].pttl("test:rate:t:acme");
		expect(ttl).toBeGreaterThan(0);
		expect(ttl).toBeLessThanOrEqual(WINDOW);
	});

	it("holds a limit across two gateways to the request once near it", async () => {
		// A window longer than the test, however slow the machine.
		const [a, b] = [await counts(60_000), await counts(60_000)];
		const limit = 100;
		let allowed = 0;
		// Both gateways count at once, far past the limit, a few at a time, in one window.
		for (let round = 0; round < 60; round++) {
			const answers = await Promise.all([a, b, a, b].map(g => g.hit("t:busy", limit)));
			allowed += answers.filter(c => c.consumed <= limit).length;
			if (round % 10 === 0) await Promise.all([a.flush(), b.flush()]);
		}
		// Below NEAR a gateway may miss what the other sent in its last batch, not more.
		expect(allowed).toBeGreaterThanOrEqual(limit * NEAR);
		expect(allowed).toBeLessThanOrEqual(limit * 1.1);
	});

	it("refuses the rest of a full window without asking Redis for each request", async () => {
		const a = await counts(60_000);
		const client = clients.at(-1)!;
		const answers = [];
		for (let i = 0; i < 6; i++) answers.push(await a.hit("t:full", 5));
		expect(answers.map(c => c.consumed <= 5)).toEqual([true, true, true, true, true, false]);
		const multi = jest.spyOn(client, "multi");
		for (let i = 0; i < 20; i++) expect((await a.hit("t:full", 5)).consumed).toBeGreaterThan(5);
		expect(multi).not.toHaveBeenCalled();
		// The refused ones are still counted, in one batch.
		await a.flush();
		expect(multi).toHaveBeenCalledTimes(1);
		expect(await client.get("test:rate:t:full")).toBe("26");
	});

	it("gives a count back, and starts a new window once the shared one ends", async () => {
		const [a, b] = [await counts(), await counts()];
		await a.hit("t:back", 10);
		const second = await a.hit("t:back", 10);
		await a.unhit("t:back", second);
		expect((await a.hit("t:back", 10)).consumed).toBe(2);
		await a.flush();
		// The other gateway counts into the same window: Redis says where it ends.
		expect((await b.hit("t:back", 10)).consumed).toBe(1);
		await b.flush();
		expect((await b.hit("t:back", 10)).consumed).toBe(4);
		await sleep(WINDOW + 50);
		// A count of the window that ended is not taken out of the new one.
		await a.unhit("t:back", second);
		expect((await a.hit("t:back", 10)).consumed).toBe(1);
		await a.flush();
		expect(await clients.at(-1)!.get("test:rate:t:back")).toBe("1");
	});

	it("keeps a used event-stream ticket for all gateways, until the ticket expires", async () => {
		const [a, b] = [
			redisSpentTickets(await connect(), "test"),
			redisSpentTickets(await connect(), "test")
		];
		expect(await a.take("jti-1", 300)).toBe(true);
		expect(await b.take("jti-1", 300)).toBe(false);
		expect(await a.take("jti-1", 300)).toBe(false);
		expect(await b.take("jti-2", 300)).toBe(true);
		const ttl = await clients.at(-1)!.pttl("test:ticket:jti-1");
		expect(ttl).toBeGreaterThan(0);
		expect(ttl).toBeLessThanOrEqual(300);
		// Gone with the ticket: nothing is kept for tickets that can no longer be used.
		await sleep(350);
		expect(await clients.at(-1)!.exists("test:ticket:jti-1")).toBe(0);
	});

	it("counts by itself while Redis is down, and shares again once it is back", async () => {
		const a = await counts();
		const client = clients.at(-1)!;
		await redis.stop();
		const limit = 10;
		const answers = [];
		for (let i = 0; i < 12; i++) answers.push(await a.hit("t:outage", limit));
		// Neither stopped nor lifted: this gateway's own counts hold the limit.
		expect(answers.filter(c => c.consumed <= limit)).toHaveLength(limit);
		await redis.restart();
		await ready(client);
		await sleep(WINDOW + 50);
		await a.hit("t:outage", limit);
		await a.flush();
		expect(await client.get("test:rate:t:outage")).toBe("1");
	});
});
