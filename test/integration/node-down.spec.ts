/**
 * A call that needs a node the inventory knows is down answers at once: a workload's logs whose
 * replica is on a killed agent (kept placed there by `disconnect.replaceAfter`) are 503
 * NODE_DOWN naming the node, not a wait for the agent's timeout and a 200 with the error inside.
 */
import { eventually } from "../helpers/cluster";
import { FaultCluster, faultCluster } from "../faults/harness";

jest.setTimeout(90_000);

describe("logs of a replica on a down node", () => {
	let c: FaultCluster;

	beforeAll(async () => {
		// Two agents: one of two going silent is a node loss, not a disruption to hold.
		c = await faultCluster({ name: "node-down", agents: ["a2"] });
		c.startAgent("a1", { ISA_NODE_LABELS: "pin=a1" });
	});
	afterAll(() => c.close());

	it("answer 503 NODE_DOWN at once", async () => {
		const id = await eventually(
			() =>
				c.sleeper("stays", 1, {
					placement: { nodeSelector: { pin: "a1" } },
					disconnect: { replaceAfter: "2m" }
				}),
			45_000,
			"the cluster to take a workload"
		);
		await c.agreement(1);
		const healthy = Date.now();
		expect((await c.api(`/api/v1/workloads/${id}/logs`)).status).toBe(200);
		const healthyMs = Date.now() - healthy;

		await c.nodes.get("a1")!.kill();
		await eventually(
			async () => (await c.api("/api/v1/nodes/a1")).body.status === "down",
			20_000,
			"the inventory to mark a1 down"
		);
		const started = Date.now();
		const logs = await c.api(`/api/v1/workloads/${id}/logs`);
		const ms = Date.now() - started;
		console.log(`logs on a healthy node ${healthyMs} ms; on a down node ${ms} ms`);
		expect(logs.status).toBe(503);
		expect(logs.body).toMatchObject({
			code: 503,
			type: "NODE_DOWN",
			message: expect.stringMatching(/^Node 'a1' is down: /),
			data: { nodes: ["a1"] }
		});
		expect(ms).toBeLessThan(500);
	});
});
