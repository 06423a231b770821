import { fullnessAfter } from "../../../../services/scheduler/placement/scorer";
import { A100, GiB, node } from "./fixtures";

describe("fullnessAfter", () => {
	const r = { cpu: 4, memory: 16 * GiB, gpu: 0, gpuMemory: 0 };

	it("is the mean of the CPU, memory and GPU shares after placing", () => {
		const n = node("n", { allocated: { cpu: 4, memory: 16 * GiB, gpus: {} } }, [A100, A100]);
		expect(fullnessAfter(n, r, 1)).toBeCloseTo((0.5 + 0.5 + 0.5) / 3);
		expect(fullnessAfter(n, { ...r, gpu: 1 }, 1)).toBeCloseTo((0.5 + 0.5 + 1) / 3);
	});

	it("counts a CPU node as full on GPUs for CPU-only work, and not for GPU work", () => {
		const n = node("n");
		expect(fullnessAfter(n, r, 0)).toBeCloseTo((0.25 + 0.25 + 1) / 3);
		expect(fullnessAfter(n, { ...r, gpuMemory: GiB }, 0)).toBeCloseTo(0.25);
	});
});
