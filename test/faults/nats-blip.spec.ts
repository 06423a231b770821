/**
 * NATS down for 15 s: a control node and two agents lose their transporter together. Nobody
 * is declared down (the control node is blind, services/nodes/liveness.ts), the held nodes
 * raise the "Nodes silent, replicas not moved" alert, no replica process changes, no
 * reservation is released, and within two Moleculer heartbeats (2 × 2 s) of NATS being back
 * every agent reports again and the API, the processes and the store agree.
 */
import { isDeepStrictEqual } from "util";
import { COLLECTIONS } from "../../services/shared/collections";
import { eventually } from "../helpers/cluster";
import { describe as describeSample, type FaultCluster, faultCluster, Watcher } from "./harness";

jest.setTimeout(90_000);

const OUTAGE_MS = 15_000;
const HEARTBEAT_MS = 2000;
const REPLICAS = 4;

describe("fault: NATS down for 15 s", () => {
	let cluster: FaultCluster;

	beforeAll(async () => {
		cluster = await faultCluster({ name: "blip", agents: ["a1", "a2"] });
		await cluster.readyAgents(2);
	});

	afterAll(async () => {
		await cluster?.close();
	});

	const allocations = async () =>
		(await cluster.store.list(COLLECTIONS.allocations))
			.map(d => [d.id, d.value])
			.sort((a, b) => String(a[0]).localeCompare(String(b[0])));

	it("moves nothing, restarts nothing, releases nothing, and reconverges at once", async () => {
		const id = await cluster.sleeper("blip", REPLICAS, { placement: { strategy: "spread" } });
		await cluster.agreement(REPLICAS, 20_000);
		const before = await allocations();
		const watcher = new Watcher(cluster).start();

		const control = cluster.nodes.get("control")!;
		const stoppedAt = Date.now();
		await cluster.nats.stop();
		const blindAt = await eventually(
			async () => control.output().includes("Transporter disconnected") && Date.now(),
			5000,
			"the control node seeing its transporter go"
		);
		// The held agents fire the default alert (for: 0s) while NATS is away.
		const alertAt = await eventually(
			async () => {
				const { body } = await cluster.api("/api/v1/alerts?state=firing");
				return body.items.some((a: any) => a.ruleId === "default-nodes-held") && Date.now();
			},
			OUTAGE_MS - 1000,
			"the nodes-held alert firing"
		);
		const remaining = OUTAGE_MS - (Date.now() - stoppedAt);
		await new Promise(r => setTimeout(r, Math.max(0, remaining)));
		// Nothing was declared down, though the agents were silent for the whole outage.
		const during = (await cluster.api("/api/v1/nodes")).body.items;
		expect(during.map((n: any) => n.status)).toEqual(["ready", "ready"]);

		await cluster.nats.restart();
		const backAt = Date.now();
		// Both agents heard again: reports reach the inventory after the reconnect.
		const heardAt = await eventually(
			async () => {
				const { body } = await cluster.api("/api/v1/nodes");
				return (
					body.items.length === 2 &&
					body.items.every((n: any) => n.status === "ready" && n.lastSeen > backAt) &&
					Date.now()
				);
			},
			10_000,
			"both agents reporting again"
		);
		const agreed = await cluster.agreement(REPLICAS, 10_000);
		const agreedAt = Date.now();
		// A little longer, so that a late restart or release would be seen.
		await new Promise(r => setTimeout(r, 3000));
		watcher.stop();
		const final = await cluster.agreement(REPLICAS, 5000);

		console.log(
			[
				`NATS down ${OUTAGE_MS} ms:`,
				`control blind after ${blindAt - stoppedAt} ms,`,
				`nodes-held alert firing after ${alertAt - stoppedAt} ms,`,
				`both agents reporting ${heardAt - backAt} ms after NATS was back,`,
				`agreement ${agreedAt - backAt} ms after,`,
				`replicas restarted: ${watcher.restarted().length},`,
				`most copies at once: ${watcher.maxCopies()}`
			].join(" ")
		);
		expect(watcher.restarted()).toEqual([]);
		expect(watcher.maxCopies()).toBe(1);
		expect(await allocations()).toEqual(before);
		expect(heardAt - backAt).toBeLessThan(2 * HEARTBEAT_MS);
		expect(agreedAt - backAt).toBeLessThan(2 * HEARTBEAT_MS);
		expect(isDeepStrictEqual(agreed.api, final.api)).toBe(true);
		// Every replica still where it was, the workload running, none of it placed anew.
		const w = (await cluster.api(`/api/v1/workloads/${id}`)).body;
		expect(w.status).toBe("running");
		expect(w.replicas.map((r: any) => r.fence).sort()).toEqual([1, 2, 3, 4]);
		expect(describeSample(final)).toContain(id);
		// The alert is resolved once the agents are heard again.
		await eventually(
			async () => {
				const { body } = await cluster.api("/api/v1/alerts?state=firing");
				return !body.items.some((a: any) => a.ruleId === "default-nodes-held");
			},
			5000,
			"the nodes-held alert resolved"
		);
	});
});
