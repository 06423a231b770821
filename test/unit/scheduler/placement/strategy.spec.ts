import { Binpack } from "../../../../services/scheduler/placement/binpack";
import { Spread } from "../../../../services/scheduler/placement/spread";
import { scorerOf } from "../../../../services/scheduler/placement/strategy";

describe("scorerOf", () => {
	it("gives each strategy's scorer, the same object every time", () => {
		expect(scorerOf("binpack")).toBeInstanceOf(Binpack);
		expect(scorerOf("spread")).toBeInstanceOf(Spread);
		expect(scorerOf("binpack")).toBe(scorerOf("binpack"));
	});
});
