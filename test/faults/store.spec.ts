/**
 * Faults of the store (Redis): a store that comes back empty is not used until an operator
 * adopts it, and nothing runs less meanwhile; a Redis killed with `appendfsync always` loses no
 * write it acknowledged.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { COLLECTIONS } from "../../services/shared/collections";
import { eventually } from "../helpers/cluster";
import { startRedis, TestServer } from "../helpers/servers";
import { FaultCluster, faultCluster, replicaProcesses, Watcher } from "./harness";

jest.setTimeout(90_000);

const ready = async (c: FaultCluster) => {
	const res = await fetch(`http://127.0.0.1:${c.port}/ready`);
	return { status: res.status, body: (await res.json()) as any };
};

describe("Redis restarted empty", () => {
	let c: FaultCluster;
	let fresh: TestServer | null = null;

	beforeAll(async () => {
		c = await faultCluster({ name: "store-empty", agents: ["a1"] });
	});
	afterAll(async () => {
		await c.close();
		await fresh?.stop();
	});

	it("stops nothing, answers read-only with the reason, alerts, and adopt restores it all", async () => {
		const id = await eventually(
			() => c.sleeper("sleepy", 3).catch(() => null),
			20_000,
			"the cluster to take a workload"
		);
		await c.agreement(3);
		const before = replicaProcesses(c.marker).map(p => p.pid);
		const watcher = new Watcher(c).start();

		// A lost volume: the same address, nothing in it.
		await c.redis.stop();
		fresh = await startRedis(c.redis.port);

		const notReady = await eventually(
			async () => {
				const r = await ready(c);
				return r.status === 503 && /identity mismatch/.test(r.body.data?.checks?.store)
					? r
					: null;
			},
			10_000,
			"/ready to say the store is not the cluster's"
		);
		expect(notReady.body).toMatchObject({
			type: "NOT_READY",
			data: { checks: { store: expect.stringContaining("npm run adopt") } }
		});
		const refused = await c.api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name: "during",
				kind: "process",
				process: { command: process.execPath, args: ["-e", "1"] },
				resources: { cpu: 1, memory: "1Gi" }
			})
		});
		expect(refused.status).toBe(503);
		expect(refused.body).toMatchObject({
			type: "STORE_IDENTITY_MISMATCH",
			code: 503,
			data: { problem: "missing", found: null }
		});
		const alert = await eventually(
			async () => {
				const res = await c.api("/api/v1/alerts");
				return (res.body.items as any[])?.find(
					a => a.ruleId === "builtin-store-identity" && a.state === "firing"
				);
			},
			10_000,
			"the store identity alert to fire"
		);
		expect(alert).toMatchObject({ severity: "critical" });
		// Two reconcile rounds and more: with an emptied store they used to stop everything.
		await new Promise(r => setTimeout(r, 5000));
		expect(
			replicaProcesses(c.marker)
				.map(p => p.pid)
				.sort()
		).toEqual(before.sort());

		const adopted = await c.api("/api/v1/cluster/adopt", { method: "POST", body: "{}" });
		expect(adopted.status).toBe(200);
		expect(adopted.body).toMatchObject({
			identity: { epoch: 2 },
			workloads: [id],
			replicas: 3,
			skipped: [],
			nodes: ["a1"],
			unreachable: []
		});
		expect((await ready(c)).status).toBe(200);
		const listed = await c.api("/api/v1/workloads");
		expect(listed.body.items.map((w: any) => w.id)).toEqual([id]);
		await c.agreement(3);
		// The default alert rules are back within a refresh of the monitor.
		await eventually(
			async () => {
				const res = await c.api("/api/v1/alerts/rules");
				return (res.body.items as any[])?.some(r => r.id === "default-node-down");
			},
			10_000,
			"the default alert rules to come back"
		);
		// And it is writable again.
		const after = await c.api("/api/v1/config/after-adopt", {
			method: "PUT",
			body: JSON.stringify({ value: 1 })
		});
		expect(after.status).toBe(200);
		watcher.stop();
		expect(watcher.restarted()).toEqual([]);
		expect(watcher.maxCopies()).toBe(1);
		expect(
			replicaProcesses(c.marker)
				.map(p => p.pid)
				.sort()
		).toEqual(before.sort());
	});
});

describe("Redis killed with appendfsync always", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-fault-aof-"));
	let c: FaultCluster;
	let back: TestServer | null = null;

	beforeAll(async () => {
		c = await faultCluster({ name: "store-aof", agents: [], redis: { dir } });
	});
	afterAll(async () => {
		await c.close();
		await back?.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("loses none of thousands of acknowledged writes, and keeps its identity", async () => {
		await eventually(
			async () => (await ready(c)).status === 200,
			20_000,
			"the control node to be ready"
		);
		const acked = new Map<string, number>();
		let next = 0;
		let killed = false;
		const deadline = Date.now() + 40_000;
		// 16 writers; Redis dies with -9 once 2000 writes were acknowledged, while others fly.
		const writer = async () => {
			while (!killed && Date.now() < deadline) {
				const i = next++;
				const key = `k${i}`;
				const res = await c
					.api(`/api/v1/config/${key}`, {
						method: "PUT",
						body: JSON.stringify({ value: i })
					})
					.catch(() => null);
				if (res?.status === 200) acked.set(key, i);
				if (acked.size >= 2000 && !killed) {
					killed = true;
					await c.redis.stop();
				}
			}
		};
		await Promise.all(Array.from({ length: 16 }, writer));
		expect(killed).toBe(true);
		expect(acked.size).toBeGreaterThanOrEqual(2000);

		back = await startRedis(c.redis.port, { dir });
		await eventually(
			async () => (await ready(c)).status === 200,
			20_000,
			"the control node to be ready again without an adoption"
		);
		const stored = new Map(
			(await c.store.list<{ value: number }>(COLLECTIONS.config)).map(d => [
				d.id,
				d.value.value
			])
		);
		const lost = [...acked].filter(([key, value]) => stored.get(key) !== value);
		expect(lost).toEqual([]);
		// Still writable: the identity came back with the data.
		const after = await c.api("/api/v1/config/after-restart", {
			method: "PUT",
			body: JSON.stringify({ value: 1 })
		});
		expect(after.status).toBe(200);
		await c.agreement(0);
	});
});
