/**
 * The scheduler through the HTTP API, with brokers in one process over Moleculer's in-memory
 * transporter: a control broker (gateway, inventory, scheduler, tenants) and stub agents that
 * report capacity and run nothing but say each replica they are given is running.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import TenantsService from "../../services/tenants.service";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import { COLLECTIONS } from "../../services/shared/collections";
import { EVENTS } from "../../services/shared/events";
import { SqliteStore } from "../../services/shared/store/sqlite";
import { Allocation, release, reserve } from "../../services/scheduler/placement";
import { PLACEMENTS } from "../../services/scheduler/reservations";
import { auditService, withSettings } from "../helpers/services";
import { eventually } from "../helpers/cluster";
import { stubAgent } from "../helpers/stub-agent";

const SECRET = "scheduler-test-secret";
const GiB = 1024 ** 3;

describe("scheduler over the API", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-sched-"));
	const store = path.join(dir, "isa.db");
	const namespace = `sched-${process.pid}`;
	const control = new ServiceBroker({
		nodeID: "control",
		namespace,
		transporter: "Fake",
		logger: false,
		heartbeatInterval: 1,
		heartbeatTimeout: 3
	});
	control.createService(withSettings(NodesService, { store }));
	// Audits often, with a short grace: the audit reads beside the queue, so a reservation a
	// round commits while it reads is not named yet and must not be taken for an orphan (the
	// ghost reservation below is from 1970, far past it).
	control.createService(
		withSettings(SchedulerService, {
			store,
			reconcileInterval: 300,
			auditInterval: 300,
			auditGrace: 1000,
			// Long enough that a test's burst of creates falls within one announcement.
			announceDelay: 1000
		})
	);
	control.createService(withSettings(TenantsService, { store }));
	const announced: Array<{ nodeID: string; allocated: { cpu: number } }> = [];
	control.createService({
		name: "allocation-listener",
		events: {
			[EVENTS.nodeAllocated](ctx: { params: (typeof announced)[number] }) {
				announced.push(ctx.params);
			}
		}
	});
	control.createService(auditService(store));
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const agents = new Map<string, ServiceBroker>();
	const tokens: Record<string, string> = {};
	let server: any;

	function startAgent(nodeID: string, gpus: number, labels: Record<string, string> = {}) {
		const b = new ServiceBroker({
			nodeID,
			namespace,
			transporter: "Fake",
			logger: false,
			heartbeatInterval: 1,
			heartbeatTimeout: 3
		});
		b.createService(
			stubAgent({ id: nodeID, cpu: 8, memoryGiB: 32, gpus, labels, interval: 200 })
		);
		agents.set(nodeID, b);
		return b.start();
	}

	const api = (method: "get" | "post" | "put" | "delete", url: string, token = tokens.operator) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);

	/** A process workload of one replica, as a create's body. */
	const processWorkload = (name: string, resources: Record<string, unknown>) => ({
		name,
		kind: "process",
		process: { command: "x" },
		resources
	});

	/** Another tenant's process workload of one replica: its body as created. */
	const createOther = async (name: string, resources: Record<string, unknown>) =>
		(
			await api("post", "/api/v1/workloads", tokens.other).send(
				processWorkload(name, resources)
			)
		).body;

	beforeAll(async () => {
		await control.start();
		server = (gateway as any).server;
		tokens.admin = await mintToken({
			secret: SECRET,
			sub: "root",
			tenant: "ops",
			roles: ["admin"],
			ttl: 600
		});
		tokens.operator = await mintToken({
			secret: SECRET,
			sub: "ann",
			tenant: "acme",
			roles: ["operator"],
			ttl: 600
		});
		tokens.viewer = await mintToken({
			secret: SECRET,
			sub: "vic",
			tenant: "acme",
			roles: ["viewer"],
			ttl: 600
		});
		tokens.other = await mintToken({
			secret: SECRET,
			sub: "olga",
			tenant: "globex",
			roles: ["operator"],
			ttl: 600
		});
		await startAgent("gpu-1", 2, { zone: "a" });
		await startAgent("gpu-2", 2, { zone: "b" });
		await startAgent("cpu-1", 0, { zone: "a" });
		await eventually(
			async () => (await api("get", "/api/v1/nodes")).body.total === 3,
			5000,
			"3 nodes"
		);
	});

	afterAll(async () => {
		await Promise.all([...agents.values()].map(b => b.stop()));
		await control.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("creates a tenant with a quota (admin only) and shows its usage", async () => {
		expect(
			(await api("post", "/api/v1/tenants").send({ id: "acme", quota: { gpu: 3 } })).status
		).toBe(403);
		const res = await api("post", "/api/v1/tenants", tokens.admin).send({
			id: "acme",
			name: "ACME",
			quota: { cpu: 16, memory: "64Gi", gpu: 3, workloads: 10 }
		});
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({
			id: "acme",
			quota: { cpu: 16, memory: 64 * GiB, gpu: 3, workloads: 10 },
			usage: { gpu: 0, workloads: 0 }
		});
		expect(
			(await api("post", "/api/v1/tenants", tokens.admin).send({ id: "acme" })).status
		).toBe(409);
		expect((await api("get", "/api/v1/tenants/acme", tokens.viewer)).status).toBe(200);
		expect((await api("get", "/api/v1/tenants/acme", tokens.other)).status).toBe(404);
	});

	it("places a GPU workload with binpack, tells the agent, and follows it to running", async () => {
		const res = await api("post", "/api/v1/workloads").send({
			name: "llm",
			kind: "process",
			process: { command: "python3", args: ["serve.py"] },
			resources: { cpu: 2, memory: "8Gi", gpu: 1 },
			replicas: 2
		});
		expect(res.status).toBe(201);
		expect(res.headers.location).toBe(`/api/v1/workloads/${res.body.id}`);
		expect(res.body).toMatchObject({ name: "llm", tenant: "acme", kind: "process" });
		const nodes = res.body.replicas.map((r: any) => r.node);
		// binpack: both on one GPU node, on different GPUs.
		expect(new Set(nodes).size).toBe(1);
		expect(res.body.replicas.map((r: any) => r.gpus[0]).sort()).toEqual([0, 1]);
		const id = res.body.id;
		const running = await eventually(
			async () => {
				const { body } = await api("get", `/api/v1/workloads/${id}`);
				return body.status === "running" && body;
			},
			5000,
			"running"
		);
		expect(running.events.map((e: any) => e.type)).toEqual(
			expect.arrayContaining(["created", "placed", "started"])
		);
		const node = await api("get", `/api/v1/nodes/${nodes[0]}`);
		expect(node.body.allocated).toEqual({ cpu: 4, memory: 16 * GiB, gpus: 2 });
		expect(node.body.workloads.map((w: any) => w.name)).toEqual(["llm", "llm"]);
	});

	it("refuses a workload over quota with 403 naming the quota and usage, and reserves nothing", async () => {
		const res = await api("post", "/api/v1/workloads").send({
			name: "big",
			kind: "process",
			process: { command: "x" },
			resources: { cpu: 1, memory: "1Gi", gpu: 2 }
		});
		expect(res.status).toBe(403);
		expect(res.body).toMatchObject({
			type: "QUOTA_EXCEEDED",
			data: { resource: "gpu", quota: 3, usage: 2, requested: 2 }
		});
		expect(res.body.message).toMatch(/uses 2 of 3/);
		expect((await api("get", "/api/v1/workloads/")).body.items.map((w: any) => w.name)).toEqual(
			["llm"]
		);
		expect((await api("get", "/api/v1/tenants/acme", tokens.admin)).body.usage).toMatchObject({
			gpu: 2,
			workloads: 1
		});
	});

	it("keeps tenants apart: 404 for another tenant's workload, admins see all", async () => {
		const mine = (await api("get", "/api/v1/workloads")).body.items[0].id;
		expect((await api("get", `/api/v1/workloads/${mine}`, tokens.other)).status).toBe(404);
		expect((await api("delete", `/api/v1/workloads/${mine}`, tokens.other)).status).toBe(404);
		expect((await api("get", "/api/v1/workloads", tokens.other)).body.total).toBe(0);
		expect((await api("get", "/api/v1/workloads?tenant=acme", tokens.admin)).body.total).toBe(
			1
		);
		expect((await api("post", "/api/v1/workloads", tokens.viewer).send({})).status).toBe(403);
	});

	it("shares one GPU by memory and matches node selectors", async () => {
		const res = await api("post", "/api/v1/workloads", tokens.other).send({
			name: "small",
			kind: "service",
			service: { module: "embedder" },
			resources: { cpu: "500m", memory: "1Gi", gpuMemory: "20Gi" },
			replicas: 2,
			placement: { nodeSelector: { zone: "b" } }
		});
		expect(res.status).toBe(201);
		expect(res.body.replicas.map((r: any) => [r.node, r.gpus])).toEqual([
			["gpu-2", [0]],
			["gpu-2", [0]]
		]);
	});

	it("keeps what does not fit pending with the reason, and places it when capacity frees", async () => {
		const res = await api("post", "/api/v1/workloads", tokens.other).send({
			name: "wide",
			kind: "process",
			process: { command: "x" },
			resources: { cpu: 1, memory: "1Gi", gpu: 2 }
		});
		expect(res.status).toBe(201);
		expect(res.body.status).toBe("pending");
		expect(res.body.replicas[0].reason).toMatch(
			/^0\/3 nodes fit \(cpu 1, memory 1Gi, gpu 2\): .*lack free GPUs/
		);
		const small = (await api("get", "/api/v1/workloads", tokens.other)).body.items.find(
			(w: any) => w.name === "small"
		);
		expect((await api("delete", `/api/v1/workloads/${small.id}`, tokens.other)).status).toBe(
			200
		);
		const placed = await eventually(
			async () => {
				const { body } = await api("get", `/api/v1/workloads/${res.body.id}`, tokens.other);
				return body.replicas[0].node && body;
			},
			5000,
			"the pending workload placed"
		);
		expect(placed.replicas[0]).toMatchObject({ node: "gpu-2", gpus: [0, 1] });
	});

	it("returns the same workload for a retried create with the same Idempotency-Key", async () => {
		const body = processWorkload("once", { cpu: 0.5, memory: "256Mi" });
		const a = await api("post", "/api/v1/workloads").set("Idempotency-Key", "k-1").send(body);
		const b = await api("post", "/api/v1/workloads").set("Idempotency-Key", "k-1").send(body);
		expect(a.status).toBe(201);
		expect(b.body.id).toBe(a.body.id);
		const badKey = await api("post", "/api/v1/workloads")
			.set("Idempotency-Key", "x".repeat(300))
			.send(body);
		expect(badKey.status).toBe(422);
		const again = await api("post", "/api/v1/workloads").send(body);
		expect(again.status).toBe(409);
		expect(again.body.type).toBe("CONFLICT");
	});

	it("scales up and down, charging and refunding the quota", async () => {
		const id = (await api("get", "/api/v1/workloads")).body.items.find(
			(w: any) => w.name === "once"
		).id;
		const up = await api("post", `/api/v1/workloads/${id}/scale`).send({ replicas: 3 });
		expect(up.status).toBe(200);
		expect(up.body.replicas).toHaveLength(3);
		expect(up.body.replicas.every((r: any) => r.node)).toBe(true);
		const down = await api("post", `/api/v1/workloads/${id}/scale`).send({ replicas: 1 });
		expect(down.body.replicas).toHaveLength(1);
		const usage = (await api("get", "/api/v1/tenants/acme", tokens.admin)).body.usage;
		expect(usage.cpu).toBeCloseTo(4 + 0.5);
		expect(
			(await api("post", `/api/v1/workloads/${id}/scale`).send({ replicas: -1 })).status
		).toBe(422);
	});

	it("refuses bad input with 4xx and stores nothing", async () => {
		const bad = [
			{ name: "x", kind: "vm", resources: { cpu: 1, memory: 1 } },
			{
				name: "x",
				kind: "process",
				resources: { cpu: 1, memory: "12Zb" },
				process: { command: "x" }
			},
			{
				name: "x",
				kind: "process",
				resources: { cpu: 1, memory: 1, gpu: 1, gpuMemory: "1Gi" },
				process: { command: "x" }
			},
			{ name: "x", kind: "process", resources: { cpu: 1, memory: 1 } },
			{
				name: "x",
				kind: "process",
				resources: { cpu: 1, memory: 1 },
				process: { command: "x" },
				colour: "red"
			},
			{
				name: "bad name!",
				kind: "process",
				resources: { cpu: 1, memory: 1 },
				process: { command: "x" }
			}
		];
		const before = (await api("get", "/api/v1/workloads")).body.total;
		for (const body of bad) {
			const res = await api("post", "/api/v1/workloads").send(body);
			expect([400, 422]).toContain(res.status);
		}
		expect((await api("get", "/api/v1/workloads")).body.total).toBe(before);
	});

	it("moves the replicas of a lost node elsewhere, once", async () => {
		const llm = (await api("get", "/api/v1/workloads")).body.items.find(
			(w: any) => w.name === "llm"
		);
		const from = llm.replicas[0].node;
		// Leave room: the other GPU node is busy with "wide"; delete it.
		const wide = (await api("get", "/api/v1/workloads", tokens.other)).body.items.find(
			(w: any) => w.name === "wide"
		);
		await api("delete", `/api/v1/workloads/${wide.id}`, tokens.other);
		await agents.get(from)!.stop();
		const moved = await eventually(
			async () => {
				const { body } = await api("get", `/api/v1/workloads/${llm.id}`);
				return (
					body.replicas.every(
						(r: any) => r.node && r.node !== from && r.state === "running"
					) && body
				);
			},
			10_000,
			"replicas moved"
		);
		// Fences grow per workload: placements 1 and 2 were the first ones, 3 and 4 the moves.
		expect(moved.replicas.map((r: any) => r.fence)).toEqual([3, 4]);
		expect(moved.events.filter((e: any) => e.type === "rescheduled")).toHaveLength(2);
		expect((await api("get", `/api/v1/nodes/${from}`)).body.allocated).toEqual({
			cpu: 0,
			memory: 0,
			gpus: 0
		});
	});

	it("drains a node: its workloads move and it takes nothing new", async () => {
		const llm = (await api("get", "/api/v1/workloads")).body.items.find(
			(w: any) => w.name === "llm"
		);
		const at = llm.replicas[0].node;
		await startAgent(at === "gpu-1" ? "gpu-1b" : "gpu-1", 2);
		await eventually(
			async () => (await api("get", "/api/v1/nodes?status=ready")).body.total === 3,
			5000,
			"a new GPU node"
		);
		expect((await api("post", `/api/v1/nodes/${at}/drain`, tokens.admin)).status).toBe(200);
		await eventually(
			async () => {
				const { body } = await api("get", `/api/v1/workloads/${llm.id}`);
				return body.replicas.every((r: any) => r.node && r.node !== at) && body;
			},
			10_000,
			"replicas moved off the drained node"
		);
		// The drain request and the eviction it caused are both audited, with their actors.
		const audited = await eventually(
			async () => {
				const { body } = await api("get", `/api/v1/audit?target=${llm.id}`, tokens.admin);
				return body.items.find((r: any) => r.action === "scheduler.evict") && body.items;
			},
			5000,
			"the eviction's audit record"
		);
		expect(audited[0]).toMatchObject({
			kind: "system",
			actor: "system:scheduler",
			tenant: llm.tenant,
			outcome: { succeeded: true }
		});
		const drain = await api(
			"get",
			`/api/v1/audit?action=nodes.drain&target=${at}`,
			tokens.admin
		);
		expect(drain.body.items).toEqual([
			expect.objectContaining({
				actor: "root",
				method: "POST",
				outcome: { status: 200, succeeded: true }
			})
		]);
	});

	it("deletes a workload: its resources and quota come back", async () => {
		for (const w of (await api("get", "/api/v1/workloads")).body.items)
			expect((await api("delete", `/api/v1/workloads/${w.id}`)).status).toBe(200);
		expect((await api("get", "/api/v1/tenants/acme", tokens.admin)).body.usage).toMatchObject({
			cpu: 0,
			memory: 0,
			gpu: 0,
			workloads: 0
		});
		// The list follows the scheduler's announcements (here once a second).
		await eventually(
			async () =>
				(await api("get", "/api/v1/nodes")).body.items
					.filter((n: any) => n.status !== "down")
					.every((n: any) => n.allocated.gpus === 0 || n.id === "gpu-2"),
			3000,
			"the list to show the GPUs given back"
		);
	});

	it("places waiting workloads by priority, then first come first served", async () => {
		await startAgent("fifo-node", 2, { pool: "fifo" });
		await eventually(
			async () => (await api("get", "/api/v1/nodes/fifo-node")).body.status === "ready",
			5000,
			"fifo-node"
		);
		const create = (name: string, priority: number) =>
			api("post", "/api/v1/workloads", tokens.other).send({
				name,
				kind: "process",
				process: { command: "x" },
				resources: { cpu: 1, memory: "1Gi", gpu: 2 },
				priority,
				placement: { nodeSelector: { pool: "fifo" } }
			});
		const first = (await create("first", 0)).body;
		expect(first.replicas[0].node).toBe("fifo-node");
		const low = (await create("low", 0)).body;
		const high = (await create("high", 5)).body;
		const low2 = (await create("low2", 0)).body;
		for (const w of [low, high, low2]) expect(w.replicas[0].node).toBeNull();

		const nodeOf = async (id: string) =>
			(await api("get", `/api/v1/workloads/${id}`, tokens.other)).body.replicas[0].node;
		await api("delete", `/api/v1/workloads/${first.id}`, tokens.other);
		await eventually(
			async () => (await nodeOf(high.id)) === "fifo-node",
			5000,
			"high placed first"
		);
		expect([await nodeOf(low.id), await nodeOf(low2.id)]).toEqual([null, null]);
		await api("delete", `/api/v1/workloads/${high.id}`, tokens.other);
		await eventually(
			async () => (await nodeOf(low.id)) === "fifo-node",
			5000,
			"then the older low"
		);
		expect(await nodeOf(low2.id)).toBeNull();
	});

	it("gives back a reservation no replica names, and places again one that lost its own", async () => {
		const created = await api("post", "/api/v1/workloads").send({
			name: "audited",
			kind: "process",
			process: { command: "x" },
			resources: { cpu: 1, memory: "1Gi" }
		});
		expect(created.status).toBe(201);
		const w = created.body;
		const node: string = w.replicas[0].node;
		expect(node).toBeTruthy();
		const direct = new SqliteStore(store);
		const ALLOCATIONS = COLLECTIONS.allocations;
		const allocation = async () => (await direct.get<Allocation>(ALLOCATIONS, node))!;
		try {
			const before = (await allocation()).value.cpu;
			// A crash between a reservation and its workload's write leaves one nobody names.
			const resources = { cpu: 2, memory: GiB, gpu: 0, gpuMemory: 0 };
			const a = await allocation();
			await direct.transact(
				[{ collection: ALLOCATIONS, id: node, version: a.version }],
				[
					{
						collection: PLACEMENTS,
						id: "ghost/0@1",
						value: { nodeID: node, gpus: [], resources, at: 0 }
					},
					{
						collection: ALLOCATIONS,
						id: node,
						value: reserve(a.value, "ghost/0@1", resources, [])
					}
				]
			);
			await eventually(
				async () =>
					(await direct.get(PLACEMENTS, "ghost/0@1")) === null &&
					(await allocation()).value.cpu === before,
				5000,
				"the orphan reservation given back"
			);
			// A replica whose reservation is gone (a store restored from an old backup, say).
			const key = `${w.id}/0@${w.replicas[0].fence}`;
			const b = await allocation();
			await direct.transact(
				[{ collection: ALLOCATIONS, id: node, version: b.version }],
				[
					{ collection: PLACEMENTS, id: key, value: null },
					{
						collection: ALLOCATIONS,
						id: node,
						value: release(b.value, key, w.resources, [])
					}
				]
			);
			const again = await eventually(
				async () => {
					const { body } = await api("get", `/api/v1/workloads/${w.id}`);
					const r = body.replicas[0];
					return r.fence > w.replicas[0].fence && r.node && body;
				},
				5000,
				"the replica placed again"
			);
			const placed = `${w.id}/0@${again.replicas[0].fence}`;
			expect(await direct.get(PLACEMENTS, placed)).not.toBeNull();
			expect((await allocation()).value.cpu).toBe(before);
		} finally {
			await direct.close();
		}
	});

	it("re-tells idle nodes their lists too, so a replica whose stop was lost stops", async () => {
		const { body } = await api("get", "/api/v1/nodes?status=ready");
		const idle = body.items.find((n: any) => n.allocated.cpu === 0);
		expect(idle).toBeDefined();
		const agent = agents.get(idle.id)!.getLocalService("agent") as any;
		// As if the sync that should have stopped a deleted workload's replica never arrived.
		agent.running.push({
			workloadId: "deleted",
			replica: 0,
			fence: 1,
			gpus: [],
			resources: { cpu: 0, memory: 0, gpu: 0, gpuMemory: 0 }
		});
		await eventually(
			async () => !agent.running.some((r: any) => r.workloadId === "deleted"),
			5000,
			"the stray replica dropped by a full list"
		);
	});

	it("announces a node's allocation once per while, with the latest", async () => {
		const create = (name: string) => createOther(name, { cpu: 1, memory: "1Gi" });
		const first = await create("burst-1");
		const at = first.replicas[0].node;
		const before = (await api("get", `/api/v1/nodes/${at}`)).body.allocated.cpu;
		// Past the announcement of the first commit (and of earlier tests' changes): the next
		// two commits are the first of a new while.
		await new Promise(resolve => setTimeout(resolve, 1200));
		announced.length = 0;
		const made = [first, await create("burst-2"), await create("burst-3")];
		// binpack: the fullest node that fits, fuller with each. Two more commits on that node.
		expect(made.map(w => w.replicas[0].node)).toEqual([at, at, at]);
		// The node's read shows them at once; the announcement follows with their sum.
		expect((await api("get", `/api/v1/nodes/${at}`)).body.allocated.cpu).toBe(before + 2);
		const heard = await eventually(
			async () => {
				const mine = announced.filter(e => e.nodeID === at);
				return mine.at(-1)?.allocated.cpu === before + 2 && mine;
			},
			3000,
			"the node's allocation announced"
		);
		expect(heard.length).toBeLessThan(2);
		for (const w of made) await api("delete", `/api/v1/workloads/${w.id}`, tokens.other);
	});

	it("explains what does not fit with the nodes as they are now", async () => {
		const draining = (await api("get", "/api/v1/nodes?status=draining")).body.total;
		const saysDraining = (n: number) =>
			n === 1 ? "1 node is draining" : `${n} nodes are draining`;
		const first = await createOther("four-gpus", { cpu: 1, memory: "1Gi", gpu: 4 });
		expect(first.replicas[0].reason).toMatch(/^0\/\d+ nodes fit .*lack free GPUs/);
		expect(first.replicas[0].reason).toContain(saysDraining(draining));
		expect((await api("post", "/api/v1/nodes/cpu-1/drain", tokens.admin)).status).toBe(200);
		try {
			// Reconcile tries it again, and its reason follows the drain.
			await eventually(
				async () =>
					(
						await api("get", `/api/v1/workloads/${first.id}`, tokens.other)
					).body.replicas[0].reason.includes(saysDraining(draining + 1)),
				5000,
				"the reason to name the draining node"
			);
		} finally {
			await api("post", "/api/v1/nodes/cpu-1/uncordon", tokens.admin);
			await api("delete", `/api/v1/workloads/${first.id}`, tokens.other);
		}
	});

	it("creates and deletes what comes at once in one transaction, each answered as if alone", async () => {
		await api("post", "/api/v1/tenants", tokens.admin).send({
			id: "grp",
			quota: { workloads: 3 }
		});
		const user = { sub: "gina", tenant: "grp", roles: ["operator"] };
		const lifecycle = (control.getLocalService("scheduler") as any).lifecycle;
		const groups: number[] = [];
		for (const method of ["createTogether", "removeTogether"]) {
			const original = lifecycle[method];
			lifecycle[method] = (group: unknown[]) => {
				groups.push(group.length);
				return original.call(lifecycle, group);
			};
		}
		const settle = (p: Promise<any>): Promise<{ ok?: any; code?: number }> =>
			p.then(
				ok => ({ ok }),
				err => ({ code: err.code as number })
			);
		const create = (name: string, key?: string) =>
			settle(
				control.call(
					"scheduler.create",
					processWorkload(name, { cpu: 0.25, memory: "64Mi" }),
					{ meta: { user, ...(key ? { idempotencyKey: key } : {}) } }
				)
			);
		const [once, retried, g2, g2again, g3, g4] = await Promise.all([
			create("g1", "k1"),
			create("g1", "k1"),
			create("g2"),
			create("g2"),
			create("g3"),
			create("g4")
		]);
		expect(groups).toEqual([6]);
		expect(retried.ok.id).toBe(once.ok.id);
		expect(g2.ok.name).toBe("g2");
		expect(g2again).toEqual({ code: 409 });
		expect(g3.ok.name).toBe("g3");
		expect(g4).toEqual({ code: 403 });
		const usage = async () =>
			(await api("get", "/api/v1/tenants/grp", tokens.admin)).body.usage;
		expect(await usage()).toMatchObject({ cpu: 0.75, workloads: 3 });

		const remove = (id: string) =>
			settle(control.call("scheduler.remove", { id }, { meta: { user } }));
		const removed = await Promise.all([
			remove(once.ok.id),
			remove(once.ok.id),
			remove(g2.ok.id),
			remove(g3.ok.id),
			remove("no-such-workload")
		]);
		expect(groups).toEqual([6, 5]);
		expect(removed.map(r => r.ok?.name ?? r.code)).toEqual(["g1", 404, "g2", "g3", 404]);
		expect(await usage()).toMatchObject({ cpu: 0, memory: 0, workloads: 0 });
		// Their names are free again.
		const again = await create("g1");
		expect(again.ok.name).toBe("g1");
		await remove(again.ok.id);
	});

	it("takes an Idempotency-Key again once its workload is deleted", async () => {
		const body = processWorkload("keyed", { cpu: 0.25, memory: "64Mi" });
		const post = () =>
			api("post", "/api/v1/workloads", tokens.other)
				.set("Idempotency-Key", "k-re")
				.send(body);
		const first = await post();
		expect(first.status).toBe(201);
		expect(
			(await api("delete", `/api/v1/workloads/${first.body.id}`, tokens.other)).status
		).toBe(200);
		const again = await post();
		expect(again.status).toBe(201);
		expect(again.body.id).not.toBe(first.body.id);
		// And it stands for the new one now.
		expect((await post()).body.id).toBe(again.body.id);
		await api("delete", `/api/v1/workloads/${again.body.id}`, tokens.other);
	});
});
