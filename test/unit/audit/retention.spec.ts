import { keepFrom } from "../../../services/audit/retention";

describe("audit retention", () => {
	it("keeps at most maxRecords, the newest ones", () => {
		expect(
			keepFrom(
				{ oldest: 1, newest: 10, firstRecent: null },
				{ maxRecords: 4, maxAgeMs: null }
			)
		).toBe(7);
		expect(
			keepFrom({ oldest: 1, newest: 3, firstRecent: null }, { maxRecords: 4, maxAgeMs: null })
		).toBeNull();
		expect(
			keepFrom(
				{ oldest: 8, newest: 10, firstRecent: null },
				{ maxRecords: 4, maxAgeMs: null }
			)
		).toBeNull();
	});

	it("keeps nothing older than maxAge, but always the newest record", () => {
		expect(
			keepFrom(
				{ oldest: 1, newest: 10, firstRecent: 6 },
				{ maxRecords: null, maxAgeMs: 1000 }
			)
		).toBe(6);
		expect(
			keepFrom(
				{ oldest: 1, newest: 10, firstRecent: null },
				{ maxRecords: null, maxAgeMs: 1000 }
			)
		).toBe(10);
		expect(
			keepFrom(
				{ oldest: 1, newest: 1, firstRecent: null },
				{ maxRecords: null, maxAgeMs: 1000 }
			)
		).toBeNull();
	});

	it("applies the stricter of both bounds, and neither when none is set", () => {
		const bounds = { oldest: 1, newest: 100, firstRecent: 50 };
		expect(keepFrom(bounds, { maxRecords: 10, maxAgeMs: 1 })).toBe(91);
		expect(keepFrom(bounds, { maxRecords: 80, maxAgeMs: 1 })).toBe(50);
		expect(keepFrom(bounds, { maxRecords: null, maxAgeMs: null })).toBeNull();
		expect(keepFrom(bounds, { maxRecords: 0, maxAgeMs: null })).toBe(100);
	});
});
