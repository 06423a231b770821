/**
 * Which GPUs a request gets on a node. `gpu: N` takes N whole GPUs that nobody uses; `gpuMemory:
 * M` shares one card by memory with other such replicas, never a card given whole. The
 * resources filter asks whether there are such GPUs, placement asks which; the placement index
 * keeps, per node, the same two measures (whole GPUs free, the most memory left on one card).
 */
import type { GpuCapacity } from "../../shared/types";
import type { Allocation, PlacementNode, PlacementRequest } from "../placement";
import { GPU_MODEL_SELECTOR, ofModel } from "./gpu-model";
import { scorerOf } from "./strategy";

type GpuAllocation = Allocation["gpus"][number];

/** Nobody uses the GPU, whole or shared: it can be given whole. */
export function isFree(a: GpuAllocation | undefined): boolean {
	return !a || (a.exclusive === null && a.memory === 0);
}

/** The memory left on the card for sharing: -Infinity when it is given whole. */
export function memoryLeft(g: GpuCapacity, a: GpuAllocation | undefined): number {
	return a?.exclusive ? -Infinity : g.memory - (a?.memory ?? 0);
}

/**
 * GPUs this request can have on this node, or null when they are not there: the first free ones,
 * or the shared card the request's scorer prefers. Only GPUs of the `gpu.model` asked for count.
 */
export function pickGpus(node: PlacementNode, req: PlacementRequest): number[] | null {
	const { gpu, gpuMemory } = req.resources;
	const model = req.nodeSelector[GPU_MODEL_SELECTOR];
	const all = node.capacity.gpus;
	const usable = model === undefined ? all : all.filter(g => ofModel(g, model));
	if (gpu > 0) {
		const free = usable.filter(g => isFree(node.allocated.gpus[g.index]));
		return free.length >= gpu ? free.slice(0, gpu).map(g => g.index) : null;
	}
	if (gpuMemory > 0) {
		const scorer = scorerOf(req.strategy);
		let best: { index: number; left: number } | null = null;
		for (const g of usable) {
			const left = memoryLeft(g, node.allocated.gpus[g.index]) - gpuMemory;
			if (left < 0) continue;
			if (!best || scorer.prefersCard(left, best.left)) best = { index: g.index, left };
		}
		return best ? [best.index] : null;
	}
	return [];
}
