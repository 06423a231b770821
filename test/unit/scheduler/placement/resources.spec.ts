import { reserve } from "../../../../services/scheduler/placement";
import { Resources } from "../../../../services/scheduler/placement/resources";
import { A100, GiB, node, req } from "./fixtures";

describe("Resources", () => {
	const filter = new Resources();

	it("lets a node through that has the CPU, memory and GPUs", () => {
		expect(filter.fits(node("n", {}, [A100]), req({ cpu: 16, memory: 64 * GiB, gpu: 1 }))).toBe(
			null
		);
		expect(filter.fits(node("n", {}, [A100]), req({ gpuMemory: 80 * GiB }))).toBeNull();
	});

	it("names the first resource the node is short of", () => {
		const n = node("n", { allocated: { cpu: 15.5, memory: 63 * GiB, gpus: {} } }, [A100]);
		expect(filter.fits(n, req({ cpu: 0.5, memory: GiB }))).toBeNull();
		expect(filter.fits(n, req({ cpu: 0.6, memory: 2 * GiB }))).toBe("cpu");
		expect(filter.fits(n, req({ cpu: 0.5, memory: GiB + 1 }))).toBe("memory");
		expect(filter.fits(n, req({ cpu: 0, memory: 0, gpu: 2 }))).toBe("gpu");
		expect(filter.fits(n, req({ cpu: 0, memory: 0, gpuMemory: 81 * GiB }))).toBe("gpuMemory");
	});

	it("counts fractional cores with a little slack for float sums", () => {
		const n = node("n", { allocated: { cpu: 0.1 + 2.2 + 1.3, memory: 0, gpus: {} } });
		// 16 - 3.6 comes out a hair under 12.4.
		expect(n.capacity.cpu - n.allocated.cpu).toBeLessThan(12.4);
		expect(filter.fits(n, req({ cpu: 12.4, memory: 0 }))).toBeNull();
		expect(filter.fits(n, req({ cpu: 12.5, memory: 0 }))).toBe("cpu");
	});

	it("does not share a GPU someone has whole, nor give whole a GPU that is shared", () => {
		const n = node("n", {}, [A100]);
		const whole = {
			...n,
			allocated: reserve(n.allocated, "a", req({ gpu: 1 }).resources, [0])
		};
		expect(filter.fits(whole, req({ gpuMemory: GiB }))).toBe("gpuMemory");
		const shared = {
			...n,
			allocated: reserve(n.allocated, "b", req({ gpuMemory: GiB }).resources, [0])
		};
		expect(filter.fits(shared, req({ gpu: 1 }))).toBe("gpu");
		expect(filter.fits(shared, req({ gpuMemory: 79 * GiB }))).toBeNull();
	});

	it("says what one node or several lack", () => {
		expect(filter.reason("cpu", 1)).toBe("1 node lacks CPU");
		expect(filter.reason("cpu", 2)).toBe("2 nodes lack CPU");
		expect(filter.reason("memory", 1)).toBe("1 node lacks memory");
		expect(filter.reason("memory", 5)).toBe("5 nodes lack memory");
		expect(filter.reason("gpu", 1)).toBe("1 node lacks free GPUs");
		expect(filter.reason("gpu", 2)).toBe("2 nodes lack free GPUs");
		expect(filter.reason("gpuMemory", 1)).toBe("1 node lacks GPU memory");
		expect(filter.reason("gpuMemory", 3)).toBe("3 nodes lack GPU memory");
	});
});
