import { persistenceWarning } from "../../../../services/shared/store/redis";

describe("persistenceWarning", () => {
	it("is quiet only with the append-only file fsynced before every reply", () => {
		expect(persistenceWarning({ appendonly: "yes", appendfsync: "always" })).toBeNull();
	});

	it("warns without the append-only file, and with an fsync every second or left to the OS", () => {
		expect(persistenceWarning({ appendonly: "no", appendfsync: "everysec" })).toMatch(
			/without its append-only file.*appendonly yes, appendfsync always/
		);
		expect(persistenceWarning({ appendonly: "yes", appendfsync: "everysec" })).toMatch(
			/once a second.*can lose writes it already acknowledged/
		);
		expect(persistenceWarning({ appendonly: "yes", appendfsync: "no" })).toMatch(
			/when the OS decides/
		);
	});

	it("says it could not check when CONFIG is not allowed", () => {
		expect(persistenceWarning(null)).toMatch(/Could not read.*CONFIG GET/);
	});
});
