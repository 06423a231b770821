/**
 * The cluster's and each node's usage in percent, from the nodes' latest reports: what the
 * tiles show and what the charts add a point of on every batch of reports. Pure.
 */
import type { ClusterTotals, MonitoredNode } from "../../monitor/timeseries";
import type { NodeInfo } from "../../shared/types";
import { percent } from "./format";

/**
 * Totals over the nodes that are up. This is services/monitor/timeseries.ts `clusterTotals`
 * (what the monitor records as the `cluster.*` series the history chart draws), which the page
 * cannot import: timeseries.ts imports scheduler/workload.ts, and that imports shared/errors.ts
 * and so moleculer. test/unit/gateway/dashboard/usage.spec.ts checks that both agree.
 */
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
		if (n.status === "ready")
			t.gpu.free += Math.max(0, n.capacity.gpus.length - n.allocated.gpus);
	}
	return t;
}

/** CPU, memory and GPU busy in percent; gpu is null where there is no GPU. */
export interface Percents {
	cpu: number;
	mem: number;
	gpu: number | null;
}

/**
 * The average utilization of every GPU on the nodes that are up (a GPU without a report
 * counts as idle); null without GPUs. The monitor has no such total: its history is per GPU.
 */
export function gpuUtilization(nodes: Iterable<MonitoredNode>): number | null {
	let sum = 0;
	let n = 0;
	for (const node of nodes) {
		if (node.status === "down") continue;
		const byIndex = new Map((node.usage?.gpus ?? []).map(g => [g.index, g.utilization]));
		for (const g of node.capacity.gpus) {
			sum += byIndex.get(g.index) ?? 0;
			n++;
		}
	}
	return n ? sum / n : null;
}

/** The cluster's usage in percent, with the totals it comes from (the tiles print both). */
export interface ClusterUsage extends Percents {
	totals: ClusterTotals;
}

export function clusterUsage(nodes: readonly MonitoredNode[]): ClusterUsage {
	const totals = clusterTotals(nodes);
	return {
		totals,
		cpu: percent(totals.cpu.used, totals.cpu.capacity),
		mem: percent(totals.memory.used, totals.memory.capacity),
		gpu: gpuUtilization(nodes)
	};
}

/**
 * One node's usage in percent, as the monitor samples it (`node.cpu.usage`,
 * `node.memory.usage`), and its GPUs' average utilization; zeros before its first report.
 */
export function nodePercents(n: Pick<NodeInfo, "capacity" | "usage">): Percents {
	const u = n.usage;
	if (!u) return { cpu: 0, mem: 0, gpu: null };
	return {
		cpu: u.cpuPercent,
		mem: percent(u.memory, n.capacity.memory),
		gpu: u.gpus.length ? u.gpus.reduce((s, g) => s + g.utilization, 0) / u.gpus.length : null
	};
}
