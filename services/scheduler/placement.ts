/**
 * Where a replica goes: a pure decision over plain node data, so that it is unit-tested with
 * fixtures and benchmarked without a broker or a store.
 *
 * - CPU and memory are shared by request, as Kubernetes and Nomad do.
 * - `gpu: N` takes N whole GPUs, exclusively.
 * - `gpuMemory: M` shares one GPU by memory: several small models on one card, as long as the
 *   card's memory holds them all; a GPU given whole to one replica is never shared.
 * - binpack fills the fullest node that fits (keeps whole nodes free for big jobs); spread picks
 *   the emptiest (fewer replicas lost with one node).
 */
import type { Capacity, NodeInfo, NodeStatus, ResourceRequest } from "../shared/types";
import { formatSize } from "../shared/format";

/** What is reserved on one node. */
export interface Allocation {
	cpu: number;
	memory: number;
	/** Per GPU index: the replica that has it whole, or the GPU memory shared replicas took. */
	gpus: Record<number, { exclusive: string | null; memory: number }>;
}

export interface PlacementNode {
	id: string;
	status: NodeStatus;
	labels: Record<string, string>;
	capacity: Capacity;
	allocated: Allocation;
}

export type Strategy = "binpack" | "spread";

export interface PlacementRequest {
	resources: ResourceRequest;
	strategy: Strategy;
	/** Node labels that must match exactly; `gpu.model` matches a GPU model by substring. */
	nodeSelector: Record<string, string>;
	/** Nodes this replica must avoid (other replicas of the workload, with anti-affinity). */
	avoid: ReadonlySet<string>;
}

export interface Placement {
	nodeID: string;
	gpus: number[];
}

export const GPU_MODEL_SELECTOR = "gpu.model";

export function emptyAllocation(): Allocation {
	return { cpu: 0, memory: 0, gpus: {} };
}

/** GPUs this request can have on this node, or null when they are not there. */
export function pickGpus(node: PlacementNode, req: PlacementRequest): number[] | null {
	const { gpu, gpuMemory } = req.resources;
	const model = req.nodeSelector[GPU_MODEL_SELECTOR]?.toLowerCase();
	const usable = node.capacity.gpus.filter(g => !model || g.model.toLowerCase().includes(model));
	if (gpu > 0) {
		const free = usable.filter(g => {
			const a = node.allocated.gpus[g.index];
			return !a || (a.exclusive === null && a.memory === 0);
		});
		return free.length >= gpu ? free.slice(0, gpu).map(g => g.index) : null;
	}
	if (gpuMemory > 0) {
		let best: { index: number; left: number } | null = null;
		for (const g of usable) {
			const a = node.allocated.gpus[g.index];
			if (a?.exclusive) continue;
			const left = g.memory - (a?.memory ?? 0) - gpuMemory;
			if (left < 0) continue;
			// binpack: the card with the least left after; spread: the most.
			if (!best || (req.strategy === "binpack" ? left < best.left : left > best.left))
				best = { index: g.index, left };
		}
		return best ? [best.index] : null;
	}
	return [];
}

/** Why a node cannot take the request, or null when it can. */
export function unfit(node: PlacementNode, req: PlacementRequest): string | null {
	if (node.status !== "ready") return `is ${node.status}`;
	if (req.avoid.has(node.id)) return "runs another replica (anti-affinity)";
	for (const [key, value] of Object.entries(req.nodeSelector)) {
		if (key === GPU_MODEL_SELECTOR) {
			if (!node.capacity.gpus.some(g => g.model.toLowerCase().includes(value.toLowerCase())))
				return `has no ${value} GPU`;
		} else if (node.labels[key] !== value) return `does not match ${key}=${value}`;
	}
	const { cpu, memory, gpu, gpuMemory } = req.resources;
	if (node.capacity.cpu - node.allocated.cpu < cpu - 1e-9) return "lacks CPU";
	if (node.capacity.memory - node.allocated.memory < memory) return "lacks memory";
	if ((gpu > 0 || gpuMemory > 0) && !pickGpus(node, req))
		return gpu > 0 ? "lacks free GPUs" : "lacks GPU memory";
	return null;
}

/**
 * How full the node would be after placing: the mean of its CPU, memory and GPU shares. `taken`
 * (GPUs in use) can be passed by a caller that keeps it, such as the placement index.
 */
export function fullnessAfter(
	node: PlacementNode,
	r: ResourceRequest,
	taken = gpusInUse(node.allocated)
): number {
	const shares = [
		(node.allocated.cpu + r.cpu) / Math.max(node.capacity.cpu, 1e-9),
		(node.allocated.memory + r.memory) / Math.max(node.capacity.memory, 1)
	];
	const gpus = node.capacity.gpus.length;
	if (gpus > 0) shares.push((taken + r.gpu) / gpus);
	// A CPU-only request leaves GPU nodes to GPU work: prefer CPU-only nodes.
	else if (r.gpu === 0 && r.gpuMemory === 0) shares.push(1);
	return shares.reduce((a, b) => a + b, 0) / shares.length;
}

