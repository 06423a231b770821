import { ownerOf } from "../../../services/registry/sharding";

describe("ownerOf", () => {
	it("gives each target one owner and moves only the lost instance's targets", () => {
		const targets = Array.from({ length: 300 }, (_, i) => `t${i}`);
		const three = ["r1", "r2", "r3"];
		const before = new Map(targets.map(t => [t, ownerOf(t, three)]));
		const counts = three.map(r => [...before.values()].filter(o => o === r).length);
		for (const c of counts) expect(c).toBeGreaterThan(60);
		const after = new Map(targets.map(t => [t, ownerOf(t, ["r1", "r3"])]));
		for (const t of targets)
			if (before.get(t) !== "r2") expect(after.get(t)).toBe(before.get(t));
		expect(ownerOf("t", [])).toBeNull();
	});
});
