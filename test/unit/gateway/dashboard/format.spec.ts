import {
	describeRequest,
	formatAgo,
	formatCores,
	formatPercent,
	naturalCompare,
	percent
} from "../../../../services/gateway/dashboard/format";

describe("dashboard format", () => {
	it("holds percentages to 0–100 and prints a dash for no value", () => {
		expect(percent(1, 4)).toBe(25);
		expect(percent(5, 4)).toBe(100);
		expect(percent(-1, 4)).toBe(0);
		expect(percent(1, 0)).toBe(0);
		expect(formatPercent(33.6)).toBe("34%");
		expect(formatPercent(null)).toBe("–");
		expect(formatPercent(NaN)).toBe("–");
	});

	it("prints cores with one decimal at most, and how long ago in the largest unit", () => {
		expect(formatCores(96)).toBe("96");
		expect(formatCores(0.25)).toBe("0.3");
		expect(formatAgo(0, 12_000)).toBe("12 s");
		expect(formatAgo(0, 3 * 60_000)).toBe("3 min");
		expect(formatAgo(0, 2 * 3_600_000)).toBe("2 h");
		expect(formatAgo(0, 3 * 86_400_000)).toBe("3 d");
		expect(formatAgo(5000, 0)).toBe("0 s");
	});

	it("describes a replica's request with only what it asks for", () => {
		const GiB = 1024 ** 3;
		expect(describeRequest({ cpu: 16, memory: 128 * GiB, gpu: 4, gpuMemory: 0 })).toBe(
			"16 CPU · 128Gi · 4 GPU"
		);
		expect(describeRequest({ cpu: 0.5, memory: 0, gpu: 0, gpuMemory: 8 * GiB })).toBe(
			"0.5 CPU · 8Gi GPU mem"
		);
	});

	it("sorts names with numbers as people do", () => {
		expect(["gpu-10", "gpu-2", "cpu-1"].sort(naturalCompare)).toEqual([
			"cpu-1",
			"gpu-2",
			"gpu-10"
		]);
	});
});
