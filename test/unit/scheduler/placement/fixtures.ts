/** Nodes and requests for the placement plugins' specs. */
import {
	emptyAllocation,
	type PlacementNode,
	type PlacementRequest
} from "../../../../services/scheduler/placement";
import type { GpuCapacity, ResourceRequest } from "../../../../services/shared/types";

export const GiB = 1024 ** 3;
export const A100 = "NVIDIA A100-SXM4-80GB";
export const H100 = "NVIDIA H100 80GB HBM3";

export function gpus(id: string, models: string[], memory = 80 * GiB): GpuCapacity[] {
	return models.map((model, index) => ({ index, uuid: `GPU-${id}-${index}`, model, memory }));
}

/** A ready 16-core, 64 GiB node with the given GPU models and nothing reserved. */
export function node(
	id: string,
	over: Partial<PlacementNode> = {},
	cards: string[] = []
): PlacementNode {
	return {
		id,
		status: "ready",
		labels: {},
		capacity: { cpu: 16, memory: 64 * GiB, gpus: gpus(id, cards) },
		allocated: emptyAllocation(),
		...over
	};
}

/** 1 CPU and 1 GiB, binpack, no selector, nothing to avoid. */
export function req(
	over: Partial<ResourceRequest> = {},
	rest: Partial<PlacementRequest> = {}
): PlacementRequest {
	return {
		resources: { cpu: 1, memory: GiB, gpu: 0, gpuMemory: 0, ...over },
		strategy: "binpack",
		nodeSelector: {},
		avoid: new Set(),
		...rest
	};
}
