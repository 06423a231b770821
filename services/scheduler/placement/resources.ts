/**
 * Room on the node for the request: CPU and memory are shared by request, as Kubernetes and
 * Nomad share them; GPUs go whole or by memory (gpus.ts).
 */
import type { PlacementNode, PlacementRequest } from "../placement";
import { Filter, nodeCount } from "./filter";
import { pickGpus } from "./gpus";

/** CPU may fall short by this much: float sums of fractional cores. */
export const CPU_SLACK = 1e-9;

/** Each reason key (the resource that is short) and what the node lacks. */
const LACKS: Record<string, string> = {
	cpu: "CPU",
	memory: "memory",
	gpu: "free GPUs",
	gpuMemory: "GPU memory"
};

export class Resources extends Filter {
	readonly name = "Resources";

	/** The resource the node is short of, checked in the order of LACKS. */
	fits(node: PlacementNode, req: PlacementRequest): string | null {
		const { cpu, memory, gpu, gpuMemory } = req.resources;
		if (node.capacity.cpu - node.allocated.cpu < cpu - CPU_SLACK) return "cpu";
		if (node.capacity.memory - node.allocated.memory < memory) return "memory";
		if ((gpu > 0 || gpuMemory > 0) && !pickGpus(node, req))
			return gpu > 0 ? "gpu" : "gpuMemory";
		return null;
	}

	reason(key: string, count: number): string {
		return nodeCount(count, `lacks ${LACKS[key]}`, `lack ${LACKS[key]}`);
	}
}
