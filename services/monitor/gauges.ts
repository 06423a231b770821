/**
 * The Prometheus gauges the monitor defines, and the values it sets on them after each
 * evaluation. The gateway serves them on /metrics; Moleculer's Prometheus reporter writes the
 * dots of the names as underscores (`isa.node.up` becomes `isa_node_up`).
 */
import type { MetricRegistry } from "moleculer";
import { SEVERITIES, Severity } from "./alerts";
import { ClusterView, workloadCounts, WORKLOAD_STATES } from "./sampling";
import { Labels, seriesKey } from "./timeseries";

export const GAUGES: Record<string, { labelNames: string[]; description: string }> = {
	"isa.node.up": { labelNames: ["node"], description: "1 while the node reports, 0 when down" },
	"isa.node.cpu.capacity": { labelNames: ["node"], description: "CPU cores of the node" },
	"isa.node.cpu.usage": { labelNames: ["node"], description: "CPU cores busy" },
	"isa.node.memory.capacity": { labelNames: ["node"], description: "Memory of the node, bytes" },
	"isa.node.memory.usage": { labelNames: ["node"], description: "Memory used, bytes" },
	"isa.node.gpu.count": { labelNames: ["node"], description: "GPUs of the node" },
	"isa.node.gpu.utilization": {
		labelNames: ["node", "gpu"],
		description: "GPU utilization, percent"
	},
	"isa.node.gpu.memory.capacity": {
		labelNames: ["node", "gpu"],
		description: "GPU memory, bytes"
	},
	"isa.node.gpu.memory.used": {
		labelNames: ["node", "gpu"],
		description: "GPU memory used, bytes"
	},
	"isa.node.gpu.temperature": {
		labelNames: ["node", "gpu"],
		description: "GPU temperature, degrees Celsius"
	},
	"isa.node.allocated.cpu": { labelNames: ["node"], description: "CPU cores reserved" },
	"isa.node.allocated.memory": { labelNames: ["node"], description: "Memory reserved, bytes" },
	"isa.node.allocated.gpus": { labelNames: ["node"], description: "GPUs reserved" },
	"isa.workloads": { labelNames: ["state"], description: "Workloads by status" },
	"isa.health.status": {
		labelNames: ["kind", "name"],
		description: "1 healthy, 0 unhealthy (a service: all its endpoints)"
	},
	"isa.alerts.firing": { labelNames: ["severity"], description: "Alerts firing by severity" }
};

/** One labelled value of one gauge. */
export interface GaugeValue {
	name: string;
	value: number;
	labels: Labels;
}

/** Registers the gauges; a monitor restarted in the same broker finds them registered already. */
export function registerGauges(metrics: MetricRegistry): void {
	for (const [name, def] of Object.entries(GAUGES))
		if (!metrics.hasMetric(name)) metrics.register({ type: "gauge", name, ...def });
}

/**
 * Every gauge's values for the current state: per node its capacity, reservations and (while it
 * reports) usage; workloads by status; health per service or resource, where a service with
 * several endpoints counts as healthy only if all of them are; firing alerts per severity.
 */
export function gaugeValues(
	cluster: Pick<ClusterView, "nodes" | "workloads" | "health">,
	firing: Record<Severity, number>
): GaugeValue[] {
	const out: GaugeValue[] = [];
	const set = (name: string, value: number, labels: Labels) => out.push({ name, value, labels });
	for (const n of cluster.nodes.values()) {
		const node = { node: n.id };
		set("isa.node.up", n.status === "down" ? 0 : 1, node);
		set("isa.node.cpu.capacity", n.capacity.cpu, node);
		set("isa.node.memory.capacity", n.capacity.memory, node);
		set("isa.node.gpu.count", n.capacity.gpus.length, node);
		set("isa.node.allocated.cpu", n.allocated.cpu, node);
		set("isa.node.allocated.memory", n.allocated.memory, node);
		set("isa.node.allocated.gpus", n.allocated.gpus, node);
		for (const g of n.capacity.gpus)
			set("isa.node.gpu.memory.capacity", g.memory, { ...node, gpu: String(g.index) });
		if (!n.usage) continue;
		set("isa.node.cpu.usage", n.usage.cpu, node);
		set("isa.node.memory.usage", n.usage.memory, node);
		for (const g of n.usage.gpus) {
			const gpu = { ...node, gpu: String(g.index) };
			set("isa.node.gpu.utilization", g.utilization, gpu);
			set("isa.node.gpu.memory.used", g.memoryUsed, gpu);
			if (g.temperature !== null) set("isa.node.gpu.temperature", g.temperature, gpu);
		}
	}
	const counts = workloadCounts(cluster.workloads);
	for (const state of WORKLOAD_STATES) set("isa.workloads", counts[state], { state });
	const health = new Map<string, { kind: string; name: string; value: number }>();
	for (const s of cluster.health.values()) {
		const kind = s.metric === "resource.health" ? "resource" : "service";
		const key = seriesKey(kind, { name: s.labels.name });
		const prev = health.get(key);
		health.set(key, { kind, name: s.labels.name, value: Math.min(prev?.value ?? 1, s.value) });
	}
	for (const h of health.values())
		set("isa.health.status", h.value, { kind: h.kind, name: h.name });
	for (const severity of SEVERITIES) set("isa.alerts.firing", firing[severity], { severity });
	return out;
}

/**
 * Replaces the values of every gauge, so a node or service that went away leaves no stale line
 * behind. Synchronous: a scrape never sees half of an update.
 */
export function setGauges(metrics: MetricRegistry, values: GaugeValue[]): void {
	for (const name of Object.keys(GAUGES)) metrics.getMetric(name)?.clear();
	for (const v of values) metrics.set(v.name, v.value, v.labels);
}
