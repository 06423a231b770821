import { ServiceBroker } from "moleculer";
import type { NodeInfo } from "../../../services/shared/types";
import { GAUGES, gaugeValues, registerGauges, setGauges } from "../../../services/monitor/gauges";
import { ClusterView } from "../../../services/monitor/sampling";
import { newWorkload } from "../../../services/scheduler/workload";

const GiB = 1024 ** 3;
const noFiring = { critical: 0, warning: 0, info: 0 };

function nodeInfo(id: string, status: NodeInfo["status"]): NodeInfo {
	return {
		id,
		hostname: id,
		status,
		labels: {},
		capacity: {
			cpu: 8,
			memory: 32 * GiB,
			gpus: [{ index: 0, uuid: "GPU-0", model: "A100", memory: 80 * GiB }]
		},
		usage: {
			cpu: 2,
			cpuPercent: 25,
			memory: 8 * GiB,
			gpus: [{ index: 0, utilization: 40, memoryUsed: GiB, temperature: null }],
			loadAvg: [0, 0, 0]
		},
		allocated: { cpu: 1, memory: GiB, gpus: 1 },
		lastSeen: 0,
		reportInterval: 1000,
		cordoned: false
	};
}

const health = (status: "healthy" | "unhealthy") => ({
	status,
	checkedAt: 1,
	latencyMs: 1
});

describe("gaugeValues", () => {
	it("a node that reports: capacity, reservations, usage; no temperature when unknown", () => {
		const cluster = new ClusterView();
		cluster.setNode(nodeInfo("n1", "ready"));
		const values = gaugeValues(cluster, noFiring);
		const node = { node: "n1" };
		const gpu = { node: "n1", gpu: "0" };
		expect(values.filter(v => v.name.startsWith("isa.node."))).toEqual([
			{ name: "isa.node.up", value: 1, labels: node },
			{ name: "isa.node.cpu.capacity", value: 8, labels: node },
			{ name: "isa.node.memory.capacity", value: 32 * GiB, labels: node },
			{ name: "isa.node.gpu.count", value: 1, labels: node },
			{ name: "isa.node.allocated.cpu", value: 1, labels: node },
			{ name: "isa.node.allocated.memory", value: GiB, labels: node },
			{ name: "isa.node.allocated.gpus", value: 1, labels: node },
			{ name: "isa.node.gpu.memory.capacity", value: 80 * GiB, labels: gpu },
			{ name: "isa.node.cpu.usage", value: 2, labels: node },
			{ name: "isa.node.memory.usage", value: 8 * GiB, labels: node },
			{ name: "isa.node.gpu.utilization", value: 40, labels: gpu },
			{ name: "isa.node.gpu.memory.used", value: GiB, labels: gpu }
		]);
	});

	it("a node that is down: up 0 and no usage", () => {
		const cluster = new ClusterView();
		cluster.setNode(nodeInfo("n1", "down"));
		const names = gaugeValues(cluster, noFiring).map(v => v.name);
		expect(names).toContain("isa.node.up");
		expect(names).not.toContain("isa.node.cpu.usage");
		expect(gaugeValues(cluster, noFiring)[0]).toEqual({
			name: "isa.node.up",
			value: 0,
			labels: { node: "n1" }
		});
	});

	it("workloads by status and firing alerts by severity, every state present", () => {
		const cluster = new ClusterView();
		cluster.workloads = [
			newWorkload(
				{
					name: "llm",
					kind: "process",
					process: { command: "python3" },
					resources: { cpu: 1, memory: 1 }
				},
				{ id: "w1", tenant: "acme", createdBy: "ann", seq: 1, now: 1 }
			)
		];
		const values = gaugeValues(cluster, { critical: 2, warning: 0, info: 1 });
		expect(values.filter(v => v.name === "isa.workloads")).toEqual([
			{ name: "isa.workloads", value: 1, labels: { state: "pending" } },
			{ name: "isa.workloads", value: 0, labels: { state: "running" } },
			{ name: "isa.workloads", value: 0, labels: { state: "degraded" } },
			{ name: "isa.workloads", value: 0, labels: { state: "failed" } },
			{ name: "isa.workloads", value: 0, labels: { state: "stopped" } }
		]);
		expect(values.filter(v => v.name === "isa.alerts.firing")).toEqual([
			{ name: "isa.alerts.firing", value: 2, labels: { severity: "critical" } },
			{ name: "isa.alerts.firing", value: 0, labels: { severity: "warning" } },
			{ name: "isa.alerts.firing", value: 1, labels: { severity: "info" } }
		]);
	});

	it("health per service or resource: a service is healthy only if all its endpoints are", () => {
		const cluster = new ClusterView();
		cluster.serviceHealth("api", "http://a", health("healthy"));
		cluster.serviceHealth("api", "http://b", health("unhealthy"));
		cluster.serviceHealth("users", undefined, health("healthy"));
		cluster.resourceHealth("r1", "db", health("healthy"));
		expect(gaugeValues(cluster, noFiring).filter(v => v.name === "isa.health.status")).toEqual([
			{ name: "isa.health.status", value: 0, labels: { kind: "service", name: "api" } },
			{ name: "isa.health.status", value: 1, labels: { kind: "service", name: "users" } },
			{ name: "isa.health.status", value: 1, labels: { kind: "resource", name: "db" } }
		]);
	});

	it("names only gauges that GAUGES defines, with their label names", () => {
		const cluster = new ClusterView();
		cluster.setNode(nodeInfo("n1", "ready"));
		cluster.resourceHealth("r1", "db", health("healthy"));
		for (const v of gaugeValues(cluster, noFiring))
			expect(Object.keys(v.labels).sort()).toEqual([...GAUGES[v.name].labelNames].sort());
	});
});

describe("registerGauges and setGauges", () => {
	const broker = new ServiceBroker({ logger: false, metrics: { enabled: true } });

	it("register every gauge once, and replace all values on each update", () => {
		registerGauges(broker.metrics);
		registerGauges(broker.metrics);
		for (const name of Object.keys(GAUGES))
			expect(broker.metrics.getMetric(name).type).toBe("gauge");
		setGauges(broker.metrics, [
			{ name: "isa.node.up", value: 1, labels: { node: "a" } },
			{ name: "isa.node.up", value: 1, labels: { node: "b" } }
		]);
		setGauges(broker.metrics, [{ name: "isa.node.up", value: 0, labels: { node: "b" } }]);
		const up = broker.metrics.getMetric("isa.node.up").snapshot() as {
			value: number;
			labels: Record<string, string>;
		}[];
		// Node a went away: its line is gone rather than left at its last value.
		expect(up.map(v => [v.labels.node, v.value])).toEqual([["b", 0]]);
	});
});
