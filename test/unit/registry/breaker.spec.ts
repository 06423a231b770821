import { Breakers } from "../../../services/registry/breaker";

describe("Breakers", () => {
	it("opens after the threshold, lets one trial through after the cooldown, closes on success", () => {
		let now = 0;
		const b = new Breakers({ threshold: 2, cooldownMs: 1000, now: () => now });
		b.failure("e");
		expect(b.allow("e")).toBe(true);
		b.failure("e");
		expect(b.allow("e")).toBe(false);
		now = 1000;
		expect(b.allow("e")).toBe(true);
		expect(b.allow("e")).toBe(false); // one trial at a time
		b.failure("e");
		expect(b.allow("e")).toBe(false);
		now = 2000;
		expect(b.allow("e")).toBe(true);
		b.success("e");
		expect(b.isOpen("e")).toBe(false);
		expect(b.allow("e")).toBe(true);
	});
});
