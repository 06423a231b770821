import { Binpack } from "../../../../services/scheduler/placement/binpack";
import { fullnessAfter } from "../../../../services/scheduler/placement/scorer";
import { GiB, node } from "./fixtures";

describe("Binpack", () => {
	const scorer = new Binpack();
	const r = { cpu: 1, memory: GiB, gpu: 0, gpuMemory: 0 };

	it("scores the fuller node higher and walks from the fullest end", () => {
		const busy = node("busy", { allocated: { cpu: 12, memory: 8 * GiB, gpus: {} } });
		expect(scorer.score(busy, r, 0)).toBe(fullnessAfter(busy, r, 0));
		expect(scorer.score(busy, r, 0)).toBeGreaterThan(scorer.score(node("idle"), r, 0));
		expect(scorer.fullestFirst).toBe(true);
	});

	it("prefers the card with the least memory left", () => {
		expect(scorer.prefersCard(10 * GiB, 20 * GiB)).toBe(true);
		expect(scorer.prefersCard(20 * GiB, 10 * GiB)).toBe(false);
		expect(scorer.prefersCard(GiB, GiB)).toBe(false);
	});
});
