import { fullnessAfter } from "../../../../services/scheduler/placement/scorer";
import { Spread } from "../../../../services/scheduler/placement/spread";
import { GiB, node } from "./fixtures";

describe("Spread", () => {
	const scorer = new Spread();
	const r = { cpu: 1, memory: GiB, gpu: 0, gpuMemory: 0 };

	it("scores the emptier node higher and walks from the emptiest end", () => {
		const busy = node("busy", { allocated: { cpu: 12, memory: 8 * GiB, gpus: {} } });
		expect(scorer.score(busy, r, 0)).toBe(-fullnessAfter(busy, r, 0));
		expect(scorer.score(node("idle"), r, 0)).toBeGreaterThan(scorer.score(busy, r, 0));
		expect(scorer.fullestFirst).toBe(false);
	});

	it("prefers the card with the most memory left", () => {
		expect(scorer.prefersCard(20 * GiB, 10 * GiB)).toBe(true);
		expect(scorer.prefersCard(10 * GiB, 20 * GiB)).toBe(false);
		expect(scorer.prefersCard(GiB, GiB)).toBe(false);
	});
});
