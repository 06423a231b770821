import { formatDuration, parseDuration } from "../../../services/shared/duration";
import { InvalidInputError } from "../../../services/shared/errors";
import { thrown } from "../../helpers/errors";

const failure = (fn: () => unknown) => thrown<InvalidInputError>(fn);

const FOR = { field: "for", max: 30 * 24 * 3600 * 1000 };

describe("parseDuration", () => {
	it.each([
		[0, 0],
		[30, 30_000],
		[1.5, 1500],
		["45", 45_000],
		["30s", 30_000],
		["1m", 60_000],
		["1m30s", 90_000],
		["500ms", 500],
		["2h", 7_200_000],
		["1h30m", 5_400_000],
		["7d", 604_800_000],
		[" 5m ", 300_000],
		["10 s", 10_000],
		["1h 30m", 5_400_000]
	])("%j is %d ms", (value, ms) => {
		expect(parseDuration(value, FOR)).toBe(ms);
	});

	it.each(["", "5 minutes", "1w", "m", "-1", "1.5.2s", "soon"])("refuses %j with 422", value => {
		const err = failure(() => parseDuration(value, FOR));
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err.code).toBe(422);
		expect(err.data).toEqual({ field: "for", value });
		expect(err.message).toMatch(/not a duration/);
	});

	it("refuses negative numbers and what is longer than the use allows", () => {
		expect(failure(() => parseDuration(-1, FOR)).data).toEqual({ field: "for", value: -1 });
		expect(failure(() => parseDuration("721h", FOR)).message).toBe(
			"for '721h' is longer than 30 days."
		);
	});

	it("refuses what is shorter than the use allows", () => {
		expect(() => parseDuration(0, { field: "x", min: 1 })).toThrow(/positive/);
		expect(failure(() => parseDuration("100ms", { field: "x", min: 500 })).message).toBe(
			"x must be at least 500ms."
		);
	});

	it("reads what every use reads: health checks, token lifetimes, alert `for`", () => {
		// Token lifetimes in seconds, as `npm run token -- --ttl` takes them.
		expect(parseDuration("3600", { field: "--ttl" }) / 1000).toBe(3600);
		expect(parseDuration("90m", { field: "--ttl" }) / 1000).toBe(5400);
		expect(parseDuration("24h", { field: "--ttl" }) / 1000).toBe(86400);
		expect(parseDuration("7d", { field: "--ttl" }) / 1000).toBe(604800);
		// Health checks.
		expect(parseDuration(10, { field: "x" })).toBe(10_000);
		expect(parseDuration("2m", { field: "x" })).toBe(120_000);
	});
});

describe("formatDuration", () => {
	it("says a bound in its largest whole unit", () => {
		expect(formatDuration(500)).toBe("500ms");
		expect(formatDuration(2000)).toBe("2s");
		expect(formatDuration(90_000)).toBe("90s");
		expect(formatDuration(86_400_000)).toBe("1 day");
		expect(formatDuration(30 * 86_400_000)).toBe("30 days");
	});
});
