/**
 * Turns what the monitor knows of the cluster into samples, once per evaluation: each node's
 * usage, the cluster totals, the workloads' replicas by state and the last known health of every
 * service endpoint and resource. `METRICS` lists every metric produced here, which is what alert
 * rules and `stats` may name. No I/O: the service feeds `ClusterView` from events and actions.
 */
import type { PublicHealth } from "../registry/health";
import { isClusterOwned, type Owned } from "../shared/principal";
import { workloadStatus, Workload, WorkloadStatus } from "../scheduler/workload";
import type { NodeInfo, NodeReport, NodeStatus, ReplicaState } from "../shared/types";
import type { Labels, Sample } from "./timeseries";
import { ClusterTotals, clusterTotals, MonitoredNode } from "./totals";

/**
 * Every metric the monitor samples, with its labels: what alert rules and `stats` may name.
 * Percentages are 0–100, memory in bytes, CPU in cores, temperature in °C.
 */
export const METRICS: Record<string, { labels: string[]; help: string }> = {
	"node.status": {
		labels: ["node"],
		help: "1 while the node reports (ready or draining), 0 down"
	},
	"node.cpu.usage": { labels: ["node"], help: "CPU busy, % of all cores" },
	"node.memory.usage": { labels: ["node"], help: "memory used, % of capacity" },
	"node.gpu.utilization": { labels: ["node", "gpu"], help: "GPU busy, %" },
	"node.gpu.memory.used": { labels: ["node", "gpu"], help: "GPU memory used, bytes" },
	"node.gpu.temperature": { labels: ["node", "gpu"], help: "GPU temperature, °C" },
	"cluster.cpu.capacity": { labels: [], help: "cores on nodes that are up" },
	"cluster.cpu.used": { labels: [], help: "cores busy" },
	"cluster.cpu.allocated": { labels: [], help: "cores reserved by workloads" },
	"cluster.memory.capacity": { labels: [], help: "bytes on nodes that are up" },
	"cluster.memory.used": { labels: [], help: "bytes used" },
	"cluster.memory.allocated": { labels: [], help: "bytes reserved by workloads" },
	"cluster.gpu.total": { labels: [], help: "GPUs on nodes that are up" },
	"cluster.gpu.free": { labels: [], help: "GPUs not reserved on ready nodes" },
	"cluster.gpu.allocated": { labels: [], help: "GPUs reserved by workloads" },
	"cluster.nodes": { labels: ["status"], help: "nodes by status" },
	"cluster.nodes.held": {
		labels: [],
		help: "silent nodes not declared down: this side is blind, or too many went silent at once"
	},
	"cluster.store.identity": {
		labels: [],
		help: "1 while the store is the cluster's, 0 while it is not used (its identity is missing or another's)"
	},
	workloads: { labels: ["state"], help: "workloads by status" },
	"workloads.pending": { labels: [], help: "workloads waiting for a place" },
	"workload.replicas": {
		labels: ["workload", "name", "tenant", "state"],
		help: "a workload's replicas by state"
	},
	"service.health": {
		labels: ["name", "endpoint", "tenant"],
		help: "1 healthy, 0 unhealthy, per endpoint (none for Moleculer services); a tenant's services carry `tenant`"
	},
	"resource.health": {
		labels: ["id", "name", "tenant"],
		help: "1 healthy, 0 unhealthy; a tenant's resources carry `tenant`"
	}
};

/**
 * `{tenant}` for a tenant's object, nothing for the cluster's (or an event without owner). A
 * tenant's object that names no tenant gets "", which no tenant's user may see: admins only.
 */
function ownerLabel(owner: Owned): { tenant?: string } {
	if (isClusterOwned(owner)) return {};
	return { tenant: typeof owner.tenant === "string" ? owner.tenant : "" };
}

function percent(part: number, whole: number): number {
	return whole > 0 ? (part / whole) * 100 : 0;
}

