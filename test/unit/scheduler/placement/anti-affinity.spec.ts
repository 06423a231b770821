import { AntiAffinity } from "../../../../services/scheduler/placement/anti-affinity";
import { node, req } from "./fixtures";

describe("AntiAffinity", () => {
	const filter = new AntiAffinity();

	it("rules out the nodes the request avoids", () => {
		const q = req({}, { avoid: new Set(["a"]) });
		expect(filter.fits(node("a"), q)).toBe("avoid");
		expect(filter.fits(node("b"), q)).toBeNull();
		expect(filter.fits(node("a"), req())).toBeNull();
	});

	it("says so of one node and of several", () => {
		expect(filter.reason("avoid", 1)).toBe("1 node runs another replica (anti-affinity)");
		expect(filter.reason("avoid", 2)).toBe("2 nodes run another replica (anti-affinity)");
	});
});
