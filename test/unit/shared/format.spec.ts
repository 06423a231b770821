import { formatSize } from "../../../services/shared/format";

describe("formatSize", () => {
	it("prints binary units", () => {
		expect(formatSize(512)).toBe("512B");
		expect(formatSize(1536)).toBe("1.5Ki");
		expect(formatSize(16 * 1024 ** 3)).toBe("16Gi");
		expect(formatSize(128 * 1024 ** 3)).toBe("128Gi");
		expect(formatSize(3.7 * 1024 ** 4)).toBe("3.7Ti");
	});
});
