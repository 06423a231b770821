/**
 * Agent restarts, with real processes: a control node and two agents on a nats-server and a
 * redis-server of their own, the default report interval (2 s, so a 6 s down window). An agent
 * stopped with SIGTERM and started again within the window adopts its replicas: the same
 * processes run throughout, never twice, and the API still says they run there. An agent killed
 * with `kill -9` and not started again leaves no orphan: its replicas' supervisors stop them
 * before the scheduler starts their replacements on the other agent.
 */
import { eventually } from "../helpers/cluster";
import { describe as describeSample, FaultCluster, faultCluster, Sample, Watcher } from "./harness";

jest.setTimeout(60_000);

describe("agent restarts", () => {
	let cluster: FaultCluster;

	beforeAll(async () => {
		cluster = await faultCluster({
			name: "restart",
			agents: ["r1", "r2"],
			env: { ISA_REPORT_INTERVAL: "2" }
		});
		await cluster.readyAgents(2, 20_000);
	});

	// What a test made goes, so that the next one sees only its own replicas.
	afterEach(async () => {
		const { body } = await cluster.api("/api/v1/workloads");
		for (const w of body.items)
			await cluster.api(`/api/v1/workloads/${w.id}`, { method: "DELETE" });
		await cluster.agreement(0);
	});

	afterAll(async () => {
		await cluster?.close();
	});

	/** Where the workload's replicas run, once all of them do. */
	async function runningOn(id: string, count: number): Promise<string[]> {
		return eventually(
			async () => {
				const { body } = await cluster.api(`/api/v1/workloads/${id}`);
				const nodes = body.replicas
					.filter((r: { state: string }) => r.state === "running")
					.map((r: { node: string }) => r.node);
				return nodes.length === count && nodes;
			},
			15_000,
			`${count} running replicas`
		);
	}

	it("adopts the replicas of an agent restarted within the down window: same processes", async () => {
		const id = await cluster.sleeper("kept", 2);
		const [victim] = await runningOn(id, 2);
		const before = await cluster.agreement(2);
		const watcher = new Watcher(cluster).start();

		await cluster.nodes.get(victim)!.stop();
		const restarted = cluster.startAgent(victim, { LOGLEVEL: "info" });
		// Past the old agent's down window: an orphan would be stopped, a replacement started.
		await new Promise(resolve => setTimeout(resolve, 8000));
		const after = await cluster.agreement(2).catch(err => {
			console.log(restarted.output().slice(-3000));
			throw err;
		});
		const samples = watcher.stop();

		expect(restarted.output()).toMatch(/Adopted 2 process replica\(s\)/);
		const pids = watcher.pids();
		expect([...pids.keys()].sort()).toEqual([`${id}/0`, `${id}/1`]);
		for (const [key, seen] of pids) {
			expect(seen.size).toBe(1);
			expect([...seen]).toEqual(before.procs.get(key)!.map(p => p.pid));
		}
		expect(watcher.maxCopies()).toBe(1);
		expect([...after.api!.values()]).toEqual([victim, victim]);
		// The API said they ran there in every sample it answered.
		const answered = samples.filter((s: Sample) => s.api);
		expect(answered.length).toBeGreaterThan(10);
		for (const s of answered)
			expect([...s.api!.values()].filter(n => n === victim)).toHaveLength(2);
		// The node never went down.
		const { body } = await cluster.api(`/api/v1/workloads/${id}`);
		expect(body.replicas.map((r: { fence: number }) => r.fence).sort()).toEqual([1, 2]);
	});

	it("leaves no orphan when a killed agent does not come back: gone before the replacements start", async () => {
		const id = await cluster.sleeper("moved", 2);
		const [victim] = await runningOn(id, 2);
		const other = victim === "r1" ? "r2" : "r1";
		const before = await cluster.agreement(2);
		const watcher = new Watcher(cluster).start();

		const killedAt = Date.now();
		await cluster.nodes.get(victim)!.kill();
		const moved = await eventually(
			async () => {
				const nodes = await runningOn(id, 2).catch(() => null);
				return nodes?.every(n => n === other) && nodes;
			},
			20_000,
			`both replicas running on ${other}`
		);
		expect(moved).toEqual([other, other]);
		const after = await cluster.agreement(2);
		// The watcher's own samples hold the replacements too before it stops.
		const replaced = (sample: Sample) =>
			[...after.procs].every(([key, procs]) =>
				(sample.procs.get(key) ?? []).some(p => p.pid === procs[0].pid)
			);
		await eventually(
			async () => watcher.samples.some(replaced),
			5000,
			"the watcher seeing the replacements"
		);
		watcher.stop();

		expect(watcher.maxCopies()).toBe(1);
		// Per replica, the old process's last sample comes before the new one's first.
		for (const key of [`${id}/0`, `${id}/1`]) {
			const oldPid = before.procs.get(key)![0].pid;
			const newPid = after.procs.get(key)![0].pid;
			expect(newPid).not.toBe(oldPid);
			const seen = (pid: number) =>
				watcher.samples
					.filter(s => (s.procs.get(key) ?? []).some(p => p.pid === pid))
					.map(s => s.at);
			const lastOld = Math.max(...seen(oldPid));
			const firstNew = Math.min(...seen(newPid));
			expect(Number.isFinite(lastOld) && Number.isFinite(firstNew)).toBe(true);
			expect(lastOld).toBeLessThan(firstNew);
			console.log(
				`${key}: orphan last seen ${lastOld - killedAt} ms after kill -9, ` +
					`replacement first seen ${firstNew - killedAt} ms after`
			);
		}
		if (watcher.maxCopies() !== 1) console.log(watcher.samples.map(describeSample).join("\n"));
	});
});
