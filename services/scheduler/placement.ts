/**
 * Placement's public entry: the data a placement decides over (plain node data, so that it is
 * unit-tested with fixtures and benchmarked without a broker or a store), what is reserved on a
 * node and how reserving and releasing change it, and the operator's answer to "why is this
 * pending" (describeShortfall).
 *
 * The decision is made of plugins in placement/: filters that rule nodes out (node status,
 * anti-affinity, node selector, resources) and scorers that rank the rest (binpack, spread),
 * behind an index that resolves them by name (placement/index.ts). The scheduler places with the
 * fast placement index (placement-index.ts); placement/reference.ts is the slow scan that the
 * index is tested against.
 */
import type { Capacity, NodeInfo, NodeStatus, ResourceRequest } from "../shared/types";
import { formatSize } from "../shared/format";
import { nodeCount, type Filter } from "./placement/filter";
import { unfit } from "./placement/index";

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

export function emptyAllocation(): Allocation {
	return { cpu: 0, memory: 0, gpus: {} };
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

/** Why nothing fits, in the words an operator needs: how many nodes, for which reason. */
export function describeShortfall(nodes: PlacementNode[], req: PlacementRequest): string {
	if (nodes.length === 0) return "No node has joined the cluster yet.";
	// Each reason once, in the order the nodes first give it. A node that fits (one freed since
	// the placement failed) has no filter.
	const reasons = new Map<string, { filter: Filter | null; key: string; count: number }>();
	for (const node of nodes) {
		const filter = unfit(node, req);
		// unfit, on the placement path, returns the filter alone: ask it again for the key.
		const key = filter?.fits(node, req) ?? "";
		const id = filter ? `${filter.name}:${key}` : "";
		const seen = reasons.get(id);
		if (seen) seen.count++;
		else reasons.set(id, { filter, key, count: 1 });
	}
	const { cpu, memory, gpu, gpuMemory } = req.resources;
	const need = [`cpu ${cpu}`, `memory ${formatSize(memory)}`];
	if (gpu) need.push(`gpu ${gpu}`);
	if (gpuMemory) need.push(`gpuMemory ${formatSize(gpuMemory)}`);
	const parts = [...reasons.values()].map(({ filter, key, count }) =>
		filter ? filter.reason(key, count, req) : nodeCount(count, "fits", "fit")
	);
	return `0/${nodes.length} nodes fit (${need.join(", ")}): ${parts.join("; ")}.`;
}
