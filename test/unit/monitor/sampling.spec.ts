import type { NodeInfo, NodeReport } from "../../../services/shared/types";
import {
	ClusterView,
	clusterSamples,
	healthValue,
	nodeSamples,
	workloadSamples
} from "../../../services/monitor/sampling";
import { clusterTotals, MonitoredNode } from "../../../services/monitor/totals";
import { newWorkload, Workload } from "../../../services/scheduler/workload";

const GiB = 1024 ** 3;

function node(id: string, status: MonitoredNode["status"], gpus = 2): MonitoredNode {
	return {
		id,
		status,
		capacity: {
			cpu: 8,
			memory: 32 * GiB,
			gpus: Array.from({ length: gpus }, (_, index) => ({
				index,
				uuid: `GPU-${index}`,
				model: "A100",
				memory: 80 * GiB
			}))
		},
		usage: {
			cpu: 2,
			cpuPercent: 25,
			memory: 8 * GiB,
			gpus: Array.from({ length: gpus }, (_, index) => ({
				index,
				utilization: 50 + index,
				memoryUsed: GiB,
				temperature: index === 0 ? 70 : null
			})),
			loadAvg: [0, 0, 0]
		},
		allocated: { cpu: 4, memory: 16 * GiB, gpus: 1 }
	};
}

describe("samples", () => {
	it("a node that is up: status, cpu and memory percent, each GPU (temperature when known)", () => {
		expect(nodeSamples(node("n1", "ready"))).toEqual([
			{ metric: "node.status", labels: { node: "n1" }, value: 1 },
			{ metric: "node.cpu.usage", labels: { node: "n1" }, value: 25 },
			{ metric: "node.memory.usage", labels: { node: "n1" }, value: 25 },
			{ metric: "node.gpu.utilization", labels: { node: "n1", gpu: "0" }, value: 50 },
			{ metric: "node.gpu.memory.used", labels: { node: "n1", gpu: "0" }, value: GiB },
			{ metric: "node.gpu.temperature", labels: { node: "n1", gpu: "0" }, value: 70 },
			{ metric: "node.gpu.utilization", labels: { node: "n1", gpu: "1" }, value: 51 },
			{ metric: "node.gpu.memory.used", labels: { node: "n1", gpu: "1" }, value: GiB }
		]);
	});

	it("a node that is down: only its status", () => {
		expect(nodeSamples(node("n1", "down"))).toEqual([
			{ metric: "node.status", labels: { node: "n1" }, value: 0 }
		]);
	});

	it("cluster totals count nodes that are up, and free GPUs on ready nodes only", () => {
		const t = clusterTotals([node("a", "ready"), node("b", "draining"), node("c", "down")]);
		expect(t).toEqual({
			cpu: { capacity: 16, used: 4, allocated: 8 },
			memory: { capacity: 64 * GiB, used: 16 * GiB, allocated: 32 * GiB },
			gpu: { total: 4, free: 1, allocated: 2 },
			nodes: { ready: 1, draining: 1, down: 1 }
		});
		const samples = clusterSamples(t);
		expect(samples).toContainEqual({ metric: "cluster.gpu.free", labels: {}, value: 1 });
		expect(samples).toContainEqual({
			metric: "cluster.nodes",
			labels: { status: "down" },
			value: 1
		});
		expect(samples).toContainEqual({ metric: "cluster.cpu.used", labels: {}, value: 4 });
	});

	it("workloads by status and each workload's replicas by state", () => {
		const w: Workload = newWorkload(
			{
				name: "llm",
				kind: "process",
				process: { command: "python3" },
				resources: { cpu: 1, memory: 1 },
				replicas: 2
			},
			{ id: "w1", tenant: "acme", createdBy: "ann", seq: 1, now: 1 }
		);
		w.replicas[1].state = "running";
		const samples = workloadSamples([w]);
		expect(samples).toContainEqual({
			metric: "workloads",
			labels: { state: "pending" },
			value: 1
		});
		expect(samples).toContainEqual({ metric: "workloads.pending", labels: {}, value: 1 });
		const replicas = { workload: "w1", name: "llm", tenant: "acme" };
		expect(samples).toContainEqual({
			metric: "workload.replicas",
			labels: { ...replicas, state: "pending" },
			value: 1
		});
		expect(samples).toContainEqual({
			metric: "workload.replicas",
			labels: { ...replicas, state: "failed" },
			value: 0
		});
	});

	it("health: 1 healthy, 0 unhealthy, nothing when unknown", () => {
		expect([healthValue("healthy"), healthValue("unhealthy"), healthValue("unknown")]).toEqual([
			1,
			0,
			null
		]);
	});
});

