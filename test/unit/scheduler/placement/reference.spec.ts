import { referencePlace } from "../../../../services/scheduler/placement/reference";
import { A100, GiB, node, req } from "./fixtures";

// The reference's cases are in ../placement.spec.ts (with reserve and describeShortfall); these
// check that it runs the filters and the request's scorer.
describe("referencePlace", () => {
	it("places by the request's scorer, ties to the lowest node id", () => {
		const busy = node("busy", { allocated: { cpu: 8, memory: 8 * GiB, gpus: {} } });
		expect(referencePlace([node("b"), busy, node("a")], req())?.nodeID).toBe("busy");
		expect(
			referencePlace([node("b"), busy, node("a")], req({}, { strategy: "spread" }))
		).toEqual({ nodeID: "a", gpus: [] });
	});

	it("places on none that a filter rules out, and gives the GPUs pickGpus gives", () => {
		const nodes = [
			node("down", { status: "down" }, [A100]),
			node("avoided", {}, [A100]),
			node("other", { labels: { zone: "b" } }, [A100]),
			node("small", {}, [A100])
		];
		const q = req({ gpu: 1 }, { avoid: new Set(["avoided"]), nodeSelector: {} });
		expect(referencePlace(nodes, q)).toEqual({ nodeID: "other", gpus: [0] });
		expect(referencePlace(nodes, { ...q, nodeSelector: { zone: "a" } })).toBeNull();
		expect(referencePlace(nodes, req({ gpu: 2 }))).toBeNull();
		expect(referencePlace([], req())).toBeNull();
	});
});
