/**
 * An agent frozen with SIGSTOP for 40 s, at the default 2 s report interval, so the down window
 * is the default 6 s:
 *
 * - a workload with `disconnect.stopAfter: 3s`: its frozen agent cannot stop anything, so the
 *   replicas' supervisors do (their lease is not renewed); they are gone before the node is
 *   down and their replacements start: never two copies at once;
 * - without it: replacements start when the node is down, the stale copies run on beside them
 *   while the agent is frozen, and after SIGCONT fencing stops them within 1 s.
 *
 * Both end with the API, the processes and the store agreeing.
 */
import { eventually } from "../helpers/cluster";
import { type FaultCluster, faultCluster, replicaProcesses, type Sample, Watcher } from "./harness";

jest.setTimeout(120_000);

const FROZEN_MS = 40_000;
const REPLICAS = 2;

describe("fault: an agent frozen with SIGSTOP", () => {
	let cluster: FaultCluster;

	beforeAll(async () => {
		cluster = await faultCluster({
			name: "sigstop",
			agents: ["a1", "a2"],
			env: { ISA_REPORT_INTERVAL: "2" }
		});
		await cluster.readyAgents(2);
	});

	afterAll(async () => {
		for (const n of cluster?.nodes.values() ?? [])
			if (n.proc.pid) process.kill(n.proc.pid, "SIGCONT");
		await cluster?.close();
	});

	afterEach(async () => {
		const { body } = await cluster.api("/api/v1/workloads");
		for (const w of body.items)
			await cluster.api(`/api/v1/workloads/${w.id}`, { method: "DELETE" });
		await eventually(
			async () => replicaProcesses(cluster.marker).length === 0,
			10_000,
			"no replica process left"
		);
		await cluster.readyAgents(2, 20_000);
	});

	/** Places the workload (binpack: both replicas on one agent) and freezes that agent. */
	async function freezeHolder(name: string, extra: Record<string, unknown>) {
		const id = await cluster.sleeper(name, REPLICAS, extra);
		const agreed = await cluster.agreement(REPLICAS, 20_000);
		const victim = [...agreed.api!.values()][0];
		expect([...agreed.api!.values()]).toEqual([victim, victim]);
		const watcher = new Watcher(cluster).start();
		const pid = cluster.nodes.get(victim)!.proc.pid!;
		const frozenAt = Date.now();
		process.kill(pid, "SIGSTOP");
		return { id, victim, watcher, pid, frozenAt };
	}

	/** When every replica first runs on `node` by the API (ms after `from`). */
	const replacedAt = (samples: Sample[], other: string, from: number) =>
		samples.find(
			s =>
				s.at > from &&
				s.api?.size === REPLICAS &&
				[...s.api.values()].every(n => n === other)
		)?.at;

	it("with stopAfter below the down window: the copy is gone before its replacement starts", async () => {
		const { victim, watcher, pid, frozenAt } = await freezeHolder("fenced", {
			disconnect: { stopAfter: "3s" }
		});
		const other = victim === "a1" ? "a2" : "a1";
		// The frozen agent's replicas end by their supervisors' lease.
		const goneAt = await eventually(
			async () =>
				replicaProcesses(cluster.marker).every(p => p.node !== victim) && Date.now(),
			10_000,
			"the frozen agent's copies gone"
		);
		const downAt = await eventually(
			async () =>
				(await cluster.api(`/api/v1/nodes/${victim}`)).body.status === "down" && Date.now(),
			15_000,
			`${victim} down`
		);
		await eventually(
			async () => replacedAt(watcher.samples, other, frozenAt),
			15_000,
			"replacements running"
		);
		await new Promise(r => setTimeout(r, Math.max(0, FROZEN_MS - (Date.now() - frozenAt))));
		process.kill(pid, "SIGCONT");
		await cluster.agreement(REPLICAS, 15_000);
		watcher.stop();
		const replaced = replacedAt(watcher.samples, other, frozenAt)!;
		console.log(
			`SIGSTOP ${FROZEN_MS} ms with stopAfter 3s: copies gone ${goneAt - frozenAt} ms, ` +
				`node down ${downAt - frozenAt} ms, replacements running ${replaced - frozenAt} ms ` +
				`after the freeze; most copies at once: ${watcher.maxCopies()}, ` +
				`replicas restarted: ${watcher.restarted().length}`
		);
		expect(watcher.maxCopies()).toBe(1);
		expect(goneAt).toBeLessThan(downAt);
	});

	it("without stopAfter: after SIGCONT the stale copies are gone within 1 s", async () => {
		const { victim, watcher, pid, frozenAt } = await freezeHolder("plain", {});
		const other = victim === "a1" ? "a2" : "a1";
		await eventually(
			async () => replacedAt(watcher.samples, other, frozenAt),
			20_000,
			"replacements running"
		);
		await new Promise(r => setTimeout(r, Math.max(0, FROZEN_MS - (Date.now() - frozenAt))));
		// Two copies of each replica now: the frozen one and its replacement.
		expect(replicaProcesses(cluster.marker)).toHaveLength(2 * REPLICAS);
		const thawedAt = Date.now();
		process.kill(pid, "SIGCONT");
		const staleGoneAt = await eventually(
			async () =>
				replicaProcesses(cluster.marker).every(p => p.node !== victim) && Date.now(),
			5000,
			"the stale copies gone"
		);
		await cluster.agreement(REPLICAS, 15_000);
		watcher.stop();
		const replaced = replacedAt(watcher.samples, other, frozenAt)!;
		console.log(
			`SIGSTOP ${FROZEN_MS} ms without stopAfter: replacements running ${replaced - frozenAt} ms ` +
				`after the freeze, two copies for ${thawedAt - replaced + (staleGoneAt - thawedAt)} ms, ` +
				`stale copies gone ${staleGoneAt - thawedAt} ms after SIGCONT`
		);
		expect(watcher.maxCopies()).toBe(2);
		expect(staleGoneAt - thawedAt).toBeLessThan(1000);
	});
});
