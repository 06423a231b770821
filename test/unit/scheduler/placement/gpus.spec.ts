import { reserve } from "../../../../services/scheduler/placement";
import { isFree, memoryLeft, pickGpus } from "../../../../services/scheduler/placement/gpus";
import { A100, GiB, gpus, H100, node, req } from "./fixtures";

describe("isFree and memoryLeft", () => {
	const [card] = gpus("n", [A100]);

	it("tell a card nobody uses from one given whole or shared", () => {
		expect(isFree(undefined)).toBe(true);
		expect(isFree({ exclusive: null, memory: 0 })).toBe(true);
		expect(isFree({ exclusive: "a", memory: 0 })).toBe(false);
		expect(isFree({ exclusive: null, memory: GiB })).toBe(false);
		expect(memoryLeft(card, undefined)).toBe(80 * GiB);
		expect(memoryLeft(card, { exclusive: null, memory: 30 * GiB })).toBe(50 * GiB);
		expect(memoryLeft(card, { exclusive: "a", memory: 0 })).toBe(-Infinity);
	});
});

describe("pickGpus", () => {
	it("gives the first free whole GPUs, or null when there are not enough", () => {
		const n = node("n", {}, [A100, A100, A100]);
		n.allocated = reserve(n.allocated, "a", req({ gpu: 1 }).resources, [0]);
		expect(pickGpus(n, req({ gpu: 2 }))).toEqual([1, 2]);
		expect(pickGpus(n, req({ gpu: 3 }))).toBeNull();
	});

	it("gives only GPUs of the model the selector asks for", () => {
		const n = node("n", {}, [A100, H100, H100]);
		const h100 = { nodeSelector: { "gpu.model": "h100" } };
		expect(pickGpus(n, req({ gpu: 2 }, h100))).toEqual([1, 2]);
		expect(pickGpus(n, req({ gpu: 3 }, h100))).toBeNull();
		expect(pickGpus(n, req({ gpuMemory: GiB }, h100))).toEqual([1]);
	});

	it("shares the fullest card with binpack and the emptiest with spread", () => {
		const n = node("n", {}, [A100, A100, A100]);
		n.allocated = reserve(n.allocated, "a", req({ gpuMemory: 40 * GiB }).resources, [1]);
		n.allocated = reserve(n.allocated, "b", req({ gpuMemory: 20 * GiB }).resources, [2]);
		expect(pickGpus(n, req({ gpuMemory: 10 * GiB }))).toEqual([1]);
		expect(pickGpus(n, req({ gpuMemory: 10 * GiB }, { strategy: "spread" }))).toEqual([0]);
		expect(pickGpus(n, req({ gpuMemory: 81 * GiB }))).toBeNull();
	});

	it("lets whole GPUs decide when both are asked for, and gives none when neither is", () => {
		const n = node("n", {}, [A100]);
		expect(pickGpus(n, req({ gpu: 1, gpuMemory: 90 * GiB }))).toEqual([0]);
		expect(pickGpus(n, req())).toEqual([]);
	});
});
