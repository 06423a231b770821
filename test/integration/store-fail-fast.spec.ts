/**
 * The store failing fast, with real processes: a control node (dist/bin/isa.js) on a
 * redis-server that fills up, freezes (SIGSTOP: it accepts connections and never answers) and
 * dies. The API answers 503 within about one ISA_STORE_TIMEOUT (2 s), /ready within its
 * probe's 3 s, and both come back by themselves when Redis does.
 */
import fs from "fs";
import os from "os";
import path from "path";
import Redis from "ioredis";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	startNode
} from "../helpers/cluster";
import { startRedis } from "../helpers/servers";
import { StoreRefusedError } from "../../services/shared/errors";
import { RedisStore } from "../../services/shared/store";

jest.setTimeout(90_000);

/** The README's default ISA_STORE_TIMEOUT, and the k8s readiness probe's timeout. */
const STORE_TIMEOUT = 2000;
const PROBE_TIMEOUT = 3000;
const OUT_OF_MEMORY =
	"The store refused the write: Redis is out of memory (maxmemory reached). Free memory in Redis or raise its maxmemory; nothing was written";

/** A mutation refused because the store is down: the audit's write-ahead entry failed first. */
const storeDown = {
	code: 503,
	type: "AUDIT_UNAVAILABLE",
	data: { reason: expect.stringContaining("The store is unavailable") }
};