/** Why nothing fits, in the words an operator needs: how many nodes, for which reason. */
export function describeShortfall(nodes: PlacementNode[], req: PlacementRequest): string {
	if (nodes.length === 0) return "No node has joined the cluster yet.";
	const counts = new Map<string, number>();
	for (const node of nodes) {
		const reason = unfit(node, req) ?? "fits";
		counts.set(reason, (counts.get(reason) ?? 0) + 1);
	}
	const { cpu, memory, gpu, gpuMemory } = req.resources;
	const need = [`cpu ${cpu}`, `memory ${formatSize(memory)}`];
	if (gpu) need.push(`gpu ${gpu}`);
	if (gpuMemory) need.push(`gpuMemory ${formatSize(gpuMemory)}`);
	const parts = [...counts].map(([reason, n]) =>
		n === 1 ? `1 node ${reason}` : `${n} nodes ${plural(reason)}`
	);
	return `0/${nodes.length} nodes fit (${need.join(", ")}): ${parts.join("; ")}.`;
}

/** `unfit`'s reason, said of several nodes: "lacks CPU" → "lack CPU". */
function plural(reason: string): string {
	return reason.replace(/^(is|lacks|does|has|runs)\b/, verb => PLURAL_VERBS[verb]);
}

const PLURAL_VERBS: Record<string, string> = {
	is: "are",
	lacks: "lack",
	does: "do",
	has: "have",
	runs: "run"
};

/** The best node for the request, or null when none fits. */
export function place(nodes: Iterable<PlacementNode>, req: PlacementRequest): Placement | null {
	let best: { node: PlacementNode; score: number } | null = null;
	for (const node of nodes) {
		if (unfit(node, req)) continue;
		const full = fullnessAfter(node, req.resources);
		const score = req.strategy === "binpack" ? full : -full;
		if (!best || score > best.score || (score === best.score && node.id < best.node.id))
			best = { node, score };
	}
	if (!best) return null;
	return { nodeID: best.node.id, gpus: pickGpus(best.node, req) ?? [] };
}

/** A copy that `reserveInto` and `releaseInto` may change without touching `a`. */
export function copyAllocation(a: Allocation): Allocation {
	return { cpu: a.cpu, memory: a.memory, gpus: { ...a.gpus } };
}

/** The allocation after reserving `req` with `gpus` for replica `key`. */
export function reserve(
	a: Allocation,
	key: string,
	r: ResourceRequest,
	gpus: number[]
): Allocation {
	const next = copyAllocation(a);
	reserveInto(next, key, r, gpus);
	return next;
}

/** The allocation after giving back what `reserve` took. */
export function release(
	a: Allocation,
	key: string,
	r: ResourceRequest,
	gpus: number[]
): Allocation {
	const next = copyAllocation(a);
	releaseInto(next, key, r, gpus);
	return next;
}

/**
 * `reserve`, changing `a` in place: for a copy only its caller holds (several changes to one
 * node in one batch copy it once).
 */
export function reserveInto(a: Allocation, key: string, r: ResourceRequest, gpus: number[]): void {
	a.cpu += r.cpu;
	a.memory += r.memory;
	for (const index of gpus) {
		const g = a.gpus[index] ?? { exclusive: null, memory: 0 };
		a.gpus[index] =
			r.gpu > 0
				? { exclusive: key, memory: 0 }
				: { exclusive: g.exclusive, memory: g.memory + r.gpuMemory };
	}
}

/** `release`, changing `a` in place (see reserveInto). */
export function releaseInto(a: Allocation, key: string, r: ResourceRequest, gpus: number[]): void {
	a.cpu = Math.max(0, a.cpu - r.cpu);
	a.memory = Math.max(0, a.memory - r.memory);
	for (const index of gpus) {
		const g = a.gpus[index];
		if (!g) continue;
		const after =
			r.gpu > 0
				? g.exclusive === key
					? { exclusive: null, memory: g.memory }
					: g
				: { exclusive: g.exclusive, memory: Math.max(0, g.memory - r.gpuMemory) };
		if (!after.exclusive && after.memory === 0) delete a.gpus[index];
		else a.gpus[index] = after;
	}
}

/** GPUs a node has given out, whole or shared: what `/api/v1/nodes` shows as `allocated.gpus`. */
export function gpusInUse(a: Allocation): number {
	return Object.values(a.gpus).filter(g => g.exclusive || g.memory > 0).length;
}

/** A node's allocation as `/api/v1/nodes` shows it and `node.allocated` announces it. */
export function allocationSummary(a: Allocation): NodeInfo["allocated"] {
	return { cpu: a.cpu, memory: a.memory, gpus: gpusInUse(a) };
}
