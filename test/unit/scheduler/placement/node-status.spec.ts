import { NodeStatus } from "../../../../services/scheduler/placement/node-status";
import { node } from "./fixtures";

describe("NodeStatus", () => {
	const filter = new NodeStatus();

	it("lets only ready nodes through, and says which status the others have", () => {
		expect(filter.fits(node("a"))).toBeNull();
		expect(filter.fits(node("a", { status: "draining" }))).toBe("draining");
		expect(filter.fits(node("a", { status: "down" }))).toBe("down");
	});

	it("says the status of one node and of several", () => {
		expect(filter.reason("draining", 1)).toBe("1 node is draining");
		expect(filter.reason("down", 3)).toBe("3 nodes are down");
	});
});
