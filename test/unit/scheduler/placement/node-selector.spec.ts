import { NodeSelector } from "../../../../services/scheduler/placement/node-selector";
import { A100, H100, node, req } from "./fixtures";

describe("NodeSelector", () => {
	const filter = new NodeSelector();
	const eu = node("eu", { labels: { zone: "eu", tier: "x" } }, [A100, H100]);

	it("lets a node through when every label matches exactly and it has the GPU model", () => {
		expect(filter.fits(eu, req())).toBeNull();
		expect(filter.fits(eu, req({}, { nodeSelector: { zone: "eu", tier: "x" } }))).toBeNull();
		// gpu.model is a substring of a model, without regard to case; one card is enough.
		expect(filter.fits(eu, req({}, { nodeSelector: { "gpu.model": "h100" } }))).toBeNull();
	});

	it("names the first selector key the node misses, in the selector's order", () => {
		expect(filter.fits(eu, req({}, { nodeSelector: { zone: "EU" } }))).toBe("zone");
		expect(filter.fits(eu, req({}, { nodeSelector: { rack: "1" } }))).toBe("rack");
		const both = { "gpu.model": "v100", zone: "us" };
		expect(filter.fits(eu, req({}, { nodeSelector: both }))).toBe("gpu.model");
		expect(
			filter.fits(eu, req({}, { nodeSelector: { zone: "us", "gpu.model": "v100" } }))
		).toBe("zone");
		expect(filter.fits(node("cpu"), req({}, { nodeSelector: { "gpu.model": "a" } }))).toBe(
			"gpu.model"
		);
	});

	it("says the label or GPU model missed, of one node and of several", () => {
		const q = req({}, { nodeSelector: { zone: "a", "gpu.model": "H100" } });
		expect(filter.reason("zone", 1, q)).toBe("1 node does not match zone=a");
		expect(filter.reason("zone", 2, q)).toBe("2 nodes do not match zone=a");
		expect(filter.reason("gpu.model", 1, q)).toBe("1 node has no H100 GPU");
		expect(filter.reason("gpu.model", 4, q)).toBe("4 nodes have no H100 GPU");
	});
});