/**
 * A node's series: `node.status` (1 while it reports, ready or draining; 0 down), and while
 * it is up `node.cpu.usage` and `node.memory.usage` in percent, and per GPU
 * `node.gpu.utilization` (%), `node.gpu.memory.used` (bytes), `node.gpu.temperature` (°C).
 */
export function nodeSamples(n: MonitoredNode): Sample[] {
	const node = { node: n.id };
	const out: Sample[] = [
		{ metric: "node.status", labels: node, value: n.status === "down" ? 0 : 1 }
	];
	if (n.status === "down" || !n.usage) return out;
	out.push(
		{ metric: "node.cpu.usage", labels: node, value: n.usage.cpuPercent },
		{
			metric: "node.memory.usage",
			labels: node,
			value: percent(n.usage.memory, n.capacity.memory)
		}
	);
	for (const g of n.usage.gpus) {
		const gpu = { node: n.id, gpu: String(g.index) };
		out.push(
			{ metric: "node.gpu.utilization", labels: gpu, value: g.utilization },
			{ metric: "node.gpu.memory.used", labels: gpu, value: g.memoryUsed }
		);
		if (g.temperature !== null)
			out.push({ metric: "node.gpu.temperature", labels: gpu, value: g.temperature });
	}
	return out;
}

/** `cluster.*`: CPU in cores, memory in bytes, GPUs in units, nodes by `status`. */
export function clusterSamples(t: ClusterTotals): Sample[] {
	const out: Sample[] = [];
	for (const kind of ["cpu", "memory"] as const)
		for (const what of ["capacity", "used", "allocated"] as const)
			out.push({ metric: `cluster.${kind}.${what}`, labels: {}, value: t[kind][what] });
	out.push(
		{ metric: "cluster.gpu.total", labels: {}, value: t.gpu.total },
		{ metric: "cluster.gpu.free", labels: {}, value: t.gpu.free },
		{ metric: "cluster.gpu.allocated", labels: {}, value: t.gpu.allocated }
	);
	for (const status of Object.keys(t.nodes) as NodeStatus[])
		out.push({ metric: "cluster.nodes", labels: { status }, value: t.nodes[status] });
	return out;
}

export const WORKLOAD_STATES: WorkloadStatus[] = [
	"pending",
	"running",
	"degraded",
	"failed",
	"stopped"
];
export const REPLICA_STATES: ReplicaState[] = [
	"pending",
	"starting",
	"running",
	"failed",
	"stopped"
];

/** Workloads by status. */
export function workloadCounts(workloads: Workload[]): Record<WorkloadStatus, number> {
	const counts = { pending: 0, running: 0, degraded: 0, failed: 0, stopped: 0 };
	for (const w of workloads) counts[workloadStatus(w)]++;
	return counts;
}

/**
 * `workloads{state}` and `workloads.pending` (workloads by status), and per workload
 * `workload.replicas{workload,name,tenant,state}` (its replicas in each state).
 */
export function workloadSamples(workloads: Workload[]): Sample[] {
	const counts = workloadCounts(workloads);
	const out: Sample[] = WORKLOAD_STATES.map(state => ({
		metric: "workloads",
		labels: { state },
		value: counts[state]
	}));
	out.push({ metric: "workloads.pending", labels: {}, value: counts.pending });
	for (const w of workloads) {
		const base = { workload: w.id, name: w.name, tenant: w.tenant };
		for (const state of REPLICA_STATES)
			out.push({
				metric: "workload.replicas",
				labels: { ...base, state },
				value: w.replicas.filter(r => r.state === state).length
			});
	}
	return out;
}

/** 1 healthy, 0 unhealthy; null for unknown (no value rather than a guess). */
export function healthValue(status: string): number | null {
	return status === "healthy" ? 1 : status === "unhealthy" ? 0 : null;
}

/**
 * The monitor's picture of the cluster between two evaluations: nodes from the inventory's
 * events and the agents' reports, workloads from the scheduler, health from the registry.
 */
