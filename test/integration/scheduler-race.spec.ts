/**
 * Two scheduler instances in two processes on one Redis must never over-commit: 1,000
 * concurrent creates, sent through both gateways, ask for the last 4 GPUs; exactly 4 are placed.
 */
import { freePort } from "../helpers/servers";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	startNode
} from "../helpers/cluster";

const SECRET = "race-secret";
jest.setTimeout(120_000);

describe("two schedulers, one Redis", () => {
	let cluster: ClusterFixture;
	let ports: number[];
	let token: string;
	const nodes: NodeProcess[] = [];

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "race",
			secret: SECRET,
			token: { sub: "racer", tenant: "race", roles: ["operator"] },
			// The race needs one tenant's 1,000 creates at once: its bounds and the lag shedding
			// (load-shedding.spec.ts) are set out of the way.
			env: {
				LOGLEVEL: "warn",
				ISA_QUEUE_TENANT_MUTATIONS: "1000",
				ISA_QUEUE_TENANT_CREATES: "1000",
				ISA_SHED_LAG: "0"
			}
		});
		// The fixture's port for one gateway, a second one for the other.
		ports = [cluster.port, await freePort()];
		token = cluster.token;
		const common = cluster.common;
		nodes.push(
			startNode("sched-a", {
				...common,
				SERVICES: "nodes,scheduler,tenants,audit,gateway",
				PORT: String(ports[0])
			})
		);
		nodes.push(
			startNode("sched-b", {
				...common,
				SERVICES: "nodes,scheduler,gateway",
				PORT: String(ports[1])
			})
		);
		nodes.push(
			startNode("gpu-node", {
				...common,
				SERVICES: "agent",
				ISA_NODE_CAPACITY: JSON.stringify({ cpu: 10000, memory: "100Ti", gpus: 4 })
			})
		);
		for (const port of ports)
			await eventually(
				async () => {
					const res = await fetch(`http://127.0.0.1:${port}/api/v1/nodes`, {
						headers: { Authorization: `Bearer ${token}` }
					});
					return (
						res.status === 200 &&
						((await res.json()) as any).items.some(
							(n: any) => n.id === "gpu-node" && n.status === "ready"
						)
					);
				},
				20_000,
				`gpu-node seen through :${port}`
			);
	});

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		await cluster?.stop();
	});

	const get = (port: number, url: string) =>
		fetch(`http://127.0.0.1:${port}${url}`, {
			headers: { Authorization: `Bearer ${token}` }
		}).then(r => r.json() as any);

	// Each test starts on an empty cluster: the count of 1,000 and the 4 free GPUs hold whichever
	// test runs first. Deletes go a batch at a time, so that they do not time out under load.
	afterEach(async () => {
		const { items } = await get(ports[0], "/api/v1/workloads?limit=2000");
		for (let i = 0; i < items.length; i += 50)
			await Promise.all(
				items.slice(i, i + 50).map((w: any) =>
					fetch(`http://127.0.0.1:${ports[0]}/api/v1/workloads/${w.id}`, {
						method: "DELETE",
						headers: { Authorization: `Bearer ${token}` }
					})
				)
			);
		await eventually(
			async () =>
				(await get(ports[0], "/api/v1/workloads")).total === 0 &&
				(await get(ports[1], "/api/v1/nodes/gpu-node")).allocated.gpus === 0,
			20_000,
			"no workload left and gpu-node free"
		);
	});

	const post = (port: number, body: unknown, key?: string) =>
		fetch(`http://127.0.0.1:${port}/api/v1/workloads`, {
			method: "POST",
			headers: {
				Authorization: `Bearer ${token}`,
				"Content-Type": "application/json",
				...(key ? { "Idempotency-Key": key } : {})
			},
			body: JSON.stringify(body)
		}).then(async res => ({ status: res.status, body: (await res.json()) as any }));

	it("places exactly 4 of 1,000 concurrent GPU creates", async () => {
		const started = Date.now();
		const results = await Promise.all(
			Array.from({ length: 1000 }, (_, i) =>
				post(ports[i % 2], {
					name: `w-${i}`,
					kind: "process",
					process: { command: "true" },
					resources: { cpu: 1, memory: "1Gi", gpu: 1 }
				})
			)
		);
		console.log(
			`1,000 creates through 2 gateways and 2 schedulers in ${Date.now() - started} ms`
		);
		expect(results.filter(r => r.status !== 201)).toEqual([]);
		const placed = results.filter(r => r.body.replicas[0].node);
		expect(placed).toHaveLength(4);
		expect(placed.map(r => r.body.replicas[0].gpus[0]).sort()).toEqual([0, 1, 2, 3]);
		expect(
			results.filter(r => !r.body.replicas[0].node && r.body.replicas[0].reason)
		).toHaveLength(996);

		const list = await get(ports[0], "/api/v1/workloads?limit=2000");
		expect(list.total).toBe(1000);
		expect(list.items.filter((w: any) => w.replicas[0].node)).toHaveLength(4);
		const node = await get(ports[1], "/api/v1/nodes/gpu-node");
		expect(node.allocated.gpus).toBe(4);
		expect(node.workloads).toHaveLength(4);
	});

	it("creates once for one Idempotency-Key sent to both schedulers at the same time", async () => {
		const body = {
			name: "dup",
			kind: "process",
			process: { command: "true" },
			resources: { cpu: 1, memory: "1Gi" }
		};
		const [a, b] = await Promise.all([
			post(ports[0], body, "same-key"),
			post(ports[1], body, "same-key")
		]);
		expect(a.status).toBe(201);
		expect(b.status).toBe(201);
		expect(b.body.id).toBe(a.body.id);
	});
});
