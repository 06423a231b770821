import { Circuit } from "../../../../services/shared/store/circuit";

describe("Circuit", () => {
	it("opens after `threshold` consecutive calls without an answer, not before", () => {
		const c = new Circuit(3);
		expect(c.unanswered("silent")).toBe(false);
		expect(c.unanswered("silent")).toBe(false);
		expect(c.admits).toBe(true);
		expect(c.unanswered("still silent")).toBe(true);
		expect(c).toMatchObject({ state: "open", admits: false, reason: "still silent" });
	});

	it("counts only consecutive ones: an answer in between starts over", () => {
		const c = new Circuit(2);
		c.unanswered("silent");
		expect(c.answered()).toBe(false);
		expect(c.unanswered("silent")).toBe(false);
		expect(c.state).toBe("closed");
	});

	it("probes once while open; a probe's answer closes it, its silence leaves it open", () => {
		const c = new Circuit(1);
		expect(c.startProbe()).toBe(false);
		expect(c.unanswered("down")).toBe(true);
		expect(c.startProbe()).toBe(true);
		expect(c).toMatchObject({ state: "probing", admits: false });
		expect(c.startProbe()).toBe(false);
		// Silent again: open, and not "opened" a second time.
		expect(c.unanswered("still down")).toBe(false);
		expect(c).toMatchObject({ state: "open", reason: "still down" });
		expect(c.startProbe()).toBe(true);
		expect(c.answered()).toBe(true);
		expect(c).toMatchObject({ state: "closed", admits: true, reason: "" });
	});

	it("closes on any answer while open (a call that was on its way)", () => {
		const c = new Circuit(1);
		c.unanswered("down");
		expect(c.answered()).toBe(true);
		expect(c.admits).toBe(true);
	});
});