export class ClusterView {
	readonly nodes = new Map<string, MonitoredNode>();
	/**
	 * The registry announces health only when it changes, so the last known value of each
	 * endpoint and resource is kept (and saved in the snapshot) until the next change.
	 */
	readonly health = new Map<string, Sample>();
	workloads: Workload[] = [];
	/** Silent nodes the inventory holds instead of declaring them down (nodes/liveness.ts). */
	held = 0;
	/** Whether the store is the cluster's (services/shared/store/identity.ts); null: not known. */
	storeIdentity: boolean | null = null;

	/** An agent's report. Only a live agent reports, so a node not known or down becomes ready. */
	report(r: NodeReport): void {
		const known = this.nodes.get(r.nodeID);
		this.nodes.set(r.nodeID, {
			id: r.nodeID,
			// The inventory's `node.up` event follows with the exact status (ready or draining).
			status: !known || known.status === "down" ? "ready" : known.status,
			capacity: r.capacity,
			usage: r.usage,
			allocated: known?.allocated ?? { cpu: 0, memory: 0, gpus: 0 }
		});
	}

	/** A node as the inventory has it; a node that is down has no usage. */
	setNode(info: NodeInfo): void {
		this.nodes.set(info.id, {
			id: info.id,
			status: info.status,
			capacity: info.capacity,
			usage: info.status === "down" ? null : info.usage,
			allocated: info.allocated
		});
	}

	/** The whole inventory replaces what was known: nodes it no longer lists are dropped. */
	setNodes(items: NodeInfo[]): void {
		this.nodes.clear();
		for (const info of items) this.setNode(info);
	}

	/** What the scheduler reserved on a node; ignored for a node not known yet. */
	setAllocated(nodeID: string, allocated: NodeInfo["allocated"]): void {
		const node = this.nodes.get(nodeID);
		if (node) node.allocated = allocated;
	}

	/** A resource's health; a tenant's resource (the event's `owner`) is labelled `tenant`. */
	resourceHealth(id: string, name: string, health: PublicHealth, owner: Owned = {}): void {
		const labels: Labels = { id, name, ...ownerLabel(owner) };
		this.setHealth(`resource\u0000${id}`, "resource.health", labels, health);
	}

	/**
	 * A service's health, per endpoint for external services (Moleculer services have none);
	 * a tenant's service is labelled `tenant`, so two tenants' services of a name stay apart.
	 */
	serviceHealth(
		name: string,
		endpoint: string | undefined,
		health: PublicHealth,
		owner: Owned = {}
	): void {
		const tenant = ownerLabel(owner);
		const labels: Labels = endpoint ? { name, endpoint, ...tenant } : { name, ...tenant };
		this.setHealth(
			`service\u0000${tenant.tenant ?? ""}\u0000${name}\u0000${endpoint ?? ""}`,
			"service.health",
			labels,
			health
		);
	}

	/**
	 * Everything known now, as samples: nodes, cluster totals, workloads, health. With a
	 * tenant, what that tenant's alert rules see: the same node and cluster series, but the
	 * workload counts over its own workloads and only its own (or the cluster's) health series.
	 */
	samples(tenant?: string): Sample[] {
		const nodes = [...this.nodes.values()];
		const workloads =
			tenant === undefined ? this.workloads : this.workloads.filter(w => w.tenant === tenant);
		const health = [...this.health.values()].filter(
			s => tenant === undefined || s.labels.tenant === undefined || s.labels.tenant === tenant
		);
		return [
			...nodes.flatMap(nodeSamples),
			...clusterSamples(clusterTotals(nodes)),
			{ metric: "cluster.nodes.held", labels: {}, value: this.held },
			...workloadSamples(workloads),
			...health,
			...(this.storeIdentity === null
				? []
				: [
						{
							metric: "cluster.store.identity",
							labels: {},
							value: this.storeIdentity ? 1 : 0
						}
					])
		];
	}

	/** An unknown status drops the series: a guessed value would fire or resolve alerts. */
	private setHealth(key: string, metric: string, labels: Labels, health: PublicHealth): void {
		const value = healthValue(health.status);
		if (value === null) this.health.delete(key);
		else this.health.set(key, { metric, labels, value });
	}
}
