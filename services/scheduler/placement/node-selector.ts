/**
 * The request's node selector: every label must match exactly, and `gpu.model` asks for a GPU
 * of that model (gpu-model.ts). The keys are checked in the selector's order, and the first one
 * a node misses is its reason.
 */
import type { PlacementNode, PlacementRequest } from "../placement";
import { Filter, nodeCount } from "./filter";
import { GPU_MODEL_SELECTOR, ofModel } from "./gpu-model";

export class NodeSelector extends Filter {
	readonly name = "NodeSelector";

	/**
	 * The selector key the node misses. It reads only the node's labels and GPU models, so the
	 * placement index asks it once for a whole group of nodes that share them.
	 */
	fits(node: PlacementNode, req: PlacementRequest): string | null {
		for (const key in req.nodeSelector) {
			const value = req.nodeSelector[key];
			if (key === GPU_MODEL_SELECTOR) {
				if (!node.capacity.gpus.some(g => ofModel(g, value))) return key;
			} else if (node.labels[key] !== value) return key;
		}
		return null;
	}

	reason(key: string, count: number, req: PlacementRequest): string {
		const value = req.nodeSelector[key];
		return key === GPU_MODEL_SELECTOR
			? nodeCount(count, `has no ${value} GPU`, `have no ${value} GPU`)
			: nodeCount(count, `does not match ${key}=${value}`, `do not match ${key}=${value}`);
	}
}
