import { RecentCounts } from "../../../services/shared/recent-counts";

describe("RecentCounts", () => {
	let now: number;
	let recent: RecentCounts;
	beforeEach(() => {
		now = 10_000;
		recent = new RecentCounts(1000, () => now);
	});

	it("counts each key over the current window and the one before it", () => {
		recent.add("a");
		recent.add("a");
		now += 1000;
		recent.add("a");
		expect(recent.count("a")).toBe(3);
		now += 1000;
		// The first window is gone; the second is the previous one now.
		expect(recent.count("a")).toBe(1);
		expect(recent.count("b")).toBe(0);
	});

	it("forgets everything after two windows with nothing", () => {
		recent.add("a");
		now += 2500;
		expect(recent.count("a")).toBe(0);
		recent.add("a");
		now += 600;
		// The windows are still aligned to where they started.
		expect(recent.count("a")).toBe(1);
	});

	it("names the highest count of another key", () => {
		for (let i = 0; i < 5; i++) recent.add("flood");
		recent.add("quiet");
		expect(recent.busiestOther("quiet")).toBe(5);
		expect(recent.busiestOther("flood")).toBe(1);
		expect(new RecentCounts().busiestOther("alone")).toBe(0);
	});
});
