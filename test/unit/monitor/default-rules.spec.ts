import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore, Store } from "../../../services/shared/store";
import type { AlertRule } from "../../../services/monitor/alerts";
import {
	DEFAULT_RULES,
	DEFAULTS_ID,
	seedDefaultRules
} from "../../../services/monitor/default-rules";

describe("seedDefaultRules", () => {
	let store: Store;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
	});
	afterEach(() => store.close());

	const rules = async () =>
		(await store.list<AlertRule>(COLLECTIONS.alertRules)).map(d => d.value);

	it("writes every default rule into an empty store, 1 ms apart, and the marker", async () => {
		expect(await seedDefaultRules(store, () => 1000)).toBe(DEFAULT_RULES.length);
		const written = await rules();
		expect(written.map(r => r.id).sort()).toEqual(DEFAULT_RULES.map(r => r.id).sort());
		const byId = new Map(written.map(r => [r.id, r]));
		DEFAULT_RULES.forEach((input, i) => {
			expect(byId.get(input.id)).toMatchObject({
				name: input.name,
				createdAt: 1000 + i,
				createdBy: "monitor"
			});
		});
		expect(byId.get("default-node-down")?.forMs).toBe(30_000);
		expect((await store.get(COLLECTIONS.monitor, DEFAULTS_ID))?.value).toEqual({
			at: 1000,
			ids: DEFAULT_RULES.map(r => r.id)
		});
	});

	it("writes them only once: deleted defaults stay deleted", async () => {
		await seedDefaultRules(store);
		for (const r of DEFAULT_RULES) await store.delete(COLLECTIONS.alertRules, r.id);
		expect(await seedDefaultRules(store)).toBe(0);
		expect(await rules()).toEqual([]);
	});

	it("writes them all again into a store that lost them with the marker (restarted empty)", async () => {
		await seedDefaultRules(store);
		for (const r of DEFAULT_RULES) await store.delete(COLLECTIONS.alertRules, r.id);
		await store.delete(COLLECTIONS.monitor, DEFAULTS_ID);
		expect(await seedDefaultRules(store)).toBe(DEFAULT_RULES.length);
		expect((await rules()).length).toBe(DEFAULT_RULES.length);
	});

	it("writes a default the marker does not name yet (added by an upgrade), not the deleted ones", async () => {
		const [added, ...older] = DEFAULT_RULES.map(r => r.id);
		await store.put(COLLECTIONS.monitor, DEFAULTS_ID, { at: 1, ids: older });
		expect(await seedDefaultRules(store)).toBe(1);
		expect((await rules()).map(r => r.id)).toEqual([added]);
		expect(await seedDefaultRules(store)).toBe(0);
	});

	it("takes a marker of an older version, without names, as naming every default", async () => {
		await store.put(COLLECTIONS.monitor, DEFAULTS_ID, { at: 1 });
		expect(await seedDefaultRules(store)).toBe(0);
		expect(await rules()).toEqual([]);
	});

	it("leaves a store that already has a rule alone, but marks it as seeded", async () => {
		await store.put(COLLECTIONS.alertRules, "mine", { id: "mine" });
		expect(await seedDefaultRules(store)).toBe(0);
		expect((await rules()).map(r => r.id)).toEqual(["mine"]);
		expect(await store.get(COLLECTIONS.monitor, DEFAULTS_ID)).not.toBeNull();
	});
});
