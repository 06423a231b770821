/**
 * Redis with Sentinel: a primary, two replicas and three sentinels started here, the cluster's
 * STORE the sentinels' URL (redis-sentinel://…/isa) with ISA_REDIS_WAIT_REPLICAS=1, so that a
 * write is answered only once a replica has it. The primary is killed (SIGKILL) under a steady
 * stream of creates: the sentinels promote a replica, the nodes move to it, and creates are
 * answered 201 again. Every create answered 201 is there afterwards, in the API and in the
 * new primary, none twice; the running replicas were not restarted; API, processes and store
 * agree.
 */
import fs from "fs";
import os from "os";
import path from "path";
import Redis from "ioredis";
import { COLLECTIONS } from "../../services/shared/collections";
import { eventually } from "../helpers/cluster";
import { startRedis, startSentinels, type TestServer } from "../helpers/servers";
import { type FaultCluster, faultCluster, Watcher } from "./harness";

jest.setTimeout(120_000);

const PRIMARY = "isa";
const REPLICAS = 2;
/** Creates per second. */
const RATE = 5;
const BEFORE_MS = 3000;
const AFTER_MS = 15_000;

interface Create {
	name: string;
	at: number;
	ms: number;
	status: number;
	id?: string;
}

describe("fault: the Redis primary dies under Sentinel", () => {
	let dir: string;
	let redis: TestServer[];
	let sentinels: TestServer[];
	let url: string;
	let cluster: FaultCluster;

	const client = (port: number) =>
		new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 });
	const ask = async <T>(port: number, ...args: [string, ...(string | number)[]]) => {
		const c = client(port);
		try {
			await c.connect();
			return (await c.call(...args)) as T;
		} finally {
			c.disconnect();
		}
	};

	beforeAll(async () => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-sentinel-"));
		const primary = await startRedis();
		const replicas = await Promise.all(
			[1, 2].map(() => startRedis(undefined, { replicaOf: primary.port }))
		);
		redis = [primary, ...replicas];
		await eventually(
			async () =>
				(await ask<string>(primary.port, "INFO", "replication")).includes(
					"connected_slaves:2"
				),
			10_000,
			"two replicas in sync"
		);
		({ sentinels, url } = await startSentinels(3, primary.port, PRIMARY, dir));
		await eventually(
			async () => {
				const seen = await Promise.all(
					sentinels.map(s => ask<unknown[]>(s.port, "SENTINEL", "REPLICAS", PRIMARY))
				);
				return seen.every(r => r.length === 2);
			},
			20_000,
			"every sentinel knowing both replicas"
		);
		cluster = await faultCluster({
			name: "sentinel",
			agents: ["a1", "a2"],
			env: { STORE: url, ISA_REDIS_WAIT_REPLICAS: "1" }
		});
		await cluster.readyAgents(2);
	});

	afterAll(async () => {
		await cluster?.close();
		await Promise.all([...(sentinels ?? []), ...(redis ?? [])].map(s => s.stop()));
		if (dir) fs.rmSync(dir, { recursive: true, force: true });
	});

	it("fails over to a replica: creates resume, none acknowledged is lost, nothing restarts", async () => {
		const id = await cluster.sleeper("sentinel", REPLICAS, {
			placement: { strategy: "spread" }
		});
		await cluster.agreement(REPLICAS, 20_000);
		const watcher = new Watcher(cluster).start();

		// Workloads that wait for capacity no node has: each create is a write, no process.
		const create = async (name: string): Promise<Create> => {
			const at = Date.now();
			const res = await cluster
				.api("/api/v1/workloads", {
					method: "POST",
					body: JSON.stringify({
						name,
						kind: "process",
						process: { command: process.execPath, args: ["-e", "0"] },
						resources: { cpu: 1000, memory: "1Gi" },
						replicas: 1
					}),
					signal: AbortSignal.timeout(20_000)
				})
				.catch(() => ({ status: 0, body: {} as any }));
			return { name, at, ms: Date.now() - at, status: res.status, id: res.body?.id };
		};
		const sent: Promise<Create>[] = [];
		const start = Date.now();
		let killedAt = 0;
		for (let i = 0; Date.now() - start < BEFORE_MS + AFTER_MS; i++) {
			const wait = start + (i * 1000) / RATE - Date.now();
			if (wait > 0) await new Promise(r => setTimeout(r, wait));
			if (!killedAt && Date.now() - start >= BEFORE_MS) {
				killedAt = Date.now();
				await redis[0].stop();
			}
			sent.push(create(`sentinel-load-${i}`));
		}
		const results = await Promise.all(sent);
		const acknowledged = results.filter(r => r.status === 201);
		const after = acknowledged.filter(r => r.at > killedAt);
		const resumedAt = Math.min(...after.map(r => r.at + r.ms));
		const [, primaryPort] = await ask<string[]>(
			sentinels[0].port,
			"SENTINEL",
			"GET-MASTER-ADDR-BY-NAME",
			PRIMARY
		);
		console.log(
			`Sentinel: primary killed; creates answered 201 again ${resumedAt - killedAt} ms later; ` +
				`${results.length} creates: ${acknowledged.length} 201, ` +
				`${results.filter(r => r.status === 503).length} 503, ` +
				`${results.filter(r => ![201, 503].includes(r.status)).length} other ` +
				`(${[...new Set(results.map(r => r.status))].join(", ")}); slowest ${Math.max(...results.map(r => r.ms))} ms`
		);
		// A replica is the primary now.
		expect(redis.slice(1).map(r => r.port)).toContain(Number(primaryPort));
		// Creates came back after the failover.
		expect(after.length).toBeGreaterThan(0);
		expect(results.every(r => r.status === 201 || r.status === 503)).toBe(true);

		// Every acknowledged create is in the API and in the new primary's records, once.
		const stored = await cluster.store.list<{ name: string }>(COLLECTIONS.workloads);
		const names = stored.map(d => d.value.name);
		for (const r of acknowledged) {
			expect((await cluster.api(`/api/v1/workloads/${r.id}`)).status).toBe(200);
			expect(names.filter(n => n === r.name)).toHaveLength(1);
		}
		expect(new Set(names).size).toBe(names.length);

		const final = await cluster.agreement(REPLICAS, 20_000);
		watcher.stop();
		expect(watcher.restarted()).toEqual([]);
		expect(watcher.maxCopies()).toBe(1);
		expect(final.api!.size).toBe(REPLICAS);
		const w = (await cluster.api(`/api/v1/workloads/${id}`)).body;
		expect(w.replicas.map((r: any) => r.fence).sort()).toEqual([1, 2]);
	});
});
