/**
 * A placement scorer: of the nodes that pass every filter, which is best, as a score plugin of
 * the Kubernetes scheduler framework or Nomad's rank iterator says. Both of ours order nodes by
 * how full they would be after placing, from one end or the other; the placement index relies on
 * that order (it keeps each machine type's nodes sorted by it) and walks from the end the
 * scorer names.
 */
import type { ResourceRequest } from "../../shared/types";
import type { PlacementNode } from "../placement";

export abstract class Scorer {
	/** The name `resolveScorer` knows it by. */
	abstract readonly name: string;

	/** Whether the fullest node wins (the index walks from that end) or the emptiest. */
	abstract readonly fullestFirst: boolean;

	/**
	 * The node's score for the request: the highest wins, ties go to the lowest node id. `taken`
	 * is the node's GPUs in use (gpusInUse), which the placement index keeps per node.
	 */
	abstract score(node: PlacementNode, r: ResourceRequest, taken: number): number;

	/** Of two cards to share by memory, whether one with `left` after placing beats `best`. */
	abstract prefersCard(left: number, best: number): boolean;
}

/**
 * How full the node would be after placing: the mean of its CPU, memory and GPU shares, `taken`
 * being its GPUs in use now.
 */
export function fullnessAfter(node: PlacementNode, r: ResourceRequest, taken: number): number {
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
