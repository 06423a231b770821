/**
 * The cluster's and each node's usage in percent, from the nodes' latest reports: what the
 * tiles show and what the charts add a point of on every batch of reports. Pure.
 */
import { ClusterTotals, clusterTotals, MonitoredNode } from "../../monitor/totals";
import type { NodeInfo } from "../../shared/types";
import { percent } from "./format";

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
