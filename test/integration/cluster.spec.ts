/**
 * A real cluster: a control node (gateway, inventory and an agent) and two agent-only nodes, each
 * its own OS process, over a nats-server and a redis-server that this suite starts.
 */
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	FAKE_BIN,
	NodeProcess,
	REPL_ENTRY,
	startNode
} from "../helpers/cluster";

const SECRET = "cluster-test-secret";
const REPORT_INTERVAL = 0.5; // seconds
const DOWN_WINDOW_MS = 3 * REPORT_INTERVAL * 1000;

jest.setTimeout(60_000);

describe("cluster over NATS and Redis", () => {
	let cluster: ClusterFixture;
	let common: Record<string, string>;
	const nodes: NodeProcess[] = [];
	const api = (path: string, init?: RequestInit) => cluster.api(path, init);

	async function nodeStatus(id: string): Promise<string | undefined> {
		const { body } = await api("/api/v1/nodes");
		return body.items.find((n: { id: string }) => n.id === id)?.status;
	}

	/** What every test starts from: the three nodes up and reporting (a test may kill one). */
	async function threeReady() {
		return eventually(
			async () => {
				const { body } = await api("/api/v1/nodes");
				return (
					body.total === 3 && body.items.every((n: any) => n.status === "ready") && body
				);
			},
			20_000,
			"3 ready nodes"
		);
	}

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "cluster",
			secret: SECRET,
			token: { sub: "v", tenant: "t1", roles: ["viewer"] },
			env: { ISA_REPORT_INTERVAL: String(REPORT_INTERVAL) }
		});
		common = cluster.common;
		nodes.push(startNode("control", { ...common, PORT: String(cluster.port) }));
		nodes.push(startNode("agent-1", { ...common, SERVICES: "agent" }));
		nodes.push(
			startNode("agent-2", {
				...common,
				SERVICES: "agent",
				ISA_NODE_LABELS: "gpu=a100,zone=lab",
				PATH: `${FAKE_BIN}:${process.env.PATH}`
			})
		);
	});

	// Before each test, the first one too: the nodes take seconds to start, and the kill test
	// restarts agent-1 even when it fails, but then does not wait for it.
	beforeEach(() => threeReady());

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		await cluster?.stop();
	});

	afterEach(() => {
		// On failure, what the nodes printed is the first thing to read.
		const state = expect.getState();
		if (state.assertionCalls > state.numPassingAsserts)
			for (const n of nodes) console.log(`--- ${n.nodeID}\n${n.output().slice(-3000)}`);
	});

	it("lists all three nodes with their capacity", async () => {
		const body = await threeReady();
		expect(body.items.map((n: any) => n.id)).toEqual(["agent-1", "agent-2", "control"]);
		for (const node of body.items) {
			expect(node.capacity.cpu).toBeGreaterThan(0);
			expect(node.capacity.memory).toBeGreaterThan(0);
			expect(node.usage.memory).toBeGreaterThan(0);
			expect(node.allocated).toEqual({ cpu: 0, memory: 0, gpus: 0 });
			expect(typeof node.lastSeen).toBe("number");
		}
	});

	it("shows both GPUs of the node with a (fake) nvidia-smi, and its labels", async () => {
		const { status, body } = await api("/api/v1/nodes/agent-2");
		expect(status).toBe(200);
		expect(body.labels).toEqual({ gpu: "a100", zone: "lab" });
		expect(body.capacity.gpus).toHaveLength(2);
		expect(body.capacity.gpus[0]).toMatchObject({
			index: 0,
			model: "NVIDIA A100-SXM4-80GB",
			memory: 81920 * 1024 * 1024
		});
		expect(body.capacity.gpus[0].uuid).toMatch(/^GPU-/);
		expect(body.usage.gpus.map((g: any) => g.index)).toEqual([0, 1]);
		expect(body.usage.gpus[0]).toEqual(
			expect.objectContaining({
				utilization: expect.any(Number),
				memoryUsed: expect.any(Number)
			})
		);
		expect(body.workloads).toEqual([]);
		const facts = await eventually(
			async () => (await api("/api/v1/nodes/agent-2")).body.facts,
			5000,
			"facts"
		);
		expect(facts.cpu.cores).toBeGreaterThan(0);
		expect(facts.gpus).toHaveLength(2);
	});

	it("prints the node table in the REPL (`npm run repl` joins the cluster)", async () => {
		const repl = startNode("repl-test", { ...common }, REPL_ENTRY);
		try {
			await eventually(
				async () => repl.output().includes("mol $"),
				15_000,
				"the REPL prompt"
			);
			repl.proc.stdin!.write("nodes\n");
			await eventually(
				async () =>
					/agent-2\s+ready\s+\d+ cores\s+\S+\s+2× NVIDIA A100-SXM4-80GB/.test(
						repl.output()
					),
				10_000,
				"the nodes table"
			);
			expect(repl.output()).toMatch(
				/NODE\s+STATUS\s+CPU\s+MEMORY\s+GPUS\s+CPU%\s+MEM%\s+GPU%/
			);
			expect(repl.output()).toMatch(/control\s+ready/);
			repl.proc.stdin!.write("nodes --status down\n");
			await eventually(
				async () => repl.output().includes("No node is down."),
				5_000,
				"the filtered table"
			);
		} finally {
			await repl.kill();
		}
	});

	it("marks a killed agent down within the window, and ready again when it returns", async () => {
		const victim = nodes[1];
		const killedAt = Date.now();
		await victim.kill();
		try {
			await eventually(
				async () => (await nodeStatus("agent-1")) === "down",
				10_000,
				"agent-1 down"
			);
			const detectedMs = Date.now() - killedAt;
			console.log(
				`agent-1 seen down ${detectedMs} ms after kill -9 (window ${DOWN_WINDOW_MS} ms)`
			);
			// 3 missed reports, plus one sweep and one poll of slack.
			expect(detectedMs).toBeLessThan(DOWN_WINDOW_MS + 1000);
			expect(await nodeStatus("agent-2")).toBe("ready");
		} finally {
			// Back in any case, so that the tests after this one find three nodes.
			nodes[1] = startNode("agent-1", { ...common, SERVICES: "agent" });
		}
		await eventually(
			async () => (await nodeStatus("agent-1")) === "ready",
			15_000,
			"agent-1 ready"
		);
	});
});