describe("ClusterView", () => {
	const info = (id: string, status: NodeInfo["status"]): NodeInfo => {
		const n = node(id, status);
		return {
			...n,
			hostname: id,
			labels: {},
			lastSeen: 0,
			reportInterval: 1000,
			cordoned: false
		};
	};
	const report = (id: string): NodeReport => {
		const n = node(id, "ready");
		return {
			nodeID: id,
			hostname: id,
			labels: {},
			capacity: n.capacity,
			usage: n.usage!,
			interval: 1000,
			sentAt: 0
		};
	};
	const health = (status: string) => ({
		status: status as "healthy",
		checkedAt: 1,
		latencyMs: 1
	});

	it("a report makes a new or down node ready, keeps draining and the reservations", () => {
		const view = new ClusterView();
		view.report(report("a"));
		expect(view.nodes.get("a")).toMatchObject({
			status: "ready",
			allocated: { cpu: 0, memory: 0, gpus: 0 }
		});
		view.setNode(info("b", "draining"));
		view.report(report("b"));
		expect(view.nodes.get("b")).toMatchObject({
			status: "draining",
			allocated: { cpu: 4, memory: 16 * GiB, gpus: 1 }
		});
		view.setNode(info("c", "down"));
		expect(view.nodes.get("c")?.usage).toBeNull();
		view.report(report("c"));
		expect(view.nodes.get("c")?.status).toBe("ready");
	});

	it("takes reservations for known nodes only, and the inventory replaces all nodes", () => {
		const view = new ClusterView();
		view.setNode(info("a", "ready"));
		view.setAllocated("a", { cpu: 1, memory: 2, gpus: 0 });
		view.setAllocated("ghost", { cpu: 1, memory: 2, gpus: 0 });
		expect(view.nodes.get("a")?.allocated).toEqual({ cpu: 1, memory: 2, gpus: 0 });
		expect(view.nodes.has("ghost")).toBe(false);
		view.setNodes([info("b", "ready")]);
		expect([...view.nodes.keys()]).toEqual(["b"]);
	});

	it("keeps the last known health per endpoint and resource, dropping unknown ones", () => {
		const view = new ClusterView();
		view.serviceHealth("api", "http://a", health("healthy"));
		view.serviceHealth("api", "http://b", health("unhealthy"));
		view.serviceHealth("users", undefined, health("unhealthy"));
		view.resourceHealth("r1", "db", health("healthy"));
		view.resourceHealth("r1", "db", health("unhealthy"));
		expect(view.samples()).toEqual(
			expect.arrayContaining([
				{
					metric: "service.health",
					labels: { name: "api", endpoint: "http://a" },
					value: 1
				},
				{
					metric: "service.health",
					labels: { name: "api", endpoint: "http://b" },
					value: 0
				},
				{ metric: "service.health", labels: { name: "users" }, value: 0 },
				{ metric: "resource.health", labels: { id: "r1", name: "db" }, value: 0 }
			])
		);
		expect(view.health.size).toBe(4);
		view.serviceHealth("api", "http://a", health("unknown"));
		expect(view.health.size).toBe(3);
	});

	it("samples nodes, cluster totals, workloads and health together", () => {
		const view = new ClusterView();
		view.setNode(info("a", "ready"));
		view.workloads = [];
		view.resourceHealth("r1", "db", health("healthy"));
		const a = node("a", "ready");
		expect(view.samples()).toEqual([
			...nodeSamples(a),
			...clusterSamples(clusterTotals([a])),
			{ metric: "cluster.nodes.held", labels: {}, value: 0 },
			...workloadSamples([]),
			{ metric: "resource.health", labels: { id: "r1", name: "db" }, value: 1 }
		]);
	});

	it("samples the nodes the inventory holds (nodes.held)", () => {
		const view = new ClusterView();
		view.held = 2;
		expect(view.samples()).toContainEqual({
			metric: "cluster.nodes.held",
			labels: {},
			value: 2
		});
	});

	it("labels a tenant's health series with its tenant; the cluster's and unowned have none", () => {
		const view = new ClusterView();
		view.resourceHealth("r1", "db", health("healthy"), { owner: "tenant", tenant: "acme" });
		view.resourceHealth("r2", "db", health("healthy"), { owner: "cluster" });
		view.resourceHealth("r3", "db", health("healthy"), { owner: "tenant" });
		// Two tenants' services of one name are two series.
		view.serviceHealth("api", "http://a", health("healthy"), {
			owner: "tenant",
			tenant: "acme"
		});
		view.serviceHealth("api", "http://a", health("unhealthy"), {
			owner: "tenant",
			tenant: "globex"
		});
		const labels = view.samples().filter(s => s.metric.endsWith(".health"));
		expect(labels).toEqual([
			{
				metric: "resource.health",
				labels: { id: "r1", name: "db", tenant: "acme" },
				value: 1
			},
			{ metric: "resource.health", labels: { id: "r2", name: "db" }, value: 1 },
			// Owned by a tenant that is not named: no tenant's user sees it, admins do.
			{ metric: "resource.health", labels: { id: "r3", name: "db", tenant: "" }, value: 1 },
			{
				metric: "service.health",
				labels: { name: "api", endpoint: "http://a", tenant: "acme" },
				value: 1
			},
			{
				metric: "service.health",
				labels: { name: "api", endpoint: "http://a", tenant: "globex" },
				value: 0
			}
		]);
	});

	it("gives a tenant's rules the nodes, the cluster and its own workloads and health only", () => {
		const view = new ClusterView();
		view.setNode(info("a", "ready"));
		const mk = (id: string, tenant: string) =>
			newWorkload(
				{
					name: id,
					kind: "process",
					process: { command: "python3" },
					resources: { cpu: 1, memory: 1 }
				},
				{ id, tenant, createdBy: "x", seq: 1, now: 1 }
			);
		view.workloads = [mk("a1", "acme"), mk("g1", "globex"), mk("g2", "globex")];
		view.resourceHealth("r1", "db", health("healthy"), { owner: "tenant", tenant: "globex" });
		view.resourceHealth("r2", "db", health("healthy"), { owner: "cluster" });
		const a = node("a", "ready");
		expect(view.samples("acme")).toEqual([
			...nodeSamples(a),
			...clusterSamples(clusterTotals([a])),
			{ metric: "cluster.nodes.held", labels: {}, value: 0 },
			// The workload counts are recounted over acme's workloads alone.
			...workloadSamples([view.workloads[0]]),
			{ metric: "resource.health", labels: { id: "r2", name: "db" }, value: 1 }
		]);
		expect(view.samples()).toContainEqual({
			metric: "workloads.pending",
			labels: {},
			value: 3
		});
		expect(view.samples("acme")).toContainEqual({
			metric: "workloads.pending",
			labels: {},
			value: 1
		});
	});
});
