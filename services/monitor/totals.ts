/**
 * The cluster's totals over its nodes: what the monitor records as the `cluster.*` series and
 * what the dashboard's tiles show live. Imports types only, so that the page can bundle it.
 */
import type { Capacity, NodeStatus, Usage } from "../shared/types";

/** The part of a node (NodeInfo, or what a report told) that the samples come from. */
export interface MonitoredNode {
	id: string;
	status: NodeStatus;
	capacity: Capacity;
	usage: Usage | null;
	allocated: { cpu: number; memory: number; gpus: number };
}

/** Totals over the nodes that are up, GPUs free on ready nodes, and nodes by status. */
export interface ClusterTotals {
	cpu: { capacity: number; used: number; allocated: number };
	memory: { capacity: number; used: number; allocated: number };
	gpu: { total: number; free: number; allocated: number };
	nodes: Record<NodeStatus, number>;
}

export function clusterTotals(nodes: Iterable<MonitoredNode>): ClusterTotals {
	const t: ClusterTotals = {
		cpu: { capacity: 0, used: 0, allocated: 0 },
		memory: { capacity: 0, used: 0, allocated: 0 },
		gpu: { total: 0, free: 0, allocated: 0 },
		nodes: { ready: 0, draining: 0, down: 0 }
	};
	for (const n of nodes) {
		t.nodes[n.status]++;
		if (n.status === "down") continue;
		t.cpu.capacity += n.capacity.cpu;
		t.cpu.used += n.usage?.cpu ?? 0;
		t.cpu.allocated += n.allocated.cpu;
		t.memory.capacity += n.capacity.memory;
		t.memory.used += n.usage?.memory ?? 0;
		t.memory.allocated += n.allocated.memory;
		t.gpu.total += n.capacity.gpus.length;
		t.gpu.allocated += n.allocated.gpus;
		// A draining node takes no new placements, so its idle GPUs are not free to use.
		if (n.status === "ready")
			t.gpu.free += Math.max(0, n.capacity.gpus.length - n.allocated.gpus);
	}
	return t;
}