describe("a control node whose Redis fails", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-fail-fast-"));
	let c: ClusterFixture;
	let control: NodeProcess;

	const timed = async <T>(fn: () => Promise<T>): Promise<{ ms: number; res: T }> => {
		const started = Date.now();
		const res = await fn();
		return { ms: Date.now() - started, res };
	};
	const ready = async () => {
		const res = await fetch(`http://127.0.0.1:${c.port}/ready`);
		return { status: res.status, body: (await res.json()) as any };
	};
	const isReady = () =>
		eventually(async () => (await ready()).status === 200, 20_000, "/ready to say 200");

	beforeAll(async () => {
		c = await clusterFixture({
			name: "fail-fast",
			secret: "fail-fast-secret",
			token: { sub: "admin", tenant: "lab", roles: ["admin"] },
			env: { LOGLEVEL: "warn" },
			redis: { dir, maxmemory: "4mb" }
		});
		control = startNode("control", {
			...c.common,
			SERVICES: "nodes,scheduler,tenants,registry,config,monitor,audit,gateway",
			PORT: String(c.port)
		});
		await isReady();
	});
	afterAll(async () => {
		await control?.kill();
		await c?.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("refuses writes to a full Redis with 503 in plain words, and reads go on", async () => {
		const filler = new Redis(c.redis.url, { maxRetriesPerRequest: 0 });
		try {
			// Filled up to maxmemory, then maxmemory set well below what is used: Redis counts
			// a command's own size and its buffers, so the edge alone lets small writes pass.
			for (let i = 0; ; i++) {
				const full = await filler.set(`filler:${i}`, "x".repeat(64 * 1024)).then(
					() => false,
					(err: Error) => /^OOM/.test(err.message)
				);
				if (full) break;
			}
			const used = Number(/used_memory:(\d+)/.exec(await filler.info("memory"))![1]);
			await filler.config("SET", "maxmemory", String(used - 256 * 1024));
			const put = await c.api("/api/v1/config/full", {
				method: "PUT",
				body: JSON.stringify({ value: 1 })
			});
			// The audit's write-ahead entry is the first write refused, so the gateway refuses
			// the change (fail closed) and names the store's reason.
			expect(put.status).toBe(503);
			expect(put.body).toMatchObject({
				code: 503,
				type: "AUDIT_UNAVAILABLE",
				data: { reason: expect.stringContaining(OUT_OF_MEMORY) }
			});
			expect(JSON.stringify(put.body)).not.toMatch(/script|sha|@user_script/i);
			// The store's own answer to a write, as every service gets it.
			const store = new RedisStore(c.redis.url, { prefix: c.common.NAMESPACE });
			try {
				const refused = await store.put("config", "direct", 1).catch((err: unknown) => err);
				expect(refused).toBeInstanceOf(StoreRefusedError);
				expect(refused).toMatchObject({
					code: 503,
					type: "STORE_REFUSED",
					message: OUT_OF_MEMORY,
					data: { reply: "OOM" }
				});
				expect(await store.get("config", "full")).toBeNull();
			} finally {
				await store.close();
			}
			// Reads go on, and the node stays ready: the store answers.
			expect((await c.api("/api/v1/workloads")).status).toBe(200);
			expect((await ready()).status).toBe(200);

			const keys = await filler.keys("filler:*");
			await filler.del(...keys);
			const again = await c.api("/api/v1/config/full", {
				method: "PUT",
				body: JSON.stringify({ value: 2 })
			});
			expect(again.status).toBe(200);
		} finally {
			filler.disconnect();
		}
	});

	it("answers 503 STORE_UNAVAILABLE within the timeout while Redis is frozen, and recovers", async () => {
		const healthy = await timed(() => c.api("/api/v1/workloads"));
		expect(healthy.res.status).toBe(200);

		process.kill(c.redis.proc.pid!, "SIGSTOP");
		try {
			const first = await timed(() => c.api("/api/v1/workloads"));
			expect(first.res.status).toBe(503);
			expect(first.res.body).toMatchObject({ type: "STORE_UNAVAILABLE", code: 503 });
			const probe = await timed(ready);
			const write = await timed(() =>
				c.api("/api/v1/config/frozen", {
					method: "PUT",
					body: JSON.stringify({ value: 1 })
				})
			);
			const again = await timed(() => c.api("/api/v1/workloads"));
			console.log(
				`Redis frozen: healthy GET ${healthy.ms} ms; first GET ${first.ms} ms, /ready ${probe.ms} ms, PUT ${write.ms} ms, second GET ${again.ms} ms`
			);
			expect(first.ms).toBeLessThan(STORE_TIMEOUT + 500);
			expect(probe.res.status).toBe(503);
			expect(probe.res.body.data.checks.store).toMatch(/store is unavailable/);
			expect(probe.ms).toBeLessThan(PROBE_TIMEOUT);
			expect(write.res.body).toMatchObject(storeDown);
			expect(write.ms).toBeLessThan(STORE_TIMEOUT + 500);
			expect(again.res.status).toBe(503);
			expect(again.ms).toBeLessThan(STORE_TIMEOUT + 500);
		} finally {
			process.kill(c.redis.proc.pid!, "SIGCONT");
		}
		const back = await timed(isReady);
		console.log(`Redis thawed: /ready 200 after ${back.ms} ms`);
		expect((await c.api("/api/v1/workloads")).status).toBe(200);
	});

	it("answers 503 STORE_UNAVAILABLE fast while Redis is dead, and recovers when it is back", async () => {
		await c.redis.stop();
		const first = await timed(() => c.api("/api/v1/workloads"));
		const probe = await timed(ready);
		const write = await timed(() =>
			c.api("/api/v1/config/dead", { method: "PUT", body: JSON.stringify({ value: 1 }) })
		);
		console.log(
			`Redis dead: first GET ${first.ms} ms, /ready ${probe.ms} ms, PUT ${write.ms} ms`
		);
		expect(first.res.status).toBe(503);
		expect(first.res.body).toMatchObject({ type: "STORE_UNAVAILABLE", code: 503 });
		expect(first.res.body.message).not.toMatch(/maxRetriesPerRequest/);
		expect(first.ms).toBeLessThan(STORE_TIMEOUT + 500);
		expect(probe.res.status).toBe(503);
		expect(probe.ms).toBeLessThan(PROBE_TIMEOUT);
		expect(write.res.body).toMatchObject(storeDown);
		expect(write.ms).toBeLessThan(STORE_TIMEOUT + 500);

		// The same data (its append-only file): the same cluster, no adoption needed.
		const redis = await startRedis(c.redis.port, { dir, maxmemory: "4mb" });
		c.redis.proc = redis.proc;
		const back = await timed(isReady);
		console.log(`Redis back: /ready 200 after ${back.ms} ms`);
		expect((await c.api("/api/v1/workloads")).status).toBe(200);
		const put = await c.api("/api/v1/config/dead", {
			method: "PUT",
			body: JSON.stringify({ value: 2 })
		});
		expect(put.status).toBe(200);
	});
});
