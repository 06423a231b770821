import { nodeCount } from "../../../../services/scheduler/placement/filter";

describe("nodeCount", () => {
	it("says the phrase for one node or for several", () => {
		expect(nodeCount(1, "is draining", "are draining")).toBe("1 node is draining");
		expect(nodeCount(2, "is draining", "are draining")).toBe("2 nodes are draining");
		expect(nodeCount(0, "lacks CPU", "lack CPU")).toBe("0 nodes lack CPU");
	});
});
