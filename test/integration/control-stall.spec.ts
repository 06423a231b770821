/**
 * A control node that stands still does not declare healthy nodes down. Real processes over
 * NATS and Redis: the control node (inventory, scheduler, gateway) is frozen with SIGSTOP for
 * 4 s, more than twice its 1.5 s down window, while two agents go on reporting; NATS holds
 * their reports. After SIGCONT its sweep timer runs before those reports are read, so without
 * the stall compensation (services/nodes/liveness.ts `stalled`) it would find both agents
 * silent; the disruption hold is off (ISA_DISRUPTION_THRESHOLD=1) so that it is not what saves
 * them.
 */
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	nodesReady,
	startAgent,
	startControl
} from "../helpers/cluster";

jest.setTimeout(60_000);

describe("a stalled control node", () => {
	let cluster: ClusterFixture;
	const nodes: NodeProcess[] = [];
	let control: NodeProcess;

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "stall",
			secret: "stall-secret",
			token: { sub: "op", tenant: "lab", roles: ["operator"] },
			env: { LOGLEVEL: "info" }
		});
		control = startControl(cluster, { ISA_DISRUPTION_THRESHOLD: "1" });
		nodes.push(control);
		for (const id of ["s1", "s2"])
			nodes.push(
				startAgent(cluster, id, {
					ISA_NODE_CAPACITY: JSON.stringify({ cpu: 4, memory: "8Gi" })
				})
			);
		await nodesReady(cluster, 2, 20_000);
	});

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		await cluster.stop();
	});

	it("declares no node down after standing still for twice the down window", async () => {
		control.proc.kill("SIGSTOP");
		await new Promise(resolve => setTimeout(resolve, 4000));
		control.proc.kill("SIGCONT");
		await eventually(
			async () => (await cluster.api("/health")).status === 200,
			10_000,
			"the control node answering"
		);
		// Two more down windows: a false down would have been logged by now.
		await new Promise(resolve => setTimeout(resolve, 3000));
		expect(control.output()).not.toMatch(/is down \(down\)/);
		expect((await cluster.api("/api/v1/nodes?status=ready")).body.total).toBe(2);
	});
});
