/**
 * The `gpu.model` node selector: not a label but a GPU model, matched by substring and without
 * regard to case, so that "h100" selects "NVIDIA H100 80GB HBM3". The node selector filter asks
 * whether a node has such a GPU; pickGpus gives only such GPUs.
 */
import type { GpuCapacity } from "../../shared/types";

export const GPU_MODEL_SELECTOR = "gpu.model";

/** Whether the GPU is of the model a `gpu.model` selector with value `wanted` asks for. */
export function ofModel(gpu: GpuCapacity, wanted: string): boolean {
	return gpu.model.toLowerCase().includes(wanted.toLowerCase());
}
