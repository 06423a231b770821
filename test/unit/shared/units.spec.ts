import { parseCpu, parseSize } from "../../../services/shared/units";
import { InvalidInputError } from "../../../services/shared/errors";

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
