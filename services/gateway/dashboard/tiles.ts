/** The header's tiles: nodes, CPU, memory and GPU of the cluster, and workloads by status. */
import { byId } from "./dom";
import { formatCores, formatPercent } from "./format";
import { formatSize } from "../../shared/format";
import { DashboardState, workloadCounts } from "./state";
import { clusterUsage } from "./usage";

/** "ready · 2 draining · 1 down": the first word, then only the counts that are not 0. */
function sub(first: string, counts: [string, number][]): string {
	return [first, ...counts.filter(([, n]) => n > 0).map(([what, n]) => `${n} ${what}`)].join(
		" · "
	);
}

export function renderTiles(state: DashboardState): void {
	byId("tiles").hidden = false;
	const usage = clusterUsage([...state.nodes.values()]);
	const t = usage.totals;
	byId("t-nodes").textContent = String(t.nodes.ready);
	byId("t-nodes-sub").textContent = sub("ready", [
		["draining", t.nodes.draining],
		["down", t.nodes.down]
	]);
	byId("t-cpu").textContent = formatPercent(usage.cpu);
	byId("t-cpu-sub").textContent = `${formatCores(t.cpu.capacity)} cores`;
	byId("t-mem").textContent = formatPercent(usage.mem);
	byId("t-mem-sub").textContent = formatSize(t.memory.capacity);
	byId("t-gpu").textContent = t.gpu.total ? formatPercent(usage.gpu) : "–";
	byId("t-gpu-sub").textContent = `${t.gpu.total} GPUs · ${t.gpu.allocated} reserved`;
	const w = workloadCounts(state.workloads.values());
	byId("t-wl").textContent = String(w.running);
	byId("t-wl-sub").textContent = sub("running", [
		["pending", w.pending],
		["degraded", w.degraded],
		["failed", w.failed]
	]);
}
