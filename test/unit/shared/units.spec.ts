import { parseCpu, parseSize } from "../../../services/shared/units";
import { InvalidInputError } from "../../../services/shared/errors";
import { QUOTA_LIMITS, RESOURCE_LIMITS } from "../../../services/shared/limits";
import { thrown } from "../../helpers/errors";

describe("parseSize", () => {
	it.each([
		[1024, 1024],
		["512Mi", 512 * 1024 ** 2],
		["16Gi", 16 * 1024 ** 3],
		["1.5G", 1.5e9],
		["100", 100],
		[" 2 Ti ", 2 * 1024 ** 4]
	])("%p is %p bytes", (input, bytes) => expect(parseSize(input)).toBe(bytes));

	it.each([["12Zb"], ["-1"], ["Gi"], [-5], [NaN]])("refuses %p with a 422", input => {
		expect(() => parseSize(input as never, "memory")).toThrow(InvalidInputError);
		try {
			parseSize(input as never, "memory");
		} catch (err) {
			expect(err).toMatchObject({
				code: 422,
				type: "INVALID_INPUT",
				data: { field: "memory" }
			});
		}
	});
});

describe("parseCpu", () => {
	it("reads cores and millicores", () => {
		expect(parseCpu(2)).toBe(2);
		expect(parseCpu(0.5)).toBe(0.5);
		expect(parseCpu("500m")).toBe(0.5);
		expect(parseCpu("4")).toBe(4);
		expect(() => parseCpu("lots")).toThrow(/millicores/);
	});
});

describe("bounds", () => {
	const memory = RESOURCE_LIMITS.memory;
	const cpu = RESOURCE_LIMITS.cpu;

	it.each([
		[1e30, "resources.memory must be above 0 and at most 64Ti; got 1e+30."],
		[1e308, "resources.memory must be above 0 and at most 64Ti; got 1e+308."],
		[0, "resources.memory must be above 0 and at most 64Ti; got 0."],
		[-1, "resources.memory must be above 0 and at most 64Ti; got -1."],
		[NaN, "resources.memory must be above 0 and at most 64Ti; got NaN."],
		[Infinity, "resources.memory must be above 0 and at most 64Ti; got Infinity."],
		["65Ti", "resources.memory must be above 0 and at most 64Ti; got 65Ti."],
		["0Gi", "resources.memory must be above 0 and at most 64Ti; got 0Gi."]
	])("refuses memory %p, naming the field and the range", (input, message) => {
		const err = thrown<InvalidInputError>(() => parseSize(input, "resources.memory", memory));
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err.message).toBe(message);
		expect(err).toMatchObject({
			code: 422,
			type: "INVALID_INPUT",
			data: { field: "resources.memory", min: 0, max: 64 * 1024 ** 4, positive: true }
		});
	});

	it("refuses a size written with an exponent as no size at all", () => {
		const err = thrown<InvalidInputError>(() => parseSize("1e30Gi", "resources.gpuMemory"));
		expect(err.message).toMatch(/'1e30Gi' is not a size/);
	});

	it("accepts the bounds themselves, and 0 where the range starts at 0", () => {
		expect(parseSize("64Ti", "m", memory)).toBe(64 * 1024 ** 4);
		expect(parseSize(1, "m", memory)).toBe(1);
		expect(parseSize(0, "g", RESOURCE_LIMITS.gpuMemory)).toBe(0);
		expect(parseCpu(1024, "c", cpu)).toBe(1024);
		expect(parseCpu("1m", "c", cpu)).toBe(0.001);
	});

	it("refuses cpu 0, 1025 and 1e30 with the range in cores", () => {
		for (const v of [0, "0m", 1025, 1e30]) {
			const err = thrown<InvalidInputError>(() => parseCpu(v, "resources.cpu", cpu));
			expect(err.message).toBe(
				`resources.cpu must be above 0 and at most 1024 cores; got ${String(v)}.`
			);
		}
		expect(thrown(() => parseCpu(1e308, "quota.cpu", QUOTA_LIMITS.cpu))).toMatchObject({
			message: "quota.cpu must be from 0 cores to 1048576 cores; got 1e+308.",
			data: { field: "quota.cpu", max: 1024 * 1024 }
		});
	});
});
